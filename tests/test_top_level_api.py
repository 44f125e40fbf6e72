"""One verb per family at the top level: rnnslim.prune_ / quantize_ / factorize_ / distill_ take
every config of their family, change the model as that config says, fill the EditResult core,
and refuse a config of another family."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import rnnslim
from rnnslim.tasks.charlm import CharLMTask

TEXT = "she sells sea shells by the sea shore, and the shells she sells are sea shells. " * 12


@pytest.fixture(scope="module")
def task():
    return CharLMTask(text=TEXT)


def _model(task, cell="lstm", hidden=16):
    torch.manual_seed(0)
    return rnnslim.SequenceModel(task.model_spec(cell, hidden_size=hidden, num_layers=2)).eval()


def _rnn_weights(m):
    return [p for n, p in m.rnn.named_parameters() if "weight" in n]


def _zero_fraction(tensors):
    return sum(int((t == 0).sum()) for t in tensors) / sum(t.numel() for t in tensors)


def _x(task):
    return torch.randint(0, len(task.vocab), (6, 2))


def test_prune_masks_reach_their_pattern(task):
    m = _model(task)
    res = rnnslim.prune_(m, rnnslim.UnstructuredPruning(sparsity=0.5))
    assert isinstance(res, rnnslim.EditResult) and (res.family, res.method) == ("prune", "UnstructuredPruning")
    assert abs(_zero_fraction(_rnn_weights(m)) - 0.5) < 0.02
    assert res.changed == ["rnn.layers.0", "rnn.layers.1"]  # the embedding and the head are not targets
    assert res.bytes_before > 0 and res.masks
    m = _model(task)
    rnnslim.prune_(m, rnnslim.NMPruning(n=2, m=4))
    for w in _rnn_weights(m):  # at most 2 non-zeros in every 4 consecutive inputs
        assert int((w.reshape(w.shape[0], -1, 4) != 0).sum(-1).max()) <= 2
    m = _model(task)
    rnnslim.prune_(m, rnnslim.BlockPruning(sparsity=0.5, block_rows=4, block_cols=4))
    assert abs(_zero_fraction(_rnn_weights(m)) - 0.5) < 0.05
    m = _model(task)
    res = rnnslim.prune_(m, rnnslim.OBSPruning(sparsity=0.5, calibration_batches=2), calibration=task)
    assert abs(_zero_fraction(_rnn_weights(m)) - 0.5) < 0.05 and res.method == "OBSPruning"


def test_prune_structured_edits_make_the_model_smaller(task):
    m = _model(task)
    res = rnnslim.prune_(m, rnnslim.StructuredPruning(ratio=0.5))
    assert [s.hidden_size for s in m.spec.layers] == [8, 8]
    assert res.bytes_after < 0.6 * res.bytes_before and "rnn.layers.0" in res.changed
    assert m(_x(task))[0].shape == (6, 2, len(task.vocab))
    m = _model(task)
    res = rnnslim.prune_(m, rnnslim.LayerRemoval(layers=[1]))
    assert m.rnn.num_layers == 1 and res.removed == ["rnn.layers.1"] and res.bytes_after < res.bytes_before
    m = _model(task)
    keep = [0, 2, 3, 5, 7]
    res = rnnslim.prune_(m, rnnslim.VocabPruning(), data=keep)
    assert m.spec.output_size == len(keep) and res.keep == keep and res.bytes_after < res.bytes_before


def test_prune_takes_example_inputs_for_a_users_module():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.lstm, self.out = torch.nn.Embedding(10, 8), torch.nn.LSTM(8, 12), torch.nn.Linear(12, 10)

        def forward(self, x):
            return self.out(self.lstm(self.emb(x))[0])

    net, x = Net(), torch.randint(0, 10, (5, 2))
    res = rnnslim.prune_(net, rnnslim.StructuredPruning(ratio=0.5), example_inputs=(x,))
    assert net.lstm.hidden_size == 6 and net.out.in_features == 6 and net(x).shape == (5, 2, 10)
    assert set(res.changed) >= {"lstm", "out"} and res.bytes_after < res.bytes_before


def test_quantize_stores_fewer_bytes(task):
    m = _model(task)
    res = rnnslim.quantize_(m, rnnslim.WeightOnly(bits=4, group_size=16))
    assert res.family == "quantize" and res.bytes_after < 0.3 * res.bytes_before
    assert {r.path for r in res.layers} == set(res.changed) == {"embedding", "rnn.layers.0", "rnn.layers.1", "decoder"}
    m = _model(task)
    res = rnnslim.quantize_(m, rnnslim.HalfPrecision(dtype="fp16"))
    assert abs(res.bytes_after / res.bytes_before - 0.5) < 0.05
    m = _model(task)
    res = rnnslim.quantize_(m, rnnslim.Int8Config(mode="dynamic"))
    assert res.bytes_after < 0.4 * res.bytes_before
    assert all(type(layer).__name__.startswith("Int8") for layer in m.rnn.layers)
    m = _model(task)
    res = rnnslim.quantize_(m, rnnslim.GPTQ(bits=4, group_size=16, calibration_batches=2), calibration=task)
    assert res.method == "GPTQ" and res.layers and res.bytes_after < 0.3 * res.bytes_before


def test_factorize_reduces_rank(task):
    m = _model(task)
    res = rnnslim.factorize_(m, rnnslim.LowRank(rank=3, targets=["input", "output"]))
    assert res.family == "factorize" and res.ranks and set(res.ranks.values()) == {3}
    assert res.params_after < res.params_before and res.bytes_after < res.bytes_before
    m = _model(task)
    res = rnnslim.factorize_(m, rnnslim.ToLSTMP(proj_size=4))
    assert [s.proj_size for s in m.spec.layers] == [4, 4] and res.bytes_after < res.bytes_before
    m = _model(task)
    res = rnnslim.factorize_(m, rnnslim.BlockCirculant(block=8))
    block = m.rnn.layers[0].weight_hh_l0.detach()[8:16, 8:16]  # each 8 x 8 block: rows are shifts of its first
    assert all(torch.allclose(block[i], torch.roll(block[0], i)) for i in range(8))
    assert res.method == "BlockCirculant" and res.bytes_after < 0.3 * res.bytes_before
    m = _model(task)
    res = rnnslim.factorize_(m, rnnslim.DCTSparsity(keep=0.25))
    assert res.method == "DCTSparsity" and res.bytes_after < 0.5 * res.bytes_before
    m = _model(task)
    res = rnnslim.lowrank_(m, rnnslim.LowRank(rank=3, targets=["output"]))  # the older verb: same dispatch, same result
    assert res.method == "LowRank" and res.ranks == {"output": 3}


def test_distill_trains_the_student_on_its_teacher(task):
    teacher, student = _model(task, hidden=16), _model(task, "gru", hidden=8)
    before = [p.detach().clone() for p in student.parameters()]
    cfg = rnnslim.Distillation(alpha=1.0, keep_best=False,
                               train=rnnslim.TrainConfig(max_steps=3, batch_size=4, seq_len=16, eval_max_steps=2))
    res = rnnslim.distill_(student, cfg, teacher=teacher, task=task)
    assert res.family == "distill" and res.train.steps == 3
    assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters()))
    assert res.bytes_after == res.bytes_before and "rnn.layers.0" in res.changed


def test_wrong_family_and_unknown_configs_are_refused(task):
    m = _model(task)
    with pytest.raises(TypeError, match="GPTQ is a quantization config: use quantize_"):
        rnnslim.prune_(m, rnnslim.GPTQ())
    with pytest.raises(TypeError, match="UnstructuredPruning is a pruning config: use prune_"):
        rnnslim.quantize_(m, rnnslim.UnstructuredPruning(sparsity=0.5))
    with pytest.raises(TypeError, match="WeightOnly is a quantization config: use quantize_"):
        rnnslim.factorize_(m, rnnslim.WeightOnly())
    with pytest.raises(TypeError, match="LowRank is a factorization config: use factorize_"):
        rnnslim.distill_(m, rnnslim.LowRank(rank=2))
    with pytest.raises(TypeError, match="does not know dict"):
        rnnslim.prune_(m, {"sparsity": 0.5})
    with pytest.raises(TypeError, match=r"not the class WeightOnly: write WeightOnly\(...\)"):
        rnnslim.quantize_(m, rnnslim.WeightOnly)
    with pytest.raises(ValueError, match="GPTQ needs calibration="):
        rnnslim.quantize_(m, rnnslim.GPTQ())
    with pytest.raises(ValueError, match="WeightOnly takes no calibration"):
        rnnslim.quantize_(m, rnnslim.WeightOnly(), calibration=[_x(task)])
    assert all(not isinstance(layer, torch.nn.Identity) for layer in m.rnn.layers)
    assert _zero_fraction(_rnn_weights(m)) == 0  # nothing was applied


def test_every_config_is_exported_and_dir_is_clean():
    for name in ("StructuredPruning", "UnstructuredPruning", "NMPruning", "BlockPruning", "LayerRemoval",
                 "VocabPruning", "GradualPruning", "GroupLassoPruning", "OBSPruning", "WeightOnly", "Ternary",
                 "KMeans", "HalfPrecision", "QAT", "Int8Config", "GPTQ", "MixedPrecision", "LowRank", "ToLSTMP",
                 "LowRankLinears", "Distillation"):
        assert name in rnnslim.__all__ and isinstance(getattr(rnnslim, name), type), name
    assert not {"annotations", "importlib"} & set(dir(rnnslim))


def test_search_is_a_plain_function_whatever_was_imported_first():
    code = ("import sys, types; import rnnslim.search.budget; from rnnslim.search import SearchConfig; "
            "import rnnslim; f = rnnslim.search; package = sys.modules['rnnslim.search']; "
            "assert type(f) is types.FunctionType and f.__module__ == 'rnnslim.search.run'; "
            "assert type(package) is types.ModuleType and not callable(package); "
            "assert SearchConfig.__module__ == 'rnnslim.search.config'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_is_lazy():
    code = "import sys, rnnslim; assert 'torch' not in sys.modules; rnnslim.__version__"
    subprocess.run([sys.executable, "-c", code], check=True)
