"""Importance criteria: pure functions from a model (+ calibration data) to scores.

Every criterion returns {param_name: score} with each score a float32 tensor of the
parameter's shape (higher = more important); the model's weights are left untouched
(gradients are taken with torch.autograd.grad, so `.grad` is not modified either).

    magnitude   |w|
    taylor      first order: mean over calibration batches of |g * w| (the loss change
                when w is set to zero, to first order; averaged as absolute values because
                the mean gradient of a trained model is close to zero)
    fisher      second order, OBD with the empirical diagonal Fisher: 0.5 * mean(g^2) * w^2
                (g: gradient of each batch's mean loss, so this is a batch-level Fisher)
    activation  |w| * ||x||, x the inputs that reach the weight over all calibration
                tokens (Wanda): the layer input for weight_ih, h_{t-1} for weight_hh, the
                pre-projection o*tanh(c) for weight_hr, sqrt(token count) for embedding
                rows and biases, the decoder's input for decoder.weight

Reducers turn per-weight scores into structured ones: `per_gate_row` (one score per packed
gate row) and `per_unit` (one per hidden unit, summed once over every weight that goes away
with that unit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum

import torch
from torch import Tensor, nn

from rnnslim.recurrent.gates import CellType, as_cell, gate_count
from rnnslim.recurrent.state import call_model, detach_state
from rnnslim.tasks.base import Batch, Task
from rnnslim.utils.device import model_device
from rnnslim.utils.params import weight_parameters
from rnnslim.utils.progress import track

Scores = dict[str, Tensor]


class Criterion(str, Enum):
    MAGNITUDE = "magnitude"
    TAYLOR = "taylor"
    FISHER = "fisher"
    ACTIVATION = "activation"

    @property
    def needs_data(self) -> bool:
        return self is not Criterion.MAGNITUDE


@dataclass
class Calibration:
    """A few batches plus how to score them. stateful: carry the recurrent state across
    consecutive batches (language models, whose calibration batches are consecutive windows)."""

    batches: list[Batch]
    loss_fn: Callable[[Tensor, Batch], Tensor] | None = None
    stateful: bool = False


def as_calibration(data: Task | Calibration | Sequence[Batch], n_batches: int = 8,
                   loss_fn: Callable[[Tensor, Batch], Tensor] | None = None, batch_size: int = 16,
                   seq_len: int = 64, seed: int = 0) -> Calibration:
    """A Calibration from a Task (its calibration_batches and loss), or from batches + loss_fn."""
    if isinstance(data, Calibration):
        return data
    if isinstance(data, Task):
        return Calibration(data.calibration_batches(n_batches, batch_size, seq_len, seed), loss_fn or data.loss,
                           data.stateful)
    batches = list(data)
    if not batches or not all(isinstance(b, Batch) for b in batches):
        raise TypeError("calibration data must be a Task, a Calibration or a non-empty list of Batch")
    return Calibration(batches, loss_fn)


def _names(model: nn.Module, names: Sequence[str] | None) -> list[str]:
    if names is None:
        return [n for n, p in weight_parameters(model) if p.dtype.is_floating_point]  # no dtype anchors
    return list(names)


def magnitude(w: Tensor) -> Tensor:
    """|w| as float32."""
    return w.detach().abs().float()


def magnitude_scores(model: nn.Module, names: Sequence[str] | None = None) -> Scores:
    return {n: magnitude(model.get_parameter(n)) for n in _names(model, names)}


# --- gradient based -----------------------------------------------------------------------
@contextmanager
def _scoring_mode(model: nn.Module):
    """Deterministic forward for scoring: eval mode (no dropout), except that recurrent
    modules run in train mode with their own dropout set to 0, because cuDNN's RNN backward
    refuses eval mode. Restores every module's mode afterwards."""
    modes = {m: m.training for m in model.modules()}
    rnn_dropout = {m: m.dropout for m in model.modules() if isinstance(m, nn.RNNBase)}
    model.eval()
    for m in rnn_dropout:
        m.dropout = 0.0
        m.train()
    try:
        yield
    finally:
        for m, p in rnn_dropout.items():
            m.dropout = p
        for m, t in modes.items():
            m.training = t


