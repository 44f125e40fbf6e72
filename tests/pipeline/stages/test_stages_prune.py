"""Pruning stages through the pipeline contract: record, sparse storage, reload."""

import math

import pytest
import torch

from rnnslim.io.format import artifact_bytes, load_model, save_model
from rnnslim.models.sequence import SequenceModel
from rnnslim.pipeline.stage import StageContext, get_stage, parse_stage
from rnnslim.prune.masks import masks_from_model
from rnnslim.tasks.charlm import CharLMTask

TEXT = ("the quick brown fox jumps over the lazy dog. " * 30 + "pack my box with five dozen liquor jugs! " * 30)


def _run(data, model, task, tmp_path):
    cfg = parse_stage(data)
    _, fn = get_stage(cfg.kind)
    ctx = StageContext(task=task, work_dir=tmp_path / "work", progress=False)
    out = fn(model, cfg, ctx)
    return out, ctx


def _setup(hidden=32):
    task = CharLMTask(text=TEXT)
    torch.manual_seed(0)
    m = SequenceModel(task.model_spec(cell="lstm", hidden_size=hidden, num_layers=2))
    m.task_meta = task.meta()
    return task, m


def test_one_shot_stage_records_and_stores_sparse(tmp_path):
    task, m = _setup()
    save_model(m, tmp_path / "dense")
    out, ctx = _run({"kind": "prune", "sparsity": 0.9, "targets": ["input", "recurrent", "output"]}, m, task, tmp_path)
    rec = ctx.record
    assert rec["method"]["method"] == "unstructured" and rec["method"]["criterion"] == "magnitude"
    assert set(rec["tensors"]) == {"rnn.layers.0.weight_ih_l0", "rnn.layers.0.weight_hh_l0",
                                   "rnn.layers.1.weight_ih_l0", "rnn.layers.1.weight_hh_l0", "decoder.weight"}
    assert all(r["sparsity"] == pytest.approx(0.9, abs=1e-3) for r in rec["tensors"].values())
    assert set(rec["storage"]) == set(rec["tensors"])
    save_model(out, tmp_path / "sparse")
    assert artifact_bytes(tmp_path / "sparse") < 0.45 * artifact_bytes(tmp_path / "dense")
    back = load_model(tmp_path / "sparse")
    x = torch.randint(0, len(task.vocab), (30, 2))
    with torch.no_grad():
        assert torch.equal(back(x)[0], out.eval()(x)[0])
    assert set(masks_from_model(back)) == set(rec["tensors"])


def test_one_shot_with_masked_finetune(tmp_path):
    task, m = _setup(16)
    out, ctx = _run({"kind": "prune", "sparsity": 0.5, "finetune_steps": 5, "batch_size": 4, "seq_len": 16,
                     "eval_max_steps": 50}, m, task, tmp_path)
    ft = ctx.record["finetune"]
    assert ft["steps"] == 5 and ft["lr"] == 5e-4 and ft["evaluations"] == 6  # the pruned model, then every step
    assert ft["best_valid"] <= ft["input_valid"]  # the freshly pruned model is a candidate
    assert task.evaluate(out, "valid", max_steps=50)["loss_nats"] == pytest.approx(ft["best_valid"], rel=1e-6)
    assert all(r["sparsity"] == 0.5 for r in ctx.record["tensors"].values())


def test_one_shot_finetune_with_a_harmful_lr_keeps_the_pruned_model(tmp_path):
    task, m = _setup(16)
    out, ctx = _run({"kind": "prune", "sparsity": 0.5, "finetune_steps": 3, "lr": 0.5, "batch_size": 4,
                     "seq_len": 16, "eval_max_steps": 50}, m, task, tmp_path)
    ft = ctx.record["finetune"]
    assert ft["kept_input"] and ft["best_step"] == 0 and ft["final_valid"] > ft["input_valid"]
    assert task.evaluate(out, "valid", max_steps=50)["loss_nats"] == pytest.approx(ft["input_valid"], rel=1e-6)
    assert all(r["sparsity"] == 0.5 for r in ctx.record["tensors"].values())


