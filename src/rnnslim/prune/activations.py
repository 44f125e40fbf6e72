"""Sum of squares of the inputs that reach each weight, for activation-aware importance.

Forward hooks on nn.Linear, nn.Embedding and nn.LSTM/GRU/RNN collect, over every
calibration token (eval mode, no dropout):

    Linear weight (O, I)            sum_t x_t^2                      -> (1, I)
    Embedding weight (V, E)         count of token v (one-hot input) -> (V, 1)
    RNN weight_ih_l{k} (G*H, I)     sum_t x_t^2 of layer k's input   -> (1, I)
    RNN weight_hh_l{k} (G*H, P)     sum_t h_{t-1}^2 (h_{-1} = h0)    -> (1, P)
    RNN weight_hr_l{k} (P, H)       sum_t (o_t * tanh(c_t))^2        -> (1, H)
    biases                          number of tokens                 -> ()

The recurrent inputs (h_{t-1}, and the pre-projection vector the fused kernels never
return) come from re-running each layer with the unfused reference cells of
rnnslim.recurrent.cells in float32, which also covers multi-layer torch modules whose
inner layer inputs are not visible to a hook.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from rnnslim.recurrent.cells import (
    DirectionWeights,
    direction_weights,
    gru_cell,
    lstm_cell,
    rnn_cell,
)
from rnnslim.recurrent.gates import CellType, cell_of_module
from rnnslim.tasks.base import Batch
from rnnslim.utils.device import model_device


class _Sums:
    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}

    def add(self, name: str, value: Tensor) -> None:
        value = value.detach().float().cpu()
        self.sums[name] = self.sums[name] + value if name in self.sums else value


def _run_direction_sums(cell: CellType, w: DirectionWeights, x: Tensor, h0: Tensor, c0: Tensor | None,
                        reverse: bool, sums: _Sums, names: dict[str, str]) -> Tensor:
    """Run one direction (x: (T, B, I), float32) and add its input square sums; returns (T, B, P)."""
    no_proj = DirectionWeights(w.w_ih, w.w_hh, w.b_ih, w.b_hh, None)
    h, c = h0, c0
    sh = torch.zeros(h0.shape[-1])
    sr = torch.zeros(w.w_hr.shape[1]) if w.w_hr is not None else None
    outs: list[Tensor] = [None] * x.shape[0]  # type: ignore[list-item]
    for t in (range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])):
        sh += h.pow(2).sum(0).cpu()
        if cell is CellType.LSTM:
            r, c = lstm_cell(x[t], h, c, no_proj)  # r = o * tanh(c): (B, H)
            if w.w_hr is not None:
                sr += r.pow(2).sum(0).cpu()
                r = r @ w.w_hr.t()
            h = r
        elif cell is CellType.GRU:
            h = gru_cell(x[t], h, no_proj)
        else:
            h = rnn_cell(x[t], h, no_proj, relu=cell is CellType.RNN_RELU)
        outs[t] = h
    tokens = torch.tensor(float(x.shape[0] * x.shape[1]))
    sums.add(names["weight_ih"], x.pow(2).sum((0, 1)).unsqueeze(0))
    sums.add(names["weight_hh"], sh.unsqueeze(0))
    if sr is not None:
        sums.add(names["weight_hr"], sr.unsqueeze(0))
    for b in ("bias_ih", "bias_hh"):
        if getattr(w, "b_" + b[-2:]) is not None:
            sums.add(names[b], tokens)
    return torch.stack(outs, 0)


def _rnn_hook(prefix: str, sums: _Sums):
    def hook(module: nn.RNNBase, args, kwargs, output) -> None:
        x = args[0] if args else kwargs["input"]
        hx = args[1] if len(args) > 1 else kwargs.get("hx")
        if isinstance(x, nn.utils.rnn.PackedSequence):
            raise ValueError(f"{prefix or 'module'}: activation scores do not support PackedSequence inputs")
        cell = cell_of_module(module)
        x = x.detach().float()
        if x.dim() == 2:  # unbatched (T, I)
            x = x.unsqueeze(1)
            if hx is not None:
                hx = tuple(h.unsqueeze(1) for h in hx) if isinstance(hx, tuple) else hx.unsqueeze(1)
        elif module.batch_first:
            x = x.transpose(0, 1)
        D, B = (2 if module.bidirectional else 1), x.shape[1]
        P, H = getattr(module, "proj_size", 0) or module.hidden_size, module.hidden_size
        if hx is None:
            h0 = x.new_zeros(module.num_layers * D, B, P)
            c0 = x.new_zeros(module.num_layers * D, B, H) if cell is CellType.LSTM else None
        elif cell is CellType.LSTM:
            h0, c0 = (s.detach().float() for s in hx)
        else:
            h0, c0 = hx.detach().float(), None
        layer_in = x
        for layer in range(module.num_layers):
            dir_outs = []
            for d in range(D):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                w = direction_weights(module, layer, d == 1)
                w = DirectionWeights(*(None if t is None else t.detach().float() for t in
                                       (w.w_ih, w.w_hh, w.b_ih, w.b_hh, w.w_hr)))
                names = {t: f"{prefix}{t}{sfx}" for t in ("weight_ih", "weight_hh", "weight_hr", "bias_ih", "bias_hh")}
                k = layer * D + d
                dir_outs.append(_run_direction_sums(cell, w, layer_in, h0[k], None if c0 is None else c0[k],
                                                    d == 1, sums, names))
            layer_in = torch.cat(dir_outs, 2) if D == 2 else dir_outs[0]

    return hook


def _linear_hook(prefix: str, sums: _Sums):
    def hook(module: nn.Linear, args, output) -> None:
        x = args[0].detach().float().reshape(-1, module.in_features)
        sums.add(prefix + "weight", x.pow(2).sum(0).unsqueeze(0))
        if module.bias is not None:
            sums.add(prefix + "bias", torch.tensor(float(x.shape[0])))

    return hook


def _embedding_hook(prefix: str, sums: _Sums):
    def hook(module: nn.Embedding, args, output) -> None:
        counts = torch.bincount(args[0].detach().reshape(-1).cpu(), minlength=module.num_embeddings)
        sums.add(prefix + "weight", counts.float().unsqueeze(1))

    return hook


@torch.no_grad()
def input_square_sums(model: nn.Module, batches: Sequence[Batch], stateful: bool = False) -> dict[str, Tensor]:
    """{param name: sum of squared inputs, broadcastable to the parameter} (see module doc)."""
    sums, handles = _Sums(), []
    for path, mod in model.named_modules():
        prefix = f"{path}." if path else ""
        if isinstance(mod, nn.RNNBase):
            handles.append(mod.register_forward_hook(_rnn_hook(prefix, sums), with_kwargs=True))
        elif isinstance(mod, nn.Linear):
            handles.append(mod.register_forward_hook(_linear_hook(prefix, sums)))
        elif isinstance(mod, nn.Embedding):
            handles.append(mod.register_forward_hook(_embedding_hook(prefix, sums)))
    was_training = model.training
    device = model_device(model)
    model.eval()
    try:
        state = None
        for batch in batches:
            out = model(batch.inputs.to(device), state) if state is not None else model(batch.inputs.to(device))
            state = out[1] if stateful and isinstance(out, tuple) else None
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    # tied parameters: report sums under the name named_parameters() uses (the first one)
    canonical = {id(p): n for n, p in model.named_parameters()}
    out: dict[str, Tensor] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if name in sums.sums:
            key = canonical[id(p)]
            out[key] = out[key] + sums.sums[name] if key in out else sums.sums[name]
    return out