def _forward(model: nn.Module, inputs: Tensor, state):
    out = call_model(model, inputs, state)
    if isinstance(out, tuple):
        return out[0], out[1]
    return out, None


def _device(model: nn.Module) -> torch.device:
    return model_device(model)


def batch_gradients(model: nn.Module, calibration: Calibration, names: Sequence[str]) -> Iterator[dict[str, Tensor]]:
    """Yield {name: gradient of the batch's mean loss} for each calibration batch."""
    if calibration.loss_fn is None:
        raise ValueError("gradient-based importance needs a loss: pass a Task or loss_fn=...")
    params = [model.get_parameter(n) for n in names]
    flags = [p.requires_grad for p in params]
    device = _device(model)
    try:
        for p in params:
            p.requires_grad_(True)
        with _scoring_mode(model):
            state = None
            for batch in track(calibration.batches, desc="importance"):
                batch = batch.to(device)
                outputs, new_state = _forward(model, batch.inputs, state if calibration.stateful else None)
                loss = calibration.loss_fn(outputs, batch)
                grads = torch.autograd.grad(loss, params, allow_unused=True)
                state = detach_state(new_state)
                yield {n: (torch.zeros_like(p) if g is None else g).float() for n, p, g in zip(names, params, grads)}
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)


def _mean_over_batches(model: nn.Module, data, loss_fn, n_batches: int, names: Sequence[str] | None,
                       term: Callable[[Tensor, Tensor], Tensor]) -> Scores:
    """mean_b term(g_b, w) per weight, g_b the gradient of calibration batch b."""
    names = _names(model, names)
    cal = as_calibration(data, n_batches, loss_fn)
    acc = {n: torch.zeros_like(model.get_parameter(n), dtype=torch.float32) for n in names}
    for grads in batch_gradients(model, cal, names):
        for n in names:
            acc[n] += term(grads[n], model.get_parameter(n).detach().float())
    return {n: a / len(cal.batches) for n, a in acc.items()}


def taylor_scores(model: nn.Module, data, loss_fn=None, n_batches: int = 8,
                  names: Sequence[str] | None = None) -> Scores:
    """First-order Taylor importance mean_b |g_b * w| (zero wherever the gradient is zero)."""
    return _mean_over_batches(model, data, loss_fn, n_batches, names, lambda g, w: (g * w).abs())


def fisher_scores(model: nn.Module, data, loss_fn=None, n_batches: int = 8,
                  names: Sequence[str] | None = None) -> Scores:
    """OBD saliency 0.5 * F_ii * w^2 with the empirical diagonal Fisher F_ii = mean_b g_b^2."""
    return _mean_over_batches(model, data, loss_fn, n_batches, names, lambda g, w: 0.5 * g.pow(2) * w.pow(2))


# --- activation aware ---------------------------------------------------------------------
def activation_scores(model: nn.Module, data, n_batches: int = 8, names: Sequence[str] | None = None) -> Scores:
    """|w| * ||x|| (Wanda) from calibration data; see the module docstring for which x."""
    from rnnslim.prune.activations import input_square_sums

    cal = as_calibration(data, n_batches)
    sums = input_square_sums(model, cal.batches, cal.stateful)  # {name: (cols,) | (rows, 1) | ()}
    wanted = [n for n in _names(model, None) if n in sums] if names is None else list(names)
    missing = [n for n in wanted if n not in sums]
    if missing:
        raise ValueError(f"no calibration inputs reach {missing[:5]}: activation scores cover weights and biases of "
                         "nn.Linear, nn.Embedding and nn.LSTM/GRU/RNN modules that run in the forward pass")
    return {n: magnitude(model.get_parameter(n)) * sums[n].sqrt() for n in wanted}


