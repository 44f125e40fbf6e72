"""DtypeAnchored: quantized layers still answer `next(model.parameters())`.

User code commonly asks a model for its dtype and device through its first parameter; the
PyTorch word-language-model example builds its initial state that way:

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        return weight.new_zeros(self.nlayers, bsz, self.nhid)

A layer that stores int8 codes and scales in buffers has no parameters, so after int8 a
whole model may have none and that line raises StopIteration. Every quantized layer kind
therefore holds one 0-element float parameter, `dtype_anchor` (requires_grad=False), that
follows the layer through `.to()`, `.cuda()`, `.half()` and deepcopy. It holds no value,
so it is left out of the state dict (files, stored bytes, size accounting and the tensor
list of saved models are unchanged) and a state dict without it loads (strict too).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnslim.utils.params import ANCHOR  # one name, also known to graph/ and prune/ (they skip it)


class DtypeAnchored(nn.Module):
    """Base of rnnslim's quantized layers: registers `dtype_anchor` first (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_parameter(ANCHOR, nn.Parameter(torch.empty(0), requires_grad=False))

    def anchor_like_(self, ref: Tensor | None) -> None:
        """Give the anchor the dtype of the float tensor `ref` replaced (e.g. a float64 model stays float64
        to user code); the device follows the layer's own tensors."""
        if ref is not None and ref.is_floating_point():
            self.dtype_anchor.data = torch.empty(0, dtype=ref.dtype, device=self.dtype_anchor.device)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination.pop(prefix + ANCHOR, None)  # no value to store

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if prefix + ANCHOR in missing_keys:  # never stored
            missing_keys.remove(prefix + ANCHOR)
