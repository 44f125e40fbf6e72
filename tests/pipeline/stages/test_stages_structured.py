"""The structured pruning stages are registered and run on a SequenceModel."""

from pathlib import Path

import pytest

from rnnslim.models.sequence import SequenceModel
from rnnslim.pipeline.stage import StageContext, get_stage, parse_stage, stage_kinds
from rnnslim.tasks.charlm import CharLMTask

TEXT = "all the world's a stage, and all the men and women merely players. " * 30


def test_kinds_registered_and_configs_validate():
    assert {"prune_units", "remove_layers", "prune_vocab", "group_lasso"} <= set(stage_kinds())
    cfg = parse_stage({"kind": "prune_units", "per_layer": {"0": 0.5}, "round_to": 8})
    assert cfg.per_layer == {"0": 0.5}
    with pytest.raises(ValueError, match="ratio"):
        parse_stage({"kind": "prune_units"})
    with pytest.raises(ValueError):
        parse_stage({"kind": "prune_units", "ratio": 0.5, "bogus": 1})


def run(kind, model, ctx, **fields):
    cfg = parse_stage({"kind": kind, **fields})
    _, fn = get_stage(kind)
    return fn(model, cfg, ctx)


def test_stages_run_in_sequence(tmp_path: Path):
    task = CharLMTask(text=TEXT)
    model = SequenceModel(task.model_spec("gru", hidden_size=16, num_layers=3))
    model.task_meta = task.meta()
    ctx = StageContext(task=task, work_dir=tmp_path, progress=False)
    model = run("prune_units", model, ctx, ratio=0.5, round_to=4)
    assert [s.hidden_size for s in model.rnn.specs] == [8, 8, 8]
    assert ctx.record["sizes"]["rnn.layers.0"] == [16, 8] and ctx.record["params_after"] < ctx.record["params_before"]
    model = run("remove_layers", model, ctx, layers=[1])
    assert model.rnn.num_layers == 2
    model = run("prune_vocab", model, ctx)
    assert ctx.record["vocab_after"] == len(task.vocab)  # every symbol occurs in the text
    model = run("group_lasso", model, ctx, lam=1e-2, threshold=0.5, relative=True, max_steps=5, batch_size=4,
                seq_len=8, eval_max_steps=20)
    assert ctx.record["steps"] == 5 and ctx.record["group_norm_sum_after"] < ctx.record["group_norm_sum_before"]
    assert model(task.split("valid")[:5].unsqueeze(1))[0].shape[-1] == len(task.vocab)
