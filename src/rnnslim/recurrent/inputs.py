"""The inputs that reach each weight matrix of a model, over calibration batches.

Forward hooks on nn.Linear, nn.Embedding and nn.LSTM/GRU/RNN report, per forward call,
what multiplied each weight (eval mode, no dropout), as a `WeightInputs` event:

    Linear weight (O, I)            x                     (N, I)   N = tokens of the call
    RNN weight_ih_l{k} (G*H, I)     x_t of layer k        (N, I)
    RNN weight_hh_l{k} (G*H, P)     h_{t-1} (h_{-1} = h0) (N, P)
    RNN weight_hr_l{k} (P, H)       o_t * tanh(c_t)       (N, H)   LSTM proj_size only
    Embedding weight (V, E)         the token ids         (N,)     in `ids`

The recurrent inputs (h_{t-1}, the pre-projection vector the fused kernels never return,
and the inputs of inner layers of a multi-layer torch module) come from re-running each
layer with the unfused reference cells of rnnslim.recurrent.cells in float32.

Consumers reduce the events as they like: sums of squares (activation-aware importance,
prune/activations.py), Gram matrices X^T X (second-order reconstruction, rnnslim.reconstruct).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from rnnslim.recurrent.cells import DirectionWeights, direction_weights, gru_cell, lstm_cell, rnn_cell
from rnnslim.recurrent.gates import CellType, cell_of_module
from rnnslim.recurrent.state import call_model
from rnnslim.utils.device import model_device
from rnnslim.utils.progress import track


@dataclass
class WeightInputs:
    """One op's inputs: weights {param name: (N, in) float32 CPU}, the op's bias names, and
    token ids of embeddings {param name: (N,) long}. `tokens` = N."""

    tokens: int
    weights: dict[str, Tensor] = field(default_factory=dict)
    biases: list[str] = field(default_factory=list)
    ids: dict[str, Tensor] = field(default_factory=dict)
    cell: CellType | None = None  # set for recurrent directions


InputSink = Callable[[WeightInputs], None]


def _run_direction(cell: CellType, w: DirectionWeights, x: Tensor, h0: Tensor, c0: Tensor | None,
                   reverse: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    """One direction over x (T, B, I) float32: (outputs (T, B, P), h_{t-1} (T, B, P),
    pre-projection r_t (T, B, H) or None), all in time order."""
    no_proj = DirectionWeights(w.w_ih, w.w_hh, w.b_ih, w.b_hh, None)
    h, c = h0, c0
    T = x.shape[0]
    outs: list[Tensor] = [None] * T  # type: ignore[list-item]
    prev: list[Tensor] = [None] * T  # type: ignore[list-item]
    pre: list[Tensor] = [None] * T  # type: ignore[list-item]
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        prev[t] = h
        if cell is CellType.LSTM:
            r, c = lstm_cell(x[t], h, c, no_proj)  # r = o * tanh(c): (B, H)
            pre[t] = r
            h = r @ w.w_hr.t() if w.w_hr is not None else r
        elif cell is CellType.GRU:
            h = gru_cell(x[t], h, no_proj)
        else:
            h = rnn_cell(x[t], h, no_proj, relu=cell is CellType.RNN_RELU)
        outs[t] = h
    r_all = torch.stack(pre, 0) if w.w_hr is not None else None
    return torch.stack(outs, 0), torch.stack(prev, 0), r_all


def _flat(t: Tensor) -> Tensor:
    return t.reshape(-1, t.shape[-1]).cpu()


def _time_major(module: nn.RNNBase, x: Tensor, hx):
    """(x (T, B, I) float32, hx with a batch dim) whatever the module's layout."""
    x = x.detach().float()
    if x.dim() == 2:  # unbatched (T, I)
        x = x.unsqueeze(1)
        if hx is not None:
            hx = tuple(h.unsqueeze(1) for h in hx) if isinstance(hx, tuple) else hx.unsqueeze(1)
    elif module.batch_first:
        x = x.transpose(0, 1)
    return x, hx


def _initial_state(module: nn.RNNBase, cell: CellType, x: Tensor, hx) -> tuple[Tensor, Tensor | None]:
    """(h0 (L*D, B, P), c0 (L*D, B, H) or None)."""
    D, B = (2 if module.bidirectional else 1), x.shape[1]
    P, H = getattr(module, "proj_size", 0) or module.hidden_size, module.hidden_size
    if hx is None:
        return x.new_zeros(module.num_layers * D, B, P), (
            x.new_zeros(module.num_layers * D, B, H) if cell is CellType.LSTM else None)
    if cell is CellType.LSTM:
        return hx[0].detach().float(), hx[1].detach().float()
    return hx.detach().float(), None


