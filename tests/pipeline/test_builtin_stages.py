"""The finetune and cast stages on a tiny character LM."""

from __future__ import annotations

import pytest
import torch

from rnnslim.io.format import save_model
from rnnslim.models.sequence import SequenceModel
from rnnslim.pipeline import finetuning
from rnnslim.pipeline.builtin_stages import CastConfig, FinetuneConfig, cast, finetune
from rnnslim.pipeline.stage import StageContext, get_stage
from rnnslim.train import TrainingDiverged


def _model(task, cell="lstm"):
    torch.manual_seed(0)
    m = SequenceModel(task.model_spec(cell=cell, hidden_size=16, num_layers=1))
    m.task_meta = task.meta()
    return m


def _ctx(task, tmp_path):
    return StageContext(task=task, work_dir=tmp_path / "work", progress=False, seed=3)


FT = dict(max_steps=6, batch_size=8, seq_len=16, eval_max_steps=300, lr=5e-3)


def test_kinds_registered():
    assert get_stage("finetune") == (FinetuneConfig, finetune)
    assert get_stage("cast") == (CastConfig, cast)


def test_finetune_config_maps_onto_train_config(task):
    tc = FinetuneConfig(max_steps=100, lr_schedule="linear").train_config(100, seed=5, device="cpu")
    assert (tc.max_steps, tc.lr, tc.schedule.value, tc.warmup_steps, tc.eval_every, tc.eval_max_steps, tc.seed) == \
        (100, 5e-4, "linear", 5, 20, None, 5)
    assert FinetuneConfig(epochs=2, batch_size=8, seq_len=16).total_steps(task) == 2 * sum(
        1 for _ in task.batches("train", 8, 16))


def test_finetune_trains_and_records(task, tmp_path):
    m = _model(task)
    before = task.evaluate(m, "valid", max_steps=300)["loss_nats"]
    ctx = _ctx(task, tmp_path)
    out = finetune(m, FinetuneConfig(**FT), ctx)
    after = task.evaluate(out, "valid", max_steps=300)["loss_nats"]
    assert after < before - 0.05
    assert ctx.record["steps"] == 6 and ctx.record["resumed_from_checkpoint"] is False
    assert ctx.record["best_valid"] == pytest.approx(after, rel=1e-5)  # the best checkpoint is what comes back
    assert ctx.record["input_valid"] == pytest.approx(before, rel=1e-5) and ctx.record["kept_input"] is False
    assert ctx.record["wall_s"] > 0 and ctx.record["evaluations"] >= 2
    assert (ctx.work_dir / "train" / "best" / "model.json").exists()
    assert not out.training


