"""Fine-tuning keeps transform-coded weights in their subspace; the stages; composition."""

from __future__ import annotations

import pytest
import torch
from transform_models import tiny_model

from rnnslim.io.transform_encoding import block_dct, circulant_expand, circulant_project, dct_roundtrip
from rnnslim.pipeline.builtin_stages import FinetuneConfig, finetune
from rnnslim.pipeline.stage import StageContext, parse_stage
from rnnslim.pipeline.stages.transform import run_block_circulant, run_dct_sparsify
from rnnslim.quantize.api import WeightOnly, quantize_
from rnnslim.transform import BlockCirculant, DCTSparsity, block_circulant_, dct_sparsify_, projection_hook

BLOCK = (4, 8)


def _off_support_energy(w: torch.Tensor, support: torch.Tensor) -> float:
    c = block_dct(w.detach().double(), BLOCK)
    return float(c[~support].norm() / c.norm())


def _sgd_step(m, lr=1.0):
    x = torch.randint(0, 11, (9, 3))
    out, _ = m(x)
    torch.nn.functional.cross_entropy(out.reshape(-1, 11), x.roll(-1, 0).reshape(-1)).backward()
    with torch.no_grad():
        for p in m.parameters():
            p -= lr * p.grad
            p.grad = None


def test_projection_hook_keeps_dct_weights_in_the_subspace_after_a_step(cell):
    m = tiny_model(cell).train()
    dct_sparsify_(m, DCTSparsity(keep=0.3, block=BLOCK))
    hook = projection_hook(m)
    assert len(hook) == 4
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    _sgd_step(m)
    name = "rnn.layers.1.weight_hh_l0"
    support = hook.supports[name]
    assert _off_support_energy(dict(m.named_parameters())[name], support) > 1e-3  # the step left the subspace
    hook(m, 1)
    for n, s in hook.supports.items():
        p = dict(m.named_parameters())[n]
        assert _off_support_energy(p, s) < 1e-6, n
        assert not torch.allclose(p, before[n]), n  # the kept coefficients did train
    assert torch.equal(hook.supports[name], support)


def test_projection_hook_keeps_block_circulant_structure(cell):
    m = tiny_model(cell).train()
    block_circulant_(m, BlockCirculant(block=4, targets=("input", "recurrent", "output")))
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    _sgd_step(m)
    projection_hook(m)(m, 1)
    for n in m.tensor_encodings:
        p = dict(m.named_parameters())[n].detach()
        assert torch.allclose(circulant_expand(circulant_project(p, 4), p.shape).float(), p, atol=1e-6), n
        assert not torch.allclose(p, before[n]), n


def _ctx(task, tmp_path):
    return StageContext(task=task, work_dir=tmp_path / "work", progress=False, seed=1)


def test_finetune_stage_projects_and_requantizes(tiny_task, tmp_path):
    m = tiny_model("lstm", vocab=len(tiny_task.vocab))
    dct_sparsify_(m, DCTSparsity(keep=0.3, bits=8, block=BLOCK))
    ctx = _ctx(tiny_task, tmp_path)
    finetune(m, FinetuneConfig(max_steps=2, eval_every=2, batch_size=4, seq_len=16, lr=1e-2), ctx)
    assert ctx.record["projected_tensors"] == 4
    _on_the_stored_grid(m)


def _on_the_stored_grid(m):
    for n, e in m.tensor_encodings.items():
        if e.get("encoding") != "dct":  # e.g. the sparse storage of a pruned decoder
            continue
        p = dict(m.named_parameters())[n].detach()
        assert torch.allclose(dct_roundtrip(p, {k: v for k, v in e.items() if k != "encoding"}), p, atol=1e-6), n


def test_stages_on_a_gru_with_projected_finetuning(tiny_task, tmp_path):
    m = tiny_model("gru", vocab=len(tiny_task.vocab))
    cfg = parse_stage({"kind": "dct_sparsify", "target_bytes_fraction": 0.3, "bits": 16, "block": [8, 8],
                       "finetune_steps": 2, "batch_size": 4, "seq_len": 16, "eval_every": 2})
    ctx = _ctx(tiny_task, tmp_path)
    run_dct_sparsify(m, cfg, ctx)
    assert ctx.record["total"]["bytes_fraction"] <= 0.3 and ctx.record["finetune"]["projected_tensors"] == 4
    _on_the_stored_grid(m)
    c = tiny_model("gru", vocab=len(tiny_task.vocab))
    ctx = _ctx(tiny_task, tmp_path / "c")
    run_block_circulant(c, parse_stage({"kind": "block_circulant", "block": 4}), ctx)
    assert abs(ctx.record["total"]["bytes_fraction"] - 0.25) < 0.05


def test_weight_quantization_of_transform_coded_layers_is_refused_clearly():
    m = tiny_model()
    dct_sparsify_(m, DCTSparsity(keep=0.5))
    with pytest.raises(ValueError, match="weight_ih_l0 is stored as dct.*dct_sparsify's `bits`"):
        quantize_(m, WeightOnly(bits=8))
    quantize_(m, WeightOnly(bits=8, targets=("decoder",)))  # layers that are not transform-coded still quantize
    assert "rnn.layers.0.weight_ih_l0" in dict(m.named_parameters())


@pytest.mark.parametrize("stage", [
    {"kind": "prune", "sparsity": 0.5, "targets": ["output"], "finetune_steps": 2},
    {"kind": "prune", "sparsity": 0.5, "targets": ["output"], "schedule": "agp", "finetune_steps": 4,
     "end_step": 2, "frequency": 1},
    {"kind": "qat", "bits": 8, "targets": ["decoder"], "steps": 2},
])
def test_every_stage_that_fine_tunes_keeps_coded_weights_on_their_grid(stage, tiny_task, tmp_path):
    """Masked pruning's and QAT's fine-tunes also project: the DCT-coded recurrent matrices (not
    pruned or quantized themselves) stay exactly what save_model stores, and they did train."""
    from rnnslim.pipeline.stage import get_stage

    m = tiny_model("lstm", vocab=len(tiny_task.vocab))
    dct_sparsify_(m, DCTSparsity(keep=0.3, bits=8, block=BLOCK))
    before = {n: dict(m.named_parameters())[n].detach().clone() for n in m.tensor_encodings}
    assert len(before) == 4
    cfg = parse_stage({**stage, "batch_size": 4, "seq_len": 16, "eval_every": 1, "lr": 5e-2})
    ctx = _ctx(tiny_task, tmp_path)
    m = get_stage(cfg.kind)[1](m, cfg, ctx)
    record = ctx.record.get("finetune", ctx.record)  # prune: its fine-tune's record; qat: the stage's
    assert record["projected_tensors"] == 4  # projected after every step, not only snapped at save
    _on_the_stored_grid(m)
    assert any(not torch.equal(dict(m.named_parameters())[n], before[n]) for n in before)
