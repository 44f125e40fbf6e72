"""rnnslim.train.finetune: one set of fine-tuning fields, and fine-tuning that never hands back a
model worse on validation than its input."""

from __future__ import annotations

import pytest
import torch

from rnnslim.io.format import load_model, save_model
from rnnslim.models.sequence import SequenceModel
from rnnslim.pipeline.builtin_stages import FinetuneConfig
from rnnslim.pipeline.recipe import load_recipe
from rnnslim.pipeline.stage import StageContext
from rnnslim.pipeline.stages.prune import BlockPruneStage, NMPruneStage, PruneStage
from rnnslim.pipeline.stages.quantize import QATStage
from rnnslim.pipeline.stages.structured import GroupLassoStage
from rnnslim.tasks.charlm import CharLMTask
from rnnslim.train import ScheduleKind, TrainConfig, train
from rnnslim.train.finetune import FinetuneFields, distill_hook, finetune_, set_dropout_

TEXT = ("the quick brown fox jumps over the lazy dog. " * 40 + "pack my box with five dozen liquor jugs! " * 40)
REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def _ctx(task, tmp_path, teacher=None):
    return StageContext(task=task, work_dir=tmp_path / "work", progress=False, seed=3, teacher=teacher)


def test_every_training_stage_shares_the_same_fields_and_defaults():
    for cls in (FinetuneConfig, PruneStage, NMPruneStage, BlockPruneStage, QATStage):
        for name, f in FinetuneFields.model_fields.items():
            assert name in cls.model_fields, (cls.__name__, name)
            assert cls.model_fields[name].default == f.default, (cls.__name__, name)
    # group_lasso: the same fields; its documented exception is SGD at a constant lr 0.1
    overrides = {"optimizer", "lr", "lr_schedule"}
    for name, f in FinetuneFields.model_fields.items():
        assert name in GroupLassoStage.model_fields
        assert name in overrides or GroupLassoStage.model_fields[name].default == f.default, name
    assert (GroupLassoStage.model_fields["lr"].default, GroupLassoStage.model_fields["optimizer"].default.value) == \
        (0.1, "sgd")


def test_defaults_suit_fine_tuning_a_trained_model():
    f = FinetuneFields()
    assert (f.lr, f.optimizer.value, f.lr_schedule, f.eval_max_steps, f.dropout, f.distill_alpha) == \
        (5e-4, "adamw", ScheduleKind.COSINE, None, None, 0.0)
    assert [f.warmup_for(n) for n in (3, 10, 20, 100, 1500)] == [1, 2, 5, 5, 75]
    tc = f.train_config(1500, seed=5, device="cpu")
    got = (tc.max_steps, tc.warmup_steps, tc.eval_every, tc.eval_input, tc.seed, tc.lr)
    assert got == (1500, 75, 300, True, 5, 5e-4)
    assert tc.lr < TrainConfig().lr  # below the from-scratch lr


def test_old_recipes_still_validate():
    recipes = sorted((REPO / "benchmarks" / "recipes").glob("*.yaml")) + [REPO / "src/rnnslim/recipes/demo.yaml"]
    assert len(recipes) > 3
    for p in recipes:
        load_recipe(p)
    assert FinetuneConfig(schedule="linear").lr_schedule is ScheduleKind.LINEAR  # the old field name
    with pytest.raises(ValueError, match="lr_schedule"):
        FinetuneConfig(schedule="linear", lr_schedule="cosine")


def test_converged_reference_model_survives_a_harmful_lr(shared_models, shakespeare, tmp_path):
    """(a) lr 0.5 wrecks a converged model; the stage hands back its input and says so."""
    from rnnslim.pipeline.builtin_stages import finetune

    model = load_model(shared_models / "charlstm-256x2.json")
    task = CharLMTask.for_model(model, shakespeare)
    before = task.evaluate(model, "valid", max_steps=500)["loss_nats"]
    ctx = _ctx(task, tmp_path)
    cfg = FinetuneConfig(max_steps=3, lr=0.5, batch_size=8, seq_len=32, eval_max_steps=500)
    out = finetune(model, cfg, ctx)
    assert task.evaluate(out, "valid", max_steps=500)["loss_nats"] <= before + 1e-6
    rec = ctx.record
    assert rec["kept_input"] is True and rec["best_step"] == 0
    assert rec["input_valid"] == pytest.approx(before) and rec["final_valid"] > before  # training did damage


