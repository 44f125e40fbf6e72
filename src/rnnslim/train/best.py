"""Which weights rnnslim.train hands back: the best validation candidate, and the rollback
target when training diverges.

- The best candidate is the evaluation with the best value of the task's primary metric;
  a tie on it (a classifier on 8 validation sequences has few distinct accuracies, so many
  steps tie) goes to the lower `task.tie_metric` (classification: the validation loss), and
  a tie on both to the later step. Without the loss rule the first step to reach the top
  accuracy wins, however undertrained (issue 25: step 21 of 300, valid loss 0.43 vs 0.0025).
- The input model is evaluated before the first step (TrainConfig.eval_input) and is the
  first candidate, so `load_best` never returns something worse on validation than the
  input. Evaluations before TrainConfig.select_from_step are recorded but never chosen
  (AGP: the model is not at its final sparsity yet).
- The best candidate lives in `checkpoint_dir/best` (rnnslim.io format), or in memory
  when train() has no checkpoint dir.
- After a NaN/Inf the model is restored to the best candidate, or, before there is one,
  to the weights train() started from (held in memory), and TrainingDiverged names it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rnnslim.train.checkpoint import RunState


class TrainingDiverged(RuntimeError):
    """The loss, the gradients or the weights became NaN or infinite; the model in memory
    was restored to `restored_from` (a checkpoint path, or None: the weights train() started from)."""

    def __init__(self, message: str, step: int, restored_from: Path | None) -> None:
        super().__init__(message)
        self.step, self.restored_from = step, restored_from


def copy_state(model: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def best_step(history: list[dict]) -> int | None:
    """Step of the evaluation that is the current best (0: the input model)."""
    steps = [h["step"] for h in history if h.get("best")]
    return steps[-1] if steps else None


def beats(metrics: dict, best: dict | None, primary: str, higher_is_better: bool, tie: str | None) -> bool:
    """Whether evaluation `metrics` replaces the best one so far (`best`: its history entry, None
    before any): a better primary metric, or an equal one with a tie metric no higher (lower is
    better; equal on both: the later evaluation, which has trained longer, wins)."""
    if best is None:
        return True
    value, top = metrics[primary], best[primary]
    if value != top:
        return value > top if higher_is_better else value < top
    if tie is None or metrics.get(tie) is None or best.get(tie) is None:
        return False
    return metrics[tie] <= best[tie]


SMALL_VALID = 30  # fewer validation sequences than this: selection is coarse, say so


def small_valid_note(history: list[dict]) -> str | None:
    """A warning when the validation split was too small for a sharp selection (None otherwise)."""
    n = next((h.get("sequences") for h in history if h.get("sequences") is not None), None)
    if n is None or n >= SMALL_VALID:
        return None
    return (f"the validation split has only {int(n)} sequences: one sequence moves accuracy by "
            f"{100 / n:.1f} points, so the kept step was chosen among ties by validation loss "
            "and its validation numbers are rough")


def best_entry(history: list[dict]) -> dict | None:
    """The history entry of the current best candidate."""
    marked = [h for h in history if h.get("best")]
    return marked[-1] if marked else None


class BestKeeper:
    """Evaluates on the validation split and keeps the best candidate (see the module docstring)."""

    def __init__(self, model: torch.nn.Module, task, cfg, ckpt: Path | None, run: RunState) -> None:
        self.task, self.cfg, self.ckpt, self.run = task, cfg, ckpt, run
        self.start = copy_state(model)  # rollback target before any candidate exists
        self.memory: dict | None = None  # best weights when there is no checkpoint dir

    @property
    def path(self) -> Path | None:
        return self.ckpt / "best" if self.ckpt and self.run.best is not None else None

    def evaluate(self, model: torch.nn.Module, epoch: int) -> None:
        from rnnslim.io.format import save_model

        run, task = self.run, self.task
        metrics = task.evaluate(model, "valid", max_steps=self.cfg.eval_max_steps)
        value = metrics[task.primary_metric]
        eligible = run.step >= self.cfg.select_from_step
        current = (best_entry(run.history) or {task.primary_metric: run.best}) if run.best is not None else None
        better = eligible and beats(metrics, current, task.primary_metric, task.higher_is_better,
                                    getattr(task, "tie_metric", None))
        if better:
            run.best = value
            if self.ckpt:
                save_model(model, self.ckpt / "best")
            else:
                self.memory = copy_state(model)
        run.history.append({"step": run.step, "epoch": epoch,
                            **{k: v for k, v in metrics.items() if isinstance(v, (int, float))}, "best": better})

    def restore(self, model: torch.nn.Module) -> str:
        """Put the last good weights back into `model`; returns where they came from."""
        from rnnslim.io.format import load_model

        step = best_step(self.run.history)
        if self.path is not None and (self.path / "model.json").exists():
            model.load_state_dict(load_model(self.path).state_dict())
            return f"the best checkpoint {self.path} (step {step}, valid {self.run.best:.6g})"
        if self.memory is not None:
            model.load_state_dict(self.memory)
            return f"the best weights so far (step {step}, valid {self.run.best:.6g}; in memory, no checkpoint dir)"
        model.load_state_dict(self.start)
        return "its input (the weights this run started from; no checkpoint yet)"

    def diverged(self, model: torch.nn.Module, what: str) -> None:
        """Roll back and raise TrainingDiverged with a one-line message."""
        where = self.restore(model)
        kept = self.path if self.path is not None and (self.path / "model.json").exists() else None
        raise TrainingDiverged(f"{what}; the model was restored to {where}; nothing non-finite was saved "
                               "(try a lower lr)", self.run.step, kept)
