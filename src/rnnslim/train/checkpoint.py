"""The resumable part of rnnslim.train: what `checkpoint_dir/last` + trainer_state.pt hold.

    checkpoint_dir/last/             the model (rnnslim.io format)
    checkpoint_dir/trainer_state.pt  optimizer, step, epoch, batch in epoch, best metric,
                                     carried recurrent state, torch RNG (weights_only=True;
                                     distributed runs: the global state, every rank's RNG)
    checkpoint_dir/history.json      the config and every evaluation so far

A run resumed from these continues exactly where it stopped (same batches, same dropout
masks, same optimizer moments), so its result equals an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

STATE_FILE = "trainer_state.pt"


@dataclass
class RunState:
    """Mutable state of one train() call; exactly what a checkpoint restores."""

    step: int = 0  # optimizer steps done
    epoch: int = 0
    skip: int = 0  # batches of `epoch` already done (a run resumed mid-epoch skips them)
    best: float | None = None  # best validation metric among the candidates so far
    history: list[dict] = field(default_factory=list)  # one entry per evaluation
    state: Any = None  # recurrent state carried between batches (stateful tasks)


def _flatten_state(state) -> list[Tensor]:
    if state is None:
        return []
    if isinstance(state, Tensor):
        return [state]
    return [t for s in state for t in _flatten_state(s)]


def _unflatten_like(template, flat: list[Tensor]):
    it = iter(flat)

    def rebuild(t):
        if isinstance(t, Tensor):
            return next(it)
        return type(t)(rebuild(s) for s in t)

    return rebuild(template)


def can_resume(ckpt: Path | None) -> bool:
    return ckpt is not None and (ckpt / STATE_FILE).exists()


def save_training_state(ckpt: Path, model, opt, run: RunState, epoch: int, batch_in_epoch: int, state, cfg,
                        rng_ranks: list[Tensor] | None = None) -> None:
    """Write last/ + trainer_state.pt (atomically replaced) + history.json; `rng_ranks`: every
    rank's torch RNG state in a distributed run (rnnslim.train.ddp)."""
    from rnnslim.io.format import save_model

    save_model(model, ckpt / "last")
    blob = {
        "optimizer": opt.state_dict(),
        "step": run.step,
        "epoch": epoch,
        "batch_in_epoch": batch_in_epoch,
        "best": run.best if run.best is not None else float("nan"),
        "carried_state": _flatten_state(state),
        "torch_rng": torch.get_rng_state(),
    }
    if rng_ranks is not None:
        blob["torch_rng_ranks"] = [t.cpu().clone() for t in rng_ranks]  # own storage each (not views of one)
    fd, tmp = tempfile.mkstemp(dir=ckpt, suffix=".tmp")
    os.close(fd)
    torch.save(blob, tmp)
    from rnnslim.utils.atomic import respect_umask

    respect_umask(tmp)  # mkstemp makes 0600
    os.replace(tmp, ckpt / STATE_FILE)
    (ckpt / "history.json").write_text(json.dumps({"config": cfg.model_dump(mode="json"), "history": run.history},
                                                  indent=1))


def load_training_state(ckpt: Path, model, opt, batch_size: int, device: torch.device, rank: int = 0,
                        world: int = 1) -> RunState:
    """Restore model weights, optimizer and RNG from `ckpt`; returns the run state (the carried
    state of all `batch_size` streams). Rank `rank` of `world` takes its own saved RNG state
    when the checkpoint has one per rank for the same world size."""
    from rnnslim.io.format import load_model

    model.load_state_dict(load_model(ckpt / "last").state_dict())
    blob = torch.load(ckpt / STATE_FILE, weights_only=True, map_location=device)
    opt.load_state_dict(blob["optimizer"])
    ranks = blob.get("torch_rng_ranks") or []
    rng = ranks[rank] if len(ranks) == world else blob["torch_rng"]
    torch.set_rng_state(rng.cpu().clone())  # a CPU tensor with its own storage (map_location may be a GPU)
    run = RunState(step=blob["step"], epoch=blob["epoch"], skip=blob["batch_in_epoch"],
                   best=None if math.isnan(blob["best"]) else blob["best"],
                   history=json.loads((ckpt / "history.json").read_text())["history"])
    if blob["carried_state"]:
        template = model.rnn.init_state(batch_size, device=device)
        run.state = _unflatten_like(template, [t.to(device) for t in blob["carried_state"]])
    return run
