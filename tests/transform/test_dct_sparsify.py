"""dct_sparsify_: the orthonormal DCT-II, which coefficients are kept, budgets, refusals."""

from __future__ import annotations

import pytest
import torch
from transform_models import tiny_model

from rnnslim.io.transform_encoding import block_dct, dct_matrix
from rnnslim.prune.masks import mark_sparse_
from rnnslim.prune.unstructured import UnstructuredPruning, prune_unstructured_
from rnnslim.transform import DCTSparsity, dct_sparsify_

ALL = ("input", "recurrent", "output")


def _weights(m):
    return {n: p.detach().clone() for n, p in m.named_parameters()}


def test_dct_matrix_matches_scipy_and_is_orthonormal():
    fft = pytest.importorskip("scipy.fft")
    x = torch.randn(13, 21, dtype=torch.float64)
    d = dct_matrix(21)
    assert torch.allclose(d @ d.T, torch.eye(21, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(block_dct(x, (1, 21)), torch.from_numpy(fft.dct(x.numpy(), axis=1, norm="ortho")), atol=1e-12)
    c = block_dct(x, (8, 16))  # ragged edge blocks: rows 8 + 5, columns 16 + 5
    assert torch.allclose(c[8:, 16:], torch.from_numpy(fft.dctn(x[8:, 16:].numpy(), norm="ortho")), atol=1e-12)
    assert torch.allclose(c[:8, :16], torch.from_numpy(fft.dctn(x[:8, :16].numpy(), norm="ortho")), atol=1e-12)
    assert torch.allclose(block_dct(c, (8, 16), inverse=True), x, atol=1e-12)


@pytest.mark.parametrize("cell,block", [("lstm", None), ("gru", (4, 4)), ("lstm", (7, 5))])
def test_keep_everything_round_trips_exactly(cell, block):
    m = tiny_model(cell)
    before = _weights(m)
    res = dct_sparsify_(m, DCTSparsity(keep=1.0, block=block, targets=ALL))
    after = _weights(m)
    assert set(res.report["tensors"]) == {n for n in before if "weight" in n and "embedding" not in n}
    for n in before:
        assert torch.allclose(after[n], before[n], atol=1e-6), n
    assert all(abs(r["energy_kept"] - 1) < 1e-9 for r in res.report["tensors"].values())


def test_the_largest_coefficients_are_kept_and_error_is_the_dropped_energy(cell):
    m = tiny_model(cell)
    before = _weights(m)
    res = dct_sparsify_(m, DCTSparsity(keep=0.3, block=(4, 8)))
    for name, r in res.report["tensors"].items():
        c_old = block_dct(before[name].double(), (4, 8))
        c_new = block_dct(dict(m.named_parameters())[name].detach().double(), (4, 8))
        kept = c_new.abs() > 1e-6
        assert int(kept.sum()) == r["keep"] == round(0.3 * c_old.numel())
        assert float(c_old.abs()[kept].min()) >= float(c_old.abs()[~kept].max())  # energy order
        assert torch.allclose(c_new[kept], c_old[kept], atol=1e-5)  # fp32 values kept as they were
        assert abs(r["relative_error"] ** 2 - (1 - r["energy_kept"])) < 1e-5  # Parseval: orthonormal


def test_more_coefficients_keep_more_energy():
    kept = []
    for keep in (0.1, 0.3, 0.6):
        res = dct_sparsify_(tiny_model(), DCTSparsity(keep=keep))
        kept.append(sum(r["energy_kept"] for r in res.report["tensors"].values()))
    assert kept[0] < kept[1] < kept[2]


def test_global_scope_uses_one_threshold_over_all_targets():
    m = tiny_model()
    before = _weights(m)
    res = dct_sparsify_(m, DCTSparsity(keep=0.25, scope="global", targets=ALL))
    kept_mags, dropped_mags = [], []
    for name in res.report["tensors"]:
        c_old = block_dct(before[name].double(), (1, before[name].shape[1])).abs().reshape(-1)
        c_new = block_dct(dict(m.named_parameters())[name].detach().double(), (1, before[name].shape[1])).reshape(-1)
        kept_mags.append(c_old[c_new.abs() > 1e-6])
        dropped_mags.append(c_old[c_new.abs() <= 1e-6])
    kept, dropped = torch.cat(kept_mags), torch.cat(dropped_mags)
    assert kept.numel() == round(0.25 * (kept.numel() + dropped.numel()))
    assert float(kept.min()) >= float(dropped.max())
    fractions = {r["keep_fraction"] for r in res.report["tensors"].values()}
    assert len(fractions) > 1  # tensors differ: not the same fraction everywhere


@pytest.mark.parametrize("bits,scope", [(8, "layer"), (16, "global"), (32, "layer")])
def test_byte_budget_is_met_and_nearly_used(bits, scope):
    res = dct_sparsify_(tiny_model(), DCTSparsity(target_bytes_fraction=0.3, bits=bits, scope=scope, targets=ALL))
    t = res.report["total"]
    assert t["stored_bytes"] <= 0.3 * t["fp32_bytes"]
    assert t["stored_bytes"] > 0.2 * t["fp32_bytes"]


def test_a_budget_below_the_overhead_is_refused():
    with pytest.raises(ValueError, match="storage overhead"):
        dct_sparsify_(tiny_model(), DCTSparsity(target_bytes_fraction=0.001, bits=8))


@pytest.mark.parametrize("kwargs,match", [({}, "exactly one"), ({"keep": 0.5, "target_bytes_fraction": 0.2}, "exactly one"),
                                          ({"keep": 0.5, "bits": 4}, "bits must be"),
                                          ({"keep": 0.5, "block": (0, 4)}, "positive"), ({"keep": 1.5}, "less than")])
def test_bad_configs_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DCTSparsity(**kwargs)


def test_pruned_half_precision_and_quantized_tensors_are_refused_and_the_model_is_untouched():
    from rnnslim.quantize.api import WeightOnly, quantize_

    m = tiny_model()
    res = prune_unstructured_(m, UnstructuredPruning(sparsity=0.5))
    mark_sparse_(m, list(res.masks))
    before = _weights(m)
    with pytest.raises(ValueError, match="already stored as sparse_auto"):
        dct_sparsify_(m, DCTSparsity(keep=0.5))
    assert all(torch.equal(before[n], p) for n, p in m.named_parameters())
    h = tiny_model()
    h.decoder.half()
    with pytest.raises(ValueError, match="float16.*cast stage after"):
        dct_sparsify_(h, DCTSparsity(keep=0.5, targets=ALL))
    assert "decoder.weight" not in (getattr(h, "tensor_encodings", None) or {})
    q = tiny_model()
    quantize_(q, WeightOnly(bits=8))
    with pytest.raises(ValueError, match="no float weight matrices"):
        dct_sparsify_(q, DCTSparsity(keep=0.5))


def test_a_users_own_module_with_a_two_layer_torch_gru():
    from rnnslim.transform import projection_hook

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(6, 10, num_layers=2)
            self.head = torch.nn.Linear(10, 3)

        def forward(self, x):
            return self.head(self.gru(x)[0])

    torch.manual_seed(0)
    net = Net()
    x = torch.randn(5, 2, 6)
    ref = net(x)
    res = dct_sparsify_(net, DCTSparsity(keep=1.0, targets=ALL))
    assert set(res.report["tensors"]) == {"gru.weight_ih_l0", "gru.weight_hh_l0", "gru.weight_ih_l1",
                                          "gru.weight_hh_l1", "head.weight"}
    assert torch.allclose(net(x), ref, atol=1e-5)  # the torch module still runs on its (rebuilt) weights
    dct_sparsify_(net, DCTSparsity(keep=0.5))
    assert len(projection_hook(net)) == 5 and net(x).shape == ref.shape  # head.weight: still coded (keep 1.0)