def score_model(model: nn.Module, criterion: Criterion | str, calibration=None, names: Sequence[str] | None = None,
                n_batches: int = 8) -> Scores:
    """Dispatch to one criterion; `calibration` (Task / batches / Calibration) for data-driven ones."""
    criterion = Criterion(criterion)
    if criterion is Criterion.MAGNITUDE:
        return magnitude_scores(model, names)
    if calibration is None:
        raise ValueError(f"criterion {criterion.value!r} needs calibration data (a Task or a list of batches)")
    fn = {Criterion.TAYLOR: taylor_scores, Criterion.FISHER: fisher_scores}.get(criterion)
    if fn is not None:
        return fn(model, calibration, n_batches=n_batches, names=names)
    return activation_scores(model, calibration, n_batches=n_batches, names=names)


# --- reducers -----------------------------------------------------------------------------
def per_gate_row(scores: Tensor, cell: CellType | str, hidden_size: int) -> Tensor:
    """Scores of a packed tensor (G*H, ...) -> (G, H): the sum over each gate row."""
    g = gate_count(cell)
    if scores.shape[0] != g * hidden_size:
        raise ValueError(f"a {as_cell(cell).value} tensor of hidden "
                         f"size {hidden_size} has {g * hidden_size} rows, these scores have {scores.shape[0]}")
    return scores.reshape(g, hidden_size, -1).sum(-1)


def per_unit(model: nn.Module, scores: Scores, layer: int) -> Tensor:
    """One score per hidden unit of `layer` of a SequenceModel: shape (H,).

    Sums, counting each weight once, every score entry that goes away with unit k: its
    gate rows in weight_ih / weight_hh / bias_ih / bias_hh of both directions; without a
    projection its column k in weight_hh and its columns d*H + k in the consumer (the next
    layer's weight_ih, both directions, or decoder.weight); with an LSTM projection its
    column k in weight_hr (the consumers then read the P projected features, not units).
    Tensors absent from `scores` contribute nothing.
    """
    stack = model.rnn
    if not 0 <= layer < stack.num_layers:
        raise IndexError(f"layer {layer} out of range: the model has {stack.num_layers} recurrent layers")
    spec, cell = stack.specs[layer], stack.cell
    H, G, D = spec.hidden_size, gate_count(stack.cell), spec.directions
    base = f"rnn.layers.{layer}."
    total = torch.zeros(H, dtype=torch.float32)
    get = lambda name: None if name not in scores else scores[name].detach().float().cpu()  # noqa: E731
    for sfx in ("", "_reverse")[:D]:
        for t in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            s = get(f"{base}{t}_l0{sfx}")
            if s is not None:
                total += per_gate_row(s, cell, H).sum(0)
        if spec.proj_size:
            s = get(f"{base}weight_hr_l0{sfx}")  # (P, H)
            if s is not None:
                total += s.sum(0)
            continue
        s = get(f"{base}weight_hh_l0{sfx}")  # (G*H, H): column k, minus entries already in unit k's rows
        if s is not None:
            diag = s.reshape(G, H, H).diagonal(dim1=1, dim2=2).sum(0)  # (H,) = sum_g s[g*H + k, k]
            total += s.sum(0) - diag
    if not spec.proj_size:
        if layer + 1 < stack.num_layers:
            d_next = stack.specs[layer + 1].directions
            consumers = [f"rnn.layers.{layer + 1}.weight_ih_l0{sfx}" for sfx in ("", "_reverse")[:d_next]]
        else:
            consumers = ["decoder.weight"]
        for name in consumers:
            s = get(name)
            if s is None and name == "decoder.weight" and getattr(model.spec, "tie_weights", False):
                s = get("embedding.weight")
            if s is not None:  # (R, D*H): column d*H + k belongs to unit k of direction d
                total += s.reshape(s.shape[0], D, H).sum((0, 1))
    return total

