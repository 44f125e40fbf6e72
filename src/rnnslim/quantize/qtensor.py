"""QTensor: one stored weight matrix (codes, scales, zero points, codebook) as a module.

Its buffers are what goes into the model file (state_dict names like
`rnn.layers.0.qweights.weight_hh_l0.codes`). `dequantize()` returns the float32 matrix
and caches it: the cache is keyed by the buffers' identity and version counters, so
load_state_dict, `.to()` or any in-place edit of a buffer invalidates it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnslim.quantize.formats import BaseFormat, parse_format


class QTensor(nn.Module):
    def __init__(self, fmt: BaseFormat, shape: tuple[int, ...], name: str = "weight") -> None:
        super().__init__()
        self.fmt = parse_format(fmt)
        self.shape = tuple(int(s) for s in shape)
        try:
            layout = self.fmt.layout(self.shape)
        except ValueError as e:
            raise ValueError(f"cannot store {name} {self.shape} as {self.fmt.describe()}: {e}") from None
        for buf, (s, dt) in layout.items():
            self.register_buffer(buf, torch.zeros(s, dtype=dt))
        self._cache: tuple[tuple, Tensor] | None = None

    @classmethod
    def from_float(cls, w: Tensor, fmt: BaseFormat, name: str = "weight") -> QTensor:
        q = cls(fmt, tuple(w.shape), name)
        try:
            bufs = q.fmt.encode(w.detach().cpu())
        except ValueError as e:
            raise ValueError(f"cannot store {name} {tuple(w.shape)} as {q.fmt.describe()}: {e}") from None
        for k, t in bufs.items():
            getattr(q, k).copy_(t)
        return q.to(w.device)

    def _key(self) -> tuple:
        key = []
        for b in self.buffers(recurse=False):
            try:
                key.append((b.data_ptr(), b._version, b.device, b.dtype))
            except RuntimeError:  # inference-mode tensors have no version counter
                key.append((b.data_ptr(), None, b.device, b.dtype))
        return tuple(key)

    def dequantize(self) -> Tensor:
        """The float32 weight, shape `self.shape` (cached; no gradient)."""
        key = self._key()
        if self._cache is None or self._cache[0] != key:
            bufs = {k: b.cpu() for k, b in self.named_buffers(recurse=False)}
            with torch.no_grad():
                w = self.fmt.decode(bufs, self.shape)
            dev = next(self.buffers(recurse=False)).device
            self._cache = (key, w.to(dev))
        return self._cache[1]

    def stored_bytes(self) -> int:
        return sum(b.numel() * b.element_size() for b in self.buffers(recurse=False))

    @property
    def bits_per_weight(self) -> float:
        n = 1
        for s in self.shape:
            n *= s
        return 8 * self.stored_bytes() / n

    def _apply(self, fn, recurse=True):
        # model.half() / .to(bfloat16) would re-round the stored scales: keep stored dtypes
        # (only the device may change); forward passes cast the dequantized weight instead.
        before = dict(self._buffers)
        super()._apply(fn, recurse)
        for k, b in self._buffers.items():
            if b is not None and b.dtype != before[k].dtype:
                self._buffers[k] = before[k].to(b.device)
        self._cache = None
        return self

    def _load_from_state_dict(self, *args, **kwargs):
        self._cache = None
        super()._load_from_state_dict(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"{self.fmt.describe()}, shape={self.shape}, {self.bits_per_weight:.2f} bits/weight"


def logical_parameters(module: nn.Module) -> tuple[int, int]:
    """(weights, non-zero weights) counting each QTensor as the matrix it stores (not its
    packed bytes) plus every float parameter once; other buffers (ranges, masks) are not
    weights. For size tables of quantized models: packed codes hold 8 / bits weights per byte.
    """
    total = nonzero = 0
    seen: set[int] = set()
    for mod in module.modules():
        if isinstance(mod, QTensor):
            w = mod.dequantize()
            total += w.numel()
            nonzero += int(torch.count_nonzero(w))
    for p in module.parameters():
        if p.data_ptr() in seen:
            continue
        seen.add(p.data_ptr())
        total += p.numel()
        nonzero += int(torch.count_nonzero(p))
    return total, nonzero
