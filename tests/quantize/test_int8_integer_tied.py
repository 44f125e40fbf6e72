"""A tied embedding / decoder in the fully integer model (integerize.py, IntegerLinear.tied_to):
one int8 table used by the lookup and the decoder, stored once in the model file, read by
IntegerRunner from the decoder's tiles, bit for bit equal to the torch reference; an untied
model keeps its per-row decoder codes."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from rnnslim.io.format import load_model, save_model
from rnnslim.quantize.int8 import IntegerRunner
from rnnslim.quantize.int8.packed import IntegerProgram
from rnnslim.quantize.int8.qweights import quantize_rows

from tied_int8_models import E, V, needs_kernel, tied_model


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_tied_decoder_reads_the_embedding_table_with_its_scale(cell):
    flt, q = tied_model(cell)
    assert q.decoder.weight is q.embedding.weight  # one tensor
    assert torch.equal(q.decoder.weight_scale, q.embedding.scale.expand(V))
    want = torch.round(flt.decoder.bias.double() / (float(q.decoder.in_scale) * float(q.embedding.scale)))
    assert torch.equal(q.decoder.bias, want.to(torch.int32))
    x = torch.randint(0, V, (25, 3))
    logits, _ = q(x)
    ref, _ = flt(x)
    assert (logits - ref).abs().max() < 0.1 * ref.abs().max()  # still the float model's logits, roughly


def test_untied_decoder_keeps_its_own_per_row_codes():
    flt, q = tied_model(tie=False)
    assert q.decoder.weight is not q.embedding.weight
    codes, scale = quantize_rows(flt.decoder.weight)
    assert torch.equal(q.decoder.weight, codes) and torch.equal(q.decoder.weight_scale, scale)
    program = IntegerProgram.from_model(q)
    assert not program.tied_embedding and program.emb is not None and program.emb.size == V * E


def test_tied_model_file_stores_the_table_once_and_round_trips(tmp_path):
    _, q = tied_model()
    _, u = tied_model(tie=False)
    save_model(q, tmp_path / "tied")
    save_model(u, tmp_path / "untied")
    with safe_open(str(tmp_path / "tied" / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        stored_tables = [k for k in keys if f.get_slice(k).get_shape() == [V, E]]
    assert stored_tables == ["embedding.weight"] and "decoder.weight_scale" in keys
    size = lambda d: (tmp_path / d / "model.safetensors").stat().st_size  # noqa: E731
    assert V * E <= size("untied") - size("tied") <= V * E + 128  # the decoder's codes (+ one header entry)
    back = load_model(tmp_path / "tied")
    assert back.decoder.weight is back.embedding.weight
    x = torch.randint(0, V, (17, 2))
    assert torch.equal(back(x)[0], q(x)[0])


@needs_kernel
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_runner_reads_the_tied_table_bit_exactly(cell):
    _, q = tied_model(cell)
    runner = IntegerRunner(q, fold_embedding=False)
    assert runner.program.tied_embedding and runner.program.emb is None and not runner.fold_embedding
    x = torch.randint(0, V, (40,), generator=torch.Generator().manual_seed(3))
    ref, _ = q(x[:, None])
    logits, _ = runner.run(x)
    assert torch.equal(logits, ref[:, 0])
    assert torch.equal(runner.run_sequence(x), ref[:, 0])
    state = runner.init_state()
    steps = torch.stack([runner.step(int(t), state).clone() for t in x])
    assert torch.equal(steps, ref[:, 0])


@needs_kernel
def test_runner_of_a_tied_model_with_a_folded_table():
    _, q = tied_model("gru", hidden=16)
    runner = IntegerRunner(q, fold_embedding=True)
    assert runner.fold_embedding and runner.program.tied_embedding
    x = torch.randint(0, V, (30,))
    assert torch.equal(runner.run(x)[0], q(x[:, None])[0][:, 0])
