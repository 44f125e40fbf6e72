"""Early-exit inference that really skips work, and what it executed.

    r = exit_predict(model, x)                       # x (T, B, F), equal lengths; model.exits.threshold
    r.logits (B, C), r.exit_layer (B,) 1..L, r.layer_steps, r.fraction
    r = exit_predict(model, x, early_time=True)      # streaming: step by step, stops reading when confident

Exit criterion: the largest softmax probability of an exit's logits (rnnslim.early_exit.outputs.
confidence); a sample stops at the first exit with confidence >= threshold. A threshold of
1.0 or more disables the exits (a float32 softmax can round to exactly 1): no head is even
evaluated and the result is the full model's. Threshold 0 stops every sample at exit 1.

Whole sequence (early_time False): layer 1 runs over the whole batch; exit 1 reads its
readout; only the samples below the threshold go on to layer 2 (the batch shrinks), and so
on; the survivors of layer L take the model's decoder. Layer-steps executed: sum over
samples of T x layers run.

Streaming (early_time True): the sequence is read one step at a time with the state carried,
as data arriving. At step t the layers run in order on the samples still active, each
followed by its exit (the last layer's exit is the decoder); a sample stops reading at the
first confident exit, so neither its remaining steps nor the deeper layers of that step are
computed. At the last step the decoder's answer is taken. Layer-steps executed: for a sample
stopping at step t (0-based) after layer d (1-based): L x t + d.

Inputs must hold sequences of one length (no padding: what ClassifyTask.equal_length_batches
yields); a padded batch is computed as the model would compute it (padding steps counted).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnslim.early_exit.heads import require_exits
from rnnslim.early_exit.outputs import confidence
from rnnslim.models.sequence import Readout, read_out


@dataclass
class ExitResult:
    logits: Tensor  # (B, C): the logits of the exit each sample took
    exit_layer: Tensor  # (B,) 1-based: the layer after which each sample stopped (L: the decoder)
    steps_read: Tensor  # (B,) time steps read (T unless early_time stopped earlier)
    layer_steps: int  # recurrent layer-steps executed (one layer, one time step, one sample)
    total_layer_steps: int  # what the full model executes: T x L x B
    head_evals: int  # exit evaluations the full model does not do (sample x head; streaming: the decoder
    #                  before the last step too): the overhead

    @property
    def fraction(self) -> float:
        """Share of the full model's layer-steps that ran."""
        return self.layer_steps / max(1, self.total_layer_steps)


def _threshold(model: nn.Module, threshold: float | None, early_time: bool) -> float:
    exits = require_exits(model)
    value = threshold if threshold is not None else (exits.stream_threshold if early_time else exits.threshold)
    if value is None:
        raise ValueError(f"no {'streaming ' if early_time else ''}threshold: pass threshold= or calibrate one "
                         "(rnnslim.early_exit.calibrate_exits_)")
    if not 0.0 <= value:
        raise ValueError(f"the exit threshold must be >= 0 (>= 1 disables the exits), got {value}")
    return float(value)


def _check_input(x: Tensor) -> None:
    if x.dim() != 3:
        raise ValueError(f"early-exit inference takes features (T, B, F), got a tensor of shape {tuple(x.shape)}")


@torch.no_grad()
def exit_predict(model: nn.Module, x: Tensor, threshold: float | None = None, early_time: bool = False) -> ExitResult:
    """Run `model` on x (T, B, F) with early exits (see the module docstring); eval mode."""
    thr = _threshold(model, threshold, early_time)
    _check_input(x)
    if early_time:
        return _stream(model, x, thr)
    return _whole(model, x, thr)


