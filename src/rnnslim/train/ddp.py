"""rnnslim.train on several processes: DistributedDataParallel over a split global batch.

    torchrun --standalone --nproc_per_node 2 -m rnnslim.cli train --out runs/m --batch-size 32
    # in Python, the same call in every process (auto-detected under torchrun):
    train(model, task, TrainConfig(batch_size=32))          # or distributed=True to require it

- batch_size is the GLOBAL batch: every optimizer step sees the batch a single process
  would, cut along the batch axis into `world` equal slices (rank r takes columns
  r*b .. (r+1)*b - 1 with b = batch_size / world; an error when it does not divide). For
  language models a column is a stream, so each rank carries the recurrent state of its
  own streams, exactly as those columns would in one process.
- DDP averages the gradients; each rank's loss is the mean over its slice, so the average
  is the gradient of the global mean loss and the run follows the single-process
  trajectory up to float summation order (tests/train/test_ddp.py measures it). A batch
  smaller than batch_size (the last one of a classification epoch) is cut as evenly as
  possible and each rank's loss weighted by its share; one with fewer samples than
  processes is skipped on every rank.
- Rank 0 evaluates, keeps the best candidate and writes checkpoints; the others wait, then
  receive the history. At the end rank 0's best weights are broadcast, so every rank
  returns the same TrainResult and load_best gives every rank the same model.
- Checkpoints hold the global carried state (all ranks' streams gathered, the layout of a
  single-process run) and every rank's RNG state, so a run resumes on the same or on a
  different number of processes (dropout masks continue exactly only on the same number).
  Every rank reads the checkpoint directory: one machine or a shared file system.
- Seeds: rank r seeds torch with seed + RANK_SEED_STRIDE * r (its own dropout masks); the
  weights come from rank 0 (DDP broadcasts them when it wraps the model).
"""

from __future__ import annotations

import torch
from torch import nn

from rnnslim.tasks.base import Batch, Task
from rnnslim.utils.distributed import Dist

RANK_SEED_STRIDE = 1_000_003


def rank_seed(seed: int, rank: int) -> int:
    return seed + RANK_SEED_STRIDE * rank


def check_batch_size(batch_size: int, world: int) -> int:
    """Streams (samples) per rank for a global batch_size; a clear error when it does not divide."""
    if batch_size % world:
        lo, hi = batch_size // world * world, (batch_size // world + 1) * world
        raise ValueError(f"batch_size {batch_size} is the global batch and must divide evenly among {world} "
                         f"processes; use a multiple of {world} (e.g. {lo or hi} or {hi})")
    return batch_size // world


def targets_batch_dim(task: Task) -> int:
    """The batch axis of a task's targets: 1 for time-major (T, B) language-model targets, 0 for
    (B,) classes and (B, O) values; a task may say so with a `targets_batch_dim` attribute."""
    return int(getattr(task, "targets_batch_dim", 1 if task.stateful else 0))


def shard_batch(batch: Batch, rank: int, world: int, target_dim: int) -> tuple[Batch | None, float]:
    """(this rank's slice of the global batch, the weight of its mean loss); (None, 0) when the
    batch has fewer samples than processes. The weight is 1.0 when the batch divides evenly."""
    B = batch.inputs.shape[1]  # inputs (T, B) or (T, B, F)
    if batch.targets.shape[target_dim] != B:
        raise ValueError(f"cannot split the batch among processes: inputs have {B} samples on axis 1 but targets "
                         f"{tuple(batch.targets.shape)} have {batch.targets.shape[target_dim]} on axis {target_dim} "
                         "(set the task's targets_batch_dim)")
    if B < world:
        return None, 0.0
    base, extra = divmod(B, world)
    size, start = base + (rank < extra), rank * base + min(rank, extra)
    local = Batch(batch.inputs.narrow(1, start, size), batch.targets.narrow(target_dim, start, size))
    return local, (1.0 if extra == 0 else world * size / B)


def _map_state(state, fn):
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return fn(state)
    return type(state)(_map_state(s, fn) for s in state)


def local_state(state, rank: int, world: int):
    """This rank's streams of a global carried state (every tensor is (D, B, H): batch on axis 1)."""
    return _map_state(state, lambda t: t.chunk(world, 1)[rank].contiguous())


def global_state(dist: Dist, state):
    """Every rank's carried state gathered into the global one (the layout of one process)."""
    return _map_state(state, lambda t: dist.gather_cat(t, 1))


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DDP around `model` (already on `device`); rank 0's weights are broadcast to every rank."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def broadcast_module_(dist: Dist, model: nn.Module) -> None:
    """Every parameter and buffer of `model` takes rank 0's values."""
    for t in model.state_dict().values():
        dist.broadcast_(t)


def share_best(dist: Dist, model: nn.Module, best_state: dict | None, best_path) -> dict | None:
    """Rank 0's best candidate (from `best_path` or `best_state`) as a state dict on the other
    ranks; None on rank 0 (it has its own) and when there is no candidate."""
    from rnnslim.io.format import load_model

    has = dist.broadcast_json(best_state is not None or (best_path is not None and (best_path / "model.json").exists()))
    if not has:
        return None
    src = None
    if dist.leader:
        src = best_state if best_state is not None else load_model(best_path).state_dict()
    out = {}
    for k, v in model.state_dict().items():
        t = src[k].to(v.device) if dist.leader else torch.empty_like(v)
        out[k] = dist.broadcast_(t)
    return None if dist.leader else out
