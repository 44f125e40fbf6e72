"""Choosing the exit threshold on validation data.

    cal = calibrate_exits_(model, task, max_drop=0.01)                   # stores model.exits.threshold
    cal = calibrate_exits_(model, task, max_drop=0.01, early_time=True)  # stores model.exits.stream_threshold
    cal.threshold, cal.accuracy, cal.full_accuracy, cal.fraction, cal.curve

One full forward pass per equal-length batch records every exit's confidence and answer
(per time step too when streaming); every candidate threshold is then simulated exactly as
rnnslim.early_exit.infer routes samples. Candidates lie midway between consecutive observed
confidences (so tiny float differences between the batched simulation and the routed run
cannot flip a sample), plus 1.0 (exits off). The chosen threshold gives the smallest
fraction of layer-steps executed whose accuracy is >= the full model's minus max_drop
(ties: the higher accuracy); when none is (a reference above every
point), the most accurate point. `curve` is accuracy vs fraction over the candidates (the
Pareto front: no point is both cheaper and at least as accurate as another).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from rnnslim.early_exit.heads import require_exits
from rnnslim.early_exit.outputs import capture_layers, confidence, exit_logits

MAX_CANDIDATES = 2000


@dataclass
class Calibration:
    threshold: float
    accuracy: float  # at the threshold, on the calibration split
    full_accuracy: float  # the full model (exits off)
    fraction: float  # layer-steps executed / the full model's
    max_drop: float
    early_time: bool
    sequences: int
    reference_accuracy: float  # the accuracy the drop is bounded against
    bound_met: bool  # False: no threshold came within max_drop of the reference (the most accurate was taken)
    curve: list[dict] = field(default_factory=list)  # [{threshold, accuracy, fraction}], cheapest first

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("threshold", "accuracy", "full_accuracy", "fraction", "max_drop",
                                              "early_time", "sequences", "reference_accuracy", "bound_met", "curve")}


@torch.no_grad()
def _records(model: nn.Module, task, split: str, early_time: bool, max_steps: int | None):
    """Per sample: confidences and correctness in the order exits are visited, (n_checks,) each:
    whole: the L exits; streaming: step-major, then depth (T x L). Costs (layer-steps) per check."""
    conf, right, cost = [], [], []
    was = model.training
    model.eval()
    L = len(model.rnn.layers)
    with capture_layers(model) as hs:
        for b in task.equal_length_batches(split, max_steps, model.decoder.weight.device):
            model(b.inputs)
            zs = exit_logits(model, hs, over_time=early_time)  # L x (B, C) or L x (T, B, C)
            z = torch.stack(zs, -2)  # (B, L, C) or (T, B, L, C)
            ok = (z.argmax(-1) == b.targets.unsqueeze(-1))
            c = confidence(z)
            T = b.inputs.shape[0]
            if early_time:  # (T, B, L) -> (B, T*L): step-major; a stop at flat index i costs i + 1
                c, ok = c.transpose(0, 1).flatten(1), ok.transpose(0, 1).flatten(1)
                per = np.arange(1, T * L + 1)
            else:  # a stop after layer d (1-based) costs T * d
                per = T * np.arange(1, L + 1)
            for i in range(len(b.targets)):
                conf.append(c[i].cpu().numpy())
                right.append(ok[i].cpu().numpy())
                cost.append(per)
    model.train(was)
    return conf, right, cost


def _simulate(conf, right, cost, thr: float) -> tuple[float, float]:
    """(accuracy, fraction of layer-steps) at threshold thr; the last check always answers."""
    correct = steps = total = 0
    for c, ok, per in zip(conf, right, cost):
        hit = np.flatnonzero(c[:-1] >= thr) if thr < 1.0 else np.empty(0, dtype=int)
        i = int(hit[0]) if hit.size else len(c) - 1
        correct += int(ok[i])
        steps += int(per[i])
        total += int(per[-1])
    return correct / len(conf), steps / total


def _candidates(conf) -> list[float]:
    values = np.unique(np.concatenate([c[:-1] for c in conf]))
    if values.size > MAX_CANDIDATES:
        values = np.quantile(values, np.linspace(0, 1, MAX_CANDIDATES))
    mids = (values[1:] + values[:-1]) / 2
    return sorted({0.0, 1.0, *[float(m) for m in mids if m < 1.0]})


def calibrate_exits_(model: nn.Module, task, max_drop: float = 0.01, split: str = "valid",
                     early_time: bool = False, max_steps: int | None = None, store: bool = True,
                     reference_accuracy: float | None = None) -> Calibration:
    """Pick and (store=True) save the threshold; see the module docstring. max_drop is a
    fraction (0.01 = 1 accuracy point) below reference_accuracy: by default this model's own
    full accuracy on the split; give the accuracy of the model before the exits were trained
    jointly to bound the drop against what the user had."""
    exits = require_exits(model)
    if not 0 <= max_drop < 1:
        raise ValueError(f"max_drop is an accuracy fraction in [0, 1) (0.01 = 1 point), got {max_drop}")
    if early_time and any(s.bidirectional for s in model.rnn.specs):
        raise ValueError("streaming early exit (early_time) needs unidirectional layers")
    conf, right, cost = _records(model, task, split, early_time, max_steps)
    if not conf:
        raise ValueError(f"the {split} split is empty: nothing to calibrate on")
    points = [(thr, *_simulate(conf, right, cost, thr)) for thr in _candidates(conf)]
    full = next(acc for thr, acc, _ in points if thr >= 1.0)
    ref = full if reference_accuracy is None else reference_accuracy
    ok = [p for p in points if p[1] >= ref - max_drop - 1e-12]
    bound_met = bool(ok)
    thr, acc, frac = min(ok or [max(points, key=lambda p: (p[1], -p[2]))], key=lambda p: (p[2], -p[1], -p[0]))
    front, best_acc = [], -1.0
    for t, a, f in sorted(points, key=lambda p: (p[2], -p[1])):
        if a > best_acc:
            front.append({"threshold": t, "accuracy": a, "fraction": f})
            best_acc = a
    if store:
        exits.set_thresholds(**({"stream_threshold": thr} if early_time else {"threshold": thr}))
    return Calibration(thr, acc, full, frac, max_drop, early_time, len(conf), ref, bound_met, front)