def test_agp_stage(tmp_path):
    task, m = _setup(16)
    out, ctx = _run({"kind": "prune", "sparsity": 0.6, "schedule": "agp", "finetune_steps": 8, "frequency": 2,
                     "batch_size": 4, "seq_len": 16, "eval_max_steps": 50}, m, task, tmp_path)
    assert ctx.record["method"]["method"] == "agp"
    assert [p["step"] for p in ctx.record["method"]["points"]] == [0, 2, 4, 6]  # end_step = 75 % of 8
    assert all(r["sparsity"] == pytest.approx(0.6, abs=1e-3) for r in ctx.record["tensors"].values())
    ft = ctx.record["finetune"]
    assert ft["best_step"] >= 6 and not ft["kept_input"]  # chosen only at the final sparsity (end_step 6)
    with pytest.raises(ValueError, match="finetune_steps"):
        parse_stage({"kind": "prune", "sparsity": 0.5, "schedule": "agp"})


def test_nm_and_block_stages(tmp_path):
    task, m = _setup(16)
    _, ctx = _run({"kind": "prune_nm", "n": 1, "m": 4, "storage": "sparse_csr"}, m, task, tmp_path)
    assert ctx.record["method"]["method"] == "n:m"
    assert all(r["sparsity"] == 0.75 for r in ctx.record["tensors"].values())
    assert set(ctx.record["storage"].values()) == {"sparse_csr"}
    task, m = _setup(16)
    _, ctx = _run({"kind": "prune_block", "sparsity": 0.5, "block_rows": 8, "block_cols": 4}, m, task, tmp_path)
    assert ctx.record["method"]["block"] == [8, 4]


def test_sensitivity_stage_leaves_the_model_alone(tmp_path):
    task, m = _setup(8)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    out, ctx = _run({"kind": "prune_sensitivity", "sparsities": [0.5, 0.9], "max_steps": 100}, m, task, tmp_path)
    after = out.state_dict()
    assert out is m and after.keys() == before.keys()
    assert all(torch.equal(v, after[k]) and v.dtype == after[k].dtype for k, v in before.items())  # bit for bit
    sens = ctx.record["sensitivity"]
    table = sens["table"]  # {tensor: {sparsity: loss with that tensor alone pruned}}
    assert {"rnn.layers.0.weight_hh_l0", "rnn.layers.1.weight_ih_l0", "decoder.weight"} <= set(table)
    assert all(set(row) == {"0.5", "0.9"} and all(math.isfinite(v) for v in row.values()) for row in table.values())
    at_90 = [row["0.9"] for row in table.values()]
    assert len(set(at_90)) > 1  # the layers differ in how much 90 % pruning hurts
    assert max(at_90) > sens["baseline"]  # and pruning is measured, not skipped
    assert "| decoder.weight |" in ctx.record["markdown"]
    assert (tmp_path / "work" / "sensitivity.png").exists()


def test_bad_stage_config_is_rejected():
    with pytest.raises(ValueError):
        parse_stage({"kind": "prune", "sparsity": 0.5, "criterion": "random"})
    with pytest.raises(ValueError):
        parse_stage({"kind": "prune_nm", "n": 2, "m": 4, "sparsity": 0.5})


def test_reference_model_prunes_and_stores_small(shared_models, tmp_path):
    m = load_model(shared_models / "charlstm-256x2.json")
    task = CharLMTask(text=TEXT + "".join(m.task_meta["vocab"]), vocab=m.task_meta["vocab"])
    out, ctx = _run({"kind": "prune", "sparsity": 0.9, "targets": ["input", "recurrent", "output"]}, m, task, tmp_path)
    save_model(out, tmp_path / "p")
    dense = (shared_models / "charlstm-256x2.safetensors").stat().st_size
    assert artifact_bytes(tmp_path / "p") < 0.25 * dense
    back = load_model(tmp_path / "p")
    x = torch.randint(0, 65, (50, 1))
    with torch.no_grad():
        assert torch.equal(back(x)[0], out(x)[0])