def test_finetune_resumes_an_interrupted_run(task, tmp_path, monkeypatch):
    cfg = FinetuneConfig(**{**FT, "checkpoint_every": 2})
    ref = finetune(_model(task), cfg, _ctx(task, tmp_path / "ref"))

    def stop_at_3(model, step):
        if step == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(finetuning, "mask_hooks", lambda model, masks=None: ([stop_at_3], 0))
    ctx = _ctx(task, tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        finetune(_model(task), cfg, ctx)
    monkeypatch.undo()
    ctx = _ctx(task, tmp_path / "run")
    out = finetune(_model(task), cfg, ctx)
    assert ctx.record["resumed_from_checkpoint"] is True and ctx.record["steps"] == 6
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(out.state_dict()[k], v, rtol=1e-5, atol=1e-6)


def test_finetune_refuses_integer_tensors(task, tmp_path):
    m = _model(task)
    m.register_buffer("fake_q", torch.zeros(3, dtype=torch.int8))
    with pytest.raises(ValueError, match="integer .*fake_q .*int8"):
        finetune(m, FinetuneConfig(**FT), _ctx(task, tmp_path))


def test_finetune_keeps_pruned_weights_at_zero(task, tmp_path):
    """A model pruned by rnnslim.prune keeps its zeros through the finetune stage."""
    from rnnslim.prune.masks import mark_sparse_

    m = _model(task)
    w = m.rnn.layers[0].weight_hh_l0
    with torch.no_grad():
        w[: w.shape[0] // 2] = 0
    zero = w == 0
    mark_sparse_(m, ["rnn.layers.0.weight_hh_l0"])
    before = m.rnn.layers[0].weight_hh_l0.detach().clone()
    ctx = _ctx(task, tmp_path)
    out = finetune(m, FinetuneConfig(**FT), ctx)
    assert ctx.record["masked_tensors"] == 1
    after = out.rnn.layers[0].weight_hh_l0
    assert torch.all(after[zero] == 0)
    assert (after[~zero] != before[~zero]).float().mean() > 0.5  # the kept weights still learn


@pytest.mark.parametrize("dtype,torch_dtype", [("fp16", torch.float16), ("bf16", torch.bfloat16)])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_cast_halves_weight_bytes_and_keeps_the_metric(task, tmp_path, dtype, torch_dtype, cell):
    m = _model(task, cell)
    ref = task.evaluate(m, "valid", max_steps=300)["loss_nats"]
    save_model(m, tmp_path / "fp32")
    ctx = _ctx(task, tmp_path)
    out = cast(m, CastConfig(dtype=dtype), ctx)
    assert all(p.dtype == torch_dtype for p in out.parameters())
    save_model(out, tmp_path / dtype)
    w32 = (tmp_path / "fp32" / "model.safetensors").stat().st_size
    w16 = (tmp_path / dtype / "model.safetensors").stat().st_size
    assert 0.49 < w16 / w32 < 0.55  # half the weight bytes, plus the safetensors header
    assert ctx.record["floating_bytes_after"] * 2 == ctx.record["floating_bytes_before"]
    got = task.evaluate(out, "valid", max_steps=300)["loss_nats"]
    assert got == pytest.approx(ref, abs=0.02)


def test_cast_leaves_integer_buffers_alone(task, tmp_path):
    m = _model(task)
    m.register_buffer("codes", torch.arange(4, dtype=torch.int8))
    out = cast(m, CastConfig(dtype="bf16"), _ctx(task, tmp_path))
    assert out.codes.dtype == torch.int8 and out.decoder.weight.dtype == torch.bfloat16


def test_finetune_with_the_real_pruning_masks(task, tmp_path):
    """A model whose pruned tensors are marked sparse (rnnslim.prune.masks) keeps its zeros."""
    masks = pytest.importorskip("rnnslim.prune.masks")
    m = _model(task)
    w = m.rnn.layers[0].weight_ih_l0
    with torch.no_grad():
        w[torch.rand(w.shape, generator=torch.Generator().manual_seed(0)) < 0.5] = 0
    zero, w0 = w == 0, w.detach().clone()
    masks.mark_sparse_(m, ["rnn.layers.0.weight_ih_l0"])
    ctx = _ctx(task, tmp_path)
    out = finetune(m, FinetuneConfig(**FT), ctx)
    assert ctx.record["masked_tensors"] == 1
    assert torch.all(out.rnn.layers[0].weight_ih_l0[zero] == 0)
    assert not torch.equal(out.rnn.layers[0].weight_ih_l0[~zero], w0[~zero])  # kept weights trained
    assert not out.rnn.layers[0].weight_ih_l0._backward_hooks  # the gradient hooks were removed


def test_diverging_finetune_restores_the_input_and_saves_nothing_bad(task, tmp_path, monkeypatch):
    m = _model(task)
    start = {k: v.clone() for k, v in m.state_dict().items()}
    # the configs refuse lr=inf (tests/train/test_finetune.py): force the divergence inside the TrainConfig instead
    real = FinetuneConfig.train_config
    monkeypatch.setattr(FinetuneConfig, "train_config",
                        lambda self, *a, **k: real(self, *a, **k).model_copy(update={"lr": float("inf")}))
    with pytest.raises(TrainingDiverged, match="restored to the best checkpoint .*train/best \\(step 0"):
        finetune(m, FinetuneConfig(**FT), _ctx(task, tmp_path))
    assert all(torch.equal(v, start[k]) for k, v in m.state_dict().items())
    from rnnslim.io.format import load_model

    best = load_model(tmp_path / "work" / "train" / "best")
    assert all(torch.isfinite(v).all() for v in best.state_dict().values())