class _Answers:
    """The exits' answers, collected as (rows, logits, layer, steps read) and assembled once at
    the end: a batch that stops in one piece (always at batch 1) needs no scatter."""

    def __init__(self, B: int, T: int, device) -> None:
        self.B, self.T, self.device, self.parts = B, T, device, []

    def add(self, rows: Tensor, z: Tensor, layer: int, read: int) -> None:
        self.parts.append((rows, z, layer, read))

    def result(self, steps: int, total: int, evals: int) -> ExitResult:
        if len(self.parts) == 1:  # everyone stopped at the same exit, rows in order
            _, z, layer, read = self.parts[0]
            full = lambda v: torch.full((self.B,), v, dtype=torch.long, device=self.device)  # noqa: E731
            return ExitResult(z, full(layer), full(read), steps, total, evals)
        logits = torch.empty(self.B, self.parts[0][1].shape[-1], device=self.device, dtype=self.parts[-1][1].dtype)
        exit_layer = torch.empty(self.B, dtype=torch.long, device=self.device)
        steps_read = torch.empty(self.B, dtype=torch.long, device=self.device)
        for rows, z, layer, read in self.parts:
            logits[rows], exit_layer[rows], steps_read[rows] = z.to(logits.dtype), layer, read
        return ExitResult(logits, exit_layer, steps_read, steps, total, evals)


def _split(done: Tensor) -> tuple[int, Tensor]:
    """(how many stop, the mask of those that go on); one device sync."""
    return int(done.sum()), ~done


def _whole(model: nn.Module, x: Tensor, thr: float) -> ExitResult:
    exits, layers = model.exits, model.rnn.layers
    T, B, L = x.shape[0], x.shape[1], len(layers)
    readout = model.spec.readout
    answers = _Answers(B, T, x.device)
    active = torch.arange(B, device=x.device)  # rows of the original batch still running
    b = B  # len(active), kept as a Python int (len() of a tensor is slow)
    h = model.encode(x)  # inference: the model's dropout is off
    steps = evals = 0
    for k, layer in enumerate(layers):
        h, _ = layer(h)  # (T, b, P*D) for the b active samples
        steps += T * b
        if k == L - 1:
            answers.add(active, model.decoder(read_out(h, readout)), L, T)
            break
        if thr >= 1.0:
            continue
        z = exits.heads[k](read_out(h, readout))  # (b, C)
        evals += b
        done = confidence(z) >= thr
        n_done, keep = _split(done)
        if n_done == b:
            answers.add(active, z, k + 1, T)
            break
        if n_done:
            answers.add(active[done], z[done], k + 1, T)
            active, h, b = active[keep], h[:, keep], b - n_done
    return answers.result(steps, T * L * B, evals)


def _select(state, keep: Tensor):
    """A layer's state (h or (h, c), batch in dim 1) for the rows `keep`."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s[:, keep] for s in state)
    return state[:, keep]


def _stream(model: nn.Module, x: Tensor, thr: float) -> ExitResult:
    exits, layers = model.exits, model.rnn.layers
    if any(s.bidirectional for s in model.rnn.specs):
        raise ValueError("streaming early exit (early_time) needs unidirectional layers: a bidirectional layer "
                         "reads the whole sequence before its first output")
    T, B, L = x.shape[0], x.shape[1], len(layers)
    mean = model.spec.readout is Readout.MEAN
    answers = _Answers(B, T, x.device)
    active = torch.arange(B, device=x.device)
    b = B  # len(active) as a Python int
    states: list = [None] * L
    sums: list = [None] * L  # running sums of each layer's outputs ("mean" readout)
    steps = evals = 0
    for t in range(T):
        h = model.encode(x[t : t + 1] if b == B else x[t : t + 1, active])  # (1, b, E): this step only
        last_step = t == T - 1
        for k, layer in enumerate(layers):
            h, states[k] = layer(h, states[k])
            steps += b
            r = h[0]
            if mean:
                sums[k] = r if sums[k] is None else sums[k] + r
                r = sums[k] / (t + 1)
            answer = k == L - 1 and last_step  # the decoder at the last step: everyone left stops
            if thr >= 1.0 and not answer:
                continue
            z = exits.heads[k](r) if k < L - 1 else model.decoder(r)
            if answer:
                answers.add(active, z, k + 1, t + 1)
                break
            evals += b
            n_done, keep = _split(confidence(z) >= thr)
            if n_done == b:
                answers.add(active, z, k + 1, t + 1)
                return answers.result(steps, T * L * B, evals)
            if n_done:
                answers.add(active[~keep], z[~keep], k + 1, t + 1)
                active, h, b = active[keep], h[:, keep], b - n_done
                states = [_select(s, keep) for s in states]
                sums = [None if s is None else s[keep] for s in sums]
    return answers.result(steps, T * L * B, evals)
