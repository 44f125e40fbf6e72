"""user_view: call a captured SequenceModel (float or integer int8) the way the user called
their own module: the user's input layout and arguments in, the user's output shape,
activation and returned state (torch's (h, c) layout) out.

    model = capture(my_lstm, (x, None))
    quantize_int8_(model, Int8Config(mode="integer"), calibration=[...])
    view = user_view(model)
    out, hidden = view(x, hidden)           # exactly as my_lstm(x, hidden) is called
    hidden = view.init_hidden(batch_size)   # zeros with the (possibly pruned) sizes
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnslim.models.capture_info import CaptureInfo
from rnnslim.models.sequence import InputKind, apply_output_activation
from rnnslim.recurrent.gates import CellType


def capture_info_of(model: nn.Module) -> CaptureInfo:
    info = getattr(model, "capture_info", None)
    if info is None:
        raise ValueError(f"{type(model).__name__} has no capture_info: user_view needs a model made by "
                         "rnnslim.capture.capture (or loaded from one saved with save_model)")
    return info if isinstance(info, CaptureInfo) else CaptureInfo.model_validate(info)


class UserView(nn.Module):
    """The captured `model` behind the user's calling convention (see the module docstring)."""

    def __init__(self, model: nn.Module, info: CaptureInfo) -> None:
        super().__init__()
        self.model = model
        self.info = info

    def extra_repr(self) -> str:
        return f"source={self.info.source_class}, layout={self.info.layout}"

    # --- layouts ----------------------------------------------------------------------------
    def to_time_major(self, x: Tensor) -> Tensor:
        """The user's data (axes info.input_axes) -> (T, B) ids or (T, B, F) features."""
        roles = list(self.info.input_axes)
        order = [roles.index(r) for r in ("T", "B", "F") if r in roles]
        x = x.permute(order)
        if "F" not in roles and self.model.spec.input_kind is not InputKind.EMBEDDING:
            x = x.unsqueeze(-1)  # the user's (B, T) series read as one feature
        return x

    def to_user(self, y: Tensor) -> Tensor:
        """Logits (T, B, O) or (B, O) -> the user's output: activation, then the user's axes."""
        y = apply_output_activation(y, self.info.output_activation)
        have = ["T", "B", "F"] if y.dim() == 3 else ["B", "F"]
        sizes = dict(zip(have, y.shape))
        wanted = [r for group in self.info.output_axes for r in group]
        order = wanted + [r for r in have if r not in wanted]  # a role the user squeezed away has size 1
        y = y.permute([have.index(r) for r in order])
        return y.reshape([math.prod(sizes[r] for r in group) for group in self.info.output_axes])

    # --- state ------------------------------------------------------------------------------
    def lstm(self) -> bool:
        return self.model.spec.cell is CellType.LSTM

    def module_layers(self, m: int) -> tuple[int, int]:
        """Stack layers [first, end) of the user's recurrent module m (a one-module model whose layers
        were removed since capture holds them all)."""
        n, mods = self.model.rnn.num_layers, self.info.modules
        if mods and mods[-1][1] == n:
            return mods[m]
        if len(mods) == 1:
            return 0, n
        raise ValueError(f"the model has {n} recurrent layers, but its capture record splits {mods[-1][1] if mods else 0} "
                         "among the user's recurrent modules (layers were removed?): user_view cannot map the states")

    def state_in(self, states: dict[int, object], batch: int, device) -> list | None:
        """Per-module user states (torch layout) -> SequenceModel's per-layer list (zeros elsewhere)."""
        if all(s is None for s in states.values()):
            return None
        zero = self.model.rnn.init_state(batch, device=device)
        out = list(zero)
        for m, st in states.items():
            if st is None:
                continue
            first, end = self.module_layers(m)
            if isinstance(st, list):  # rnnslim's per-layer state (a stack of unequal layers)
                out[first:end] = st
                continue
            offset = 0
            for k in range(first, end):
                d = self.model.rnn.specs[k].directions
                out[k] = (st[0][offset:offset + d], st[1][offset:offset + d]) if self.lstm() else st[offset:offset + d]
                offset += d
        return out

    def state_out(self, state: list, m: int):
        first, end = self.module_layers(m)
        layers = state[first:end]
        if self.info.module_kinds and self.info.module_kinds[m] == "per_layer":
            return list(layers)
        if self.lstm():
            return torch.cat([s[0] for s in layers]), torch.cat([s[1] for s in layers])
        return torch.cat(layers)

    def init_hidden(self, batch_size: int):
        """Zeros in torch's layout for every state argument of forward (one: that state itself)."""
        zero = self.model.rnn.init_state(batch_size)
        states = [self.state_out(zero, int(a.split(":")[1])) for a in self.info.arguments if a.startswith("state:")]
        return states[0] if len(states) == 1 else tuple(states)

    # --- call -------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        names = self.info.arguments
        bound = dict(zip(range(len(args)), args))
        for key, value in kwargs.items():
            bound[self._position(key)] = value
        data, states = None, {}
        for i, role in enumerate(names):
            value = bound.get(i)
            if role == "data":
                data = value
            elif role.startswith("state:"):
                states[int(role.split(":")[1])] = value
        if data is None:
            raise ValueError(f"{self.info.source_class}'s data argument is missing")
        x = self.to_time_major(data)
        batch = x.shape[1]
        y, state = self.model(x, self.state_in(states, batch, x.device))
        out = self.to_user(y)
        return self._returns(self.info.returns, out, state)

    def _position(self, key: str) -> int:
        keys = self.info.argument_names
        if key not in keys:
            raise TypeError(f"{self.info.source_class}.forward has no argument {key!r}")
        return keys.index(key)

    def _returns(self, template, out: Tensor, state: list):
        if isinstance(template, list):
            return tuple(self._returns(t, out, state) for t in template)
        if template == "out":
            return out
        return self.state_out(state, int(template.split(":")[1]))


def user_view(model: nn.Module) -> UserView:
    """`model` (captured by rnnslim.capture.capture; float, pruned or int8) called like the user's module."""
    return UserView(model, capture_info_of(model)).eval()
