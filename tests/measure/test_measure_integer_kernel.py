"""A fully integer int8 model is timed in rnnslim's C kernel (how it is deployed)."""

import torch

from rnnslim.measure import measure
from rnnslim.measure.run import integer_kernel_step
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.quantize.int8 import Int8Config, IntegerRunner, quantize_int8_


def _model():
    spec = ModelSpec(cell="lstm", input_kind=InputKind.EMBEDDING, input_size=20, embed_size=16,
                     layers=[LayerShape(hidden_size=16)] * 2, output_size=20)
    return SequenceModel(spec).eval()


def test_float_model_has_no_kernel_step():
    assert integer_kernel_step(_model(), lambda m: None) == (None, "")


def test_integer_model_is_timed_in_the_kernel():
    m = _model()
    quantize_int8_(m, Int8Config(mode="integer"), calibration=[torch.randint(0, 20, (16, 4))])
    said = []
    step, note = integer_kernel_step(m, said.append)
    assert "C kernel" in said[0]
    state = None
    for _ in range(5):  # the timed step really runs the model: its state after 5 steps is the kernel's own
        state = step(state)
    runner = IntegerRunner(m)
    tokens = torch.randint(0, 20, (256,), generator=torch.Generator().manual_seed(0))[:5]  # stream_step_fn's inputs
    _, reference = runner.run(tokens)
    assert torch.equal(state.buf, reference.buf) and reference.buf.abs().sum() > 0
    # the memory it holds is stated, folded embedding table included when there is one
    program = runner.program
    assert program.resident_bytes() > program.bytes_per_step()
    assert f"{program.resident_bytes() / 1e6:.2f} MB" in note
    report = measure(m, threads=(1,), quick=True, include_baselines=False, log=said.append)
    assert report.variants[0].latency.median_ms > 0 and report.variants[0].note == note
    # its batch row is torch's integer reference, not the kernel: a footnote says so under the table
    assert "torch's integer reference" in report.variants[0].batch_note
    assert f"* model: {report.variants[0].batch_note}" in report.table().splitlines()
    assert "no baseline to compare with" in report.headline.text


def test_note_states_macs_and_bytes_per_step_of_the_formats():
    spec = ModelSpec(cell="lstm", input_kind=InputKind.EMBEDDING, input_size=20, embed_size=16,
                     layers=[LayerShape(hidden_size=64)], output_size=20)
    m = SequenceModel(spec).eval()
    quantize_int8_(m, Int8Config(mode="integer"), calibration=[torch.randint(0, 20, (16, 4))])
    with torch.no_grad():  # W_hh (256, 64): 8 columns kept, spread over 9 of the 16 column groups
        m.rnn.layers[0].w_hh[:, [c for c in range(64) if c % 5 or c > 35]] = 0
    _, note = integer_kernel_step(m, lambda s: None)
    program = IntegerRunner(m).program
    assert program.layers[0].wh.format == "strips"  # the cost rule picked it
    macs, dense = program.macs_per_step(), program.dense_macs_per_step()
    assert dense - macs == 256 * 56 and f"{macs / 1e6:.2f}M MACs (of {dense / 1e6:.2f}M dense)" in note
    assert f"{program.bytes_per_step() / 1e6:.2f} MB read" in note and "1 strips" in note


def test_resident_bytes_count_the_folded_table():
    m = _model()
    quantize_int8_(m, Int8Config(mode="integer"), calibration=[torch.randint(0, 20, (16, 4))])
    folded, plain = IntegerRunner(m, fold_embedding=True).program, IntegerRunner(m, fold_embedding=False).program
    table = folded.layers[0].tx_table
    assert table is not None and plain.layers[0].tx_table is None
    assert folded.resident_bytes() == plain.resident_bytes() + table.nbytes
