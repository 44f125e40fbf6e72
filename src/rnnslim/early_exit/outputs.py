"""Every exit's logits from one full forward pass (training losses and calibration).

    with capture_layers(model) as hs:      # hs[k]: outputs (T, B, P*D) of recurrent layer k
        model(x)
    logits = exit_logits(model, hs)        # [(B, C)] per exit, the last being the decoder's
    per_step = exit_logits(model, hs, over_time=True)   # [(T, B, C)]: the readout of every prefix

Forward hooks on the recurrent layers read the outputs the model computes anyway, so
training needs no second pass.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import Tensor, nn

from rnnslim.early_exit.heads import require_exits
from rnnslim.models.sequence import Readout, read_out


@contextmanager
def capture_layers(model: nn.Module):
    """Collect each recurrent layer's outputs of the forward passes run inside the block (the
    list is cleared at every pass's first layer)."""
    hs: list[Tensor] = []

    def hook(k):
        def fn(module, args, output):
            if k == 0:
                hs.clear()
            hs.append(output[0])

        return fn

    handles = [layer.register_forward_hook(hook(k)) for k, layer in enumerate(model.rnn.layers)]
    try:
        yield hs
    finally:
        for h in handles:
            h.remove()


def prefix_readout(h: Tensor, readout: Readout) -> Tensor:
    """The readout of every prefix of h (T, B, H) -> (T, B, H): h itself for "last", the
    running mean for "mean"."""
    if readout is Readout.MEAN:
        steps = torch.arange(1, h.shape[0] + 1, device=h.device, dtype=h.dtype).view(-1, 1, 1)
        return h.cumsum(0) / steps
    return h


def exit_logits(model: nn.Module, hs: list[Tensor], over_time: bool = False) -> list[Tensor]:
    """Logits of exits 1 .. L (the model's decoder last) from captured layer outputs."""
    exits = require_exits(model)
    readout = model.spec.readout
    if len(hs) != len(model.rnn.layers):
        raise RuntimeError(f"captured {len(hs)} layer outputs for {len(model.rnn.layers)} layers")
    pick = (lambda h: prefix_readout(h, readout)) if over_time else (lambda h: read_out(h, readout))
    out = [head(pick(h)) for head, h in zip(exits.heads, hs[:-1])]
    return out + [model.decoder(model.drop(pick(hs[-1])))]


def confidence(logits: Tensor) -> Tensor:
    """The exit criterion: the largest softmax probability, (..., C) -> (...), computed in float32."""
    return logits.float().softmax(-1).amax(-1)
