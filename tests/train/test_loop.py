"""The training loop: learns, keeps the best candidate (the input included), is deterministic,
resumes after an interruption, rolls back and stops on NaN/Inf."""

import pytest
import torch

from rnnslim.io.format import load_model
from rnnslim.models.sequence import SequenceModel
from rnnslim.tasks.charlm import CharLMTask
from rnnslim.train import TrainConfig, TrainHooks, TrainingDiverged, load_best, train

TEXT = ("the quick brown fox jumps over the lazy dog. " * 40 + "pack my box with five dozen liquor jugs! " * 40)


def _setup(seed=0):
    task = CharLMTask(text=TEXT)
    torch.manual_seed(seed)
    model = SequenceModel(task.model_spec(cell="lstm", hidden_size=24, num_layers=2))
    model.task_meta = task.meta()
    return task, model


CFG = TrainConfig(epochs=3, batch_size=8, seq_len=16, lr=5e-3, checkpoint_every=5, seed=3)


def test_training_lowers_loss_and_keeps_best(tmp_path):
    task, model = _setup()
    before = task.evaluate(model, "valid")["loss"]
    result = train(model, task, CFG, checkpoint_dir=tmp_path, progress=False)
    assert result.best_metric < before - 0.5
    best = load_model(tmp_path / "best")
    assert abs(task.evaluate(best, "valid")["loss"] - result.best_metric) < 1e-6
    assert [h["step"] for h in result.history][:2] == [0, 24] and len(result.history) == 4  # input + 3 epochs
    assert result.input_metric == pytest.approx(before) and not result.kept_input


class _Interrupt(Exception):
    pass


def test_resume_after_interruption_equals_uninterrupted(tmp_path):
    task, model_a = _setup()
    result_a = train(model_a, task, CFG, checkpoint_dir=tmp_path / "a", progress=False)

    task, model_b = _setup()
    calls = {"n": 0}

    def crash(model, step):
        calls["n"] += 1
        if step == 17:  # after the checkpoint at step 15, mid-epoch
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train(model_b, task, CFG, checkpoint_dir=tmp_path / "b", hooks=TrainHooks(after_step=[crash]), progress=False)
    task, model_c = _setup(seed=99)  # a fresh process would start from different weights
    result = train(model_c, task, CFG, checkpoint_dir=tmp_path / "b", progress=False)
    assert result.steps == result_a.steps > 17
    assert result.history == result_a.history
    for (n, p), q in zip(model_a.state_dict().items(), model_c.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-6), n


def _finite(model):
    return all(torch.isfinite(t).all() for t in model.state_dict().values())


def _same(a, b):
    return all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_nan_loss_rolls_back_to_the_best_checkpoint(tmp_path):
    task, model = _setup()

    def poison(model, batch, outputs):
        return outputs.sum() * float("nan") if poison.step >= 12 else outputs.sum() * 0

    poison.step = 0

    def count(model, step):
        poison.step = step

    cfg = CFG.model_copy(update={"checkpoint_every": 10, "eval_every": 5})
    with pytest.raises(TrainingDiverged, match=f"loss became nan at step 12; .*best checkpoint {tmp_path / 'best'}"):
        train(model, task, cfg, checkpoint_dir=tmp_path, hooks=TrainHooks(after_step=[count], extra_loss=[poison]),
              progress=False)
    assert _same(model, load_model(tmp_path / "best"))  # the model in memory is the best checkpoint
    for d in ("last", "best"):
        assert _finite(load_model(tmp_path / d))


def test_nan_weight_from_a_hook_rolls_back_and_saves_nothing_bad(tmp_path):
    task, model = _setup()

    def break_weight(model, step):
        if step == 7:
            with torch.no_grad():
                model.rnn.layers[0].weight_hh_l0[0, 0] = float("nan")

    cfg = CFG.model_copy(update={"checkpoint_every": 3, "eval_every": 5})
    with pytest.raises(TrainingDiverged, match="weight rnn.layers.0.weight_hh_l0 became non-finite") as e:
        train(model, task, cfg, checkpoint_dir=tmp_path, hooks=TrainHooks(after_step=[break_weight]), progress=False)
    assert e.value.restored_from == tmp_path / "best" and (tmp_path / "best" / "model.json").exists()
    assert _finite(model) and _same(model, load_model(tmp_path / "best"))
    assert _finite(load_model(tmp_path / "last"))  # the checkpoint at step 6, before the damage


def test_infinite_lr_without_checkpoints_restores_the_input():
    task, model = _setup()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = CFG.model_copy(update={"lr": float("inf"), "eval_input": False})
    with pytest.raises(TrainingDiverged, match="restored to its input") as e:
        train(model, task, cfg, progress=False)
    assert e.value.restored_from is None and e.value.step == 1
    assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items())


def test_nan_gradient_is_caught_before_the_optimizer_step():
    task, model = _setup()

    def sqrt_of_zero(model, batch, outputs):  # value 0, gradient 0 * inf = nan
        return (model.decoder.bias * 0).abs().sqrt().sum()

    with pytest.raises(TrainingDiverged, match="gradient norm became nan at step 0; .*best weights so far"):
        train(model, task, CFG, hooks=TrainHooks(extra_loss=[sqrt_of_zero]), progress=False)
    assert _finite(model)


def test_harmful_lr_keeps_the_input_even_without_a_checkpoint_dir():
    task, model = _setup()
    train(model, task, CFG.model_copy(update={"max_steps": 40}), progress=False)  # a trained model
    before = task.evaluate(model, "valid")["loss"]
    start = {k: v.clone() for k, v in model.state_dict().items()}
    result = train(model, task, CFG.model_copy(update={"max_steps": 4, "lr": 0.5, "seed": 1}), progress=False)
    assert task.evaluate(model, "valid")["loss"] > before  # the last step's weights are damaged
    load_best(model, result)
    assert result.kept_input and result.best_step == 0 and result.best_metric == pytest.approx(before)
    assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items())


def test_select_from_step_never_keeps_earlier_candidates():
    task, model = _setup()
    result = train(model, task, CFG.model_copy(update={"max_steps": 8, "eval_every": 2, "lr": 0.5,
                                                       "select_from_step": 6}), progress=False)
    assert [h["step"] for h in result.history] == [0, 2, 4, 6, 8]
    assert not any(h["best"] for h in result.history if h["step"] < 6) and result.best_step in (6, 8)


def test_after_step_hook_runs_every_step():
    task, model = _setup()
    steps = []
    train(model, task, CFG.model_copy(update={"max_steps": 7}), hooks=TrainHooks(after_step=[lambda m, s: steps.append(s)]),
          progress=False)
    assert steps == list(range(1, 8))


def test_config_validation():
    with pytest.raises(ValueError):
        TrainConfig(lr=-1)
    with pytest.raises(ValueError):
        TrainConfig(optimizer="adam-ish")


@pytest.mark.parametrize("field,value", [("lr", float("inf")), ("lr", float("nan")), ("lr", 1e3),
                                         ("clip_grad", float("inf")), ("weight_decay", float("inf")),
                                         ("momentum", float("nan"))])
def test_train_config_refuses_non_finite_and_out_of_range_numbers(field, value):
    """The same bounds as recipes and the CLI (issue 19 §7): no lr=inf through the Python API."""
    import pydantic

    with pytest.raises(pydantic.ValidationError, match=field):
        TrainConfig(**{field: value})