def test_briefly_trained_model_improves(tmp_path):
    """(b) A model that is far from converged does get better (fine-tuning is not a no-op)."""
    task = CharLMTask(text=TEXT)
    torch.manual_seed(0)
    model = SequenceModel(task.model_spec(cell="lstm", hidden_size=24, num_layers=1))
    model.task_meta = task.meta()
    train(model, task, TrainConfig(max_steps=10, batch_size=8, seq_len=16, lr=5e-3), progress=False)
    before = task.evaluate(model, "valid")["loss_nats"]
    rec = finetune_(model, FinetuneFields(lr=5e-3, batch_size=8, seq_len=16), 30, _ctx(task, tmp_path))
    after = task.evaluate(model, "valid")["loss_nats"]
    assert rec["kept_input"] is False and rec["best_step"] > 0 and after < before - 0.1
    assert rec["best_valid"] == pytest.approx(after, rel=1e-6) and rec["input_valid"] == pytest.approx(before)
    assert rec["warmup_steps"] == 5 and rec["eval_every"] == 6 and rec["evaluations"] == 6


def test_dropout_field_sets_the_model_and_is_saved(tmp_path):
    """(e)"""
    task = CharLMTask(text=TEXT)
    model = SequenceModel(task.model_spec(cell="gru", hidden_size=16, num_layers=2, dropout=0.5))
    model.task_meta = task.meta()
    finetune_(model, FinetuneFields(dropout=0.1, batch_size=8, seq_len=16, eval_max_steps=50), 2, _ctx(task, tmp_path))
    assert model.drop.p == 0.1 and model.rnn.dropout == 0.1 and model.spec.dropout == 0.1
    back = load_model(save_model(model, tmp_path / "m"))
    assert back.drop.p == 0.1 and back.rnn.dropout == 0.1 and back.spec.dropout == 0.1
    assert set_dropout_(back, 0.0) == 2 and back.rnn.dropout == 0.0


def test_distill_teacher_path_replaces_the_pipeline_input(tmp_path):
    task = CharLMTask(text=TEXT)
    torch.manual_seed(1)
    other = SequenceModel(task.model_spec(hidden_size=8, num_layers=1))
    other.task_meta = task.meta()
    path = save_model(other, tmp_path / "teacher")
    ctx = _ctx(task, tmp_path, teacher=SequenceModel(task.model_spec(hidden_size=16, num_layers=1)))
    hook = distill_hook(FinetuneFields(distill_alpha=0.5, distill_teacher=str(path)), ctx, stateful=True)
    assert hook.alpha == 0.5 and hook.teacher.rnn.specs[0].hidden_size == 8
    assert distill_hook(FinetuneFields(distill_alpha=0.5), ctx, True).teacher is ctx.teacher
    assert distill_hook(FinetuneFields(), ctx, True) is None
    with pytest.raises(ValueError, match="needs a teacher"):
        distill_hook(FinetuneFields(distill_alpha=0.5), _ctx(task, tmp_path), True)


@pytest.mark.parametrize("field,value", [("lr", float("inf")), ("lr", float("nan")), ("lr", 11.0),
                                         ("clip_grad", float("inf")), ("weight_decay", float("nan")),
                                         ("momentum", float("inf")), ("distill_temperature", float("inf"))])
@pytest.mark.parametrize("cls", [FinetuneFields, FinetuneConfig, GroupLassoStage, QATStage])
def test_python_api_refuses_what_recipes_refuse(cls, field, value, tmp_path):
    """One validation: the config classes refuse the values a recipe refuses (issue 19 §7)."""
    import pydantic

    extra = {"lam": 0.1, "threshold": 0.1} if cls is GroupLassoStage else {}
    with pytest.raises(pydantic.ValidationError, match=field):
        cls(**extra, **{field: value})
    recipe = tmp_path / "r.yaml"
    kind = cls.model_fields["kind"].default if "kind" in cls.model_fields else "finetune"
    body = "".join(f"    {k}: {v}\n" for k, v in extra.items())
    shown = {float("inf"): ".inf", 11.0: "11.0"}.get(value, ".nan")
    recipe.write_text(f"version: 1\nname: r\nstages:\n  - kind: {kind}\n{body}    {field}: {shown}\n")
    with pytest.raises(ValueError, match=field):
        load_recipe(recipe)