def _rnn_hook(prefix: str, sink: InputSink):
    def hook(module: nn.RNNBase, args, kwargs, output) -> None:
        x = args[0] if args else kwargs["input"]
        hx = args[1] if len(args) > 1 else kwargs.get("hx")
        if isinstance(x, nn.utils.rnn.PackedSequence):
            raise ValueError(f"{prefix or 'module'}: calibration inputs cannot be a PackedSequence")
        cell = cell_of_module(module)
        x, hx = _time_major(module, x, hx)
        h0, c0 = _initial_state(module, cell, x, hx)
        D = 2 if module.bidirectional else 1
        layer_in = x
        for layer in range(module.num_layers):
            dir_outs = []
            for d in range(D):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                w = direction_weights(module, layer, d == 1)
                w = DirectionWeights(*(None if t is None else t.detach().float() for t in
                                       (w.w_ih, w.w_hh, w.b_ih, w.b_hh, w.w_hr)))
                k = layer * D + d
                out, prev, pre = _run_direction(cell, w, layer_in, h0[k], None if c0 is None else c0[k], d == 1)
                event = WeightInputs(tokens=out.shape[0] * out.shape[1], cell=cell,
                                     weights={f"{prefix}weight_ih{sfx}": _flat(layer_in),
                                              f"{prefix}weight_hh{sfx}": _flat(prev)},
                                     biases=[f"{prefix}{b}{sfx}" for b, t in (("bias_ih", w.b_ih), ("bias_hh", w.b_hh))
                                             if t is not None])
                if pre is not None:
                    event.weights[f"{prefix}weight_hr{sfx}"] = _flat(pre)
                sink(event)
                dir_outs.append(out)
            layer_in = torch.cat(dir_outs, 2) if D == 2 else dir_outs[0]

    return hook


def _linear_hook(prefix: str, sink: InputSink):
    def hook(module: nn.Linear, args, output) -> None:
        x = args[0].detach().float().reshape(-1, module.in_features).cpu()
        sink(WeightInputs(tokens=x.shape[0], weights={prefix + "weight": x},
                          biases=[prefix + "bias"] if module.bias is not None else []))

    return hook


def _embedding_hook(prefix: str, sink: InputSink):
    def hook(module: nn.Embedding, args, output) -> None:
        ids = args[0].detach().reshape(-1).cpu()
        sink(WeightInputs(tokens=ids.numel(), ids={prefix + "weight": ids}))

    return hook


def _hook_for(mod: nn.Module, prefix: str, sink: InputSink):
    if isinstance(mod, nn.RNNBase):
        return mod.register_forward_hook(_rnn_hook(prefix, sink), with_kwargs=True)
    if isinstance(mod, nn.Linear):
        return mod.register_forward_hook(_linear_hook(prefix, sink))
    if isinstance(mod, nn.Embedding):
        return mod.register_forward_hook(_embedding_hook(prefix, sink))
    return None


@contextmanager
def weight_input_hooks(model: nn.Module, sink: InputSink, modules: set[str] | None = None):
    """While inside, every forward of a hooked op sends its WeightInputs to `sink`.
    `modules`: only these module paths (default: every Linear / Embedding / recurrent module)."""
    handles = []
    for path, mod in model.named_modules():
        if modules is not None and path not in modules:
            continue
        h = _hook_for(mod, f"{path}." if path else "", sink)
        if h is not None:
            handles.append(h)
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def forward(model: nn.Module, inputs: Tensor, state):
    """model(inputs[, state]) -> the next state to carry (None when the model returns none)."""
    out = call_model(model, inputs, state)
    return out[1] if isinstance(out, tuple) else None


@torch.no_grad()
def collect_weight_inputs(model: nn.Module, batches: Iterable, sink: InputSink, stateful: bool = False,
                          modules: set[str] | None = None) -> None:
    """Run `batches` (objects with `.inputs`) through `model` in eval mode and send every
    hooked op's WeightInputs to `sink` (see weight_input_hooks). stateful: carry the
    recurrent state across consecutive batches (language models)."""
    was_training = model.training
    device = model_device(model)
    model.eval()
    try:
        with weight_input_hooks(model, sink, modules):
            state = None
            for batch in track(batches, desc="calibrate"):
                nxt = forward(model, batch.inputs.to(device), state)
                state = nxt if stateful else None
    finally:
        model.train(was_training)


def canonical_names(model: nn.Module) -> dict[str, str]:
    """{every parameter name (tied ones included): the name named_parameters() uses}."""
    first = {id(p): n for n, p in model.named_parameters()}
    return {name: first[id(p)] for name, p in model.named_parameters(remove_duplicate=False)}


def shared_parameters(model: nn.Module) -> set[str]:
    """Names (all of them) of parameters that two or more modules share (tied weights)."""
    seen: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        seen.setdefault(id(p), []).append(name)
    return {n for names in seen.values() if len(names) > 1 for n in names}
