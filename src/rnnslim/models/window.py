"""A temporal convolution front end as a Linear over windows of frames (a CRNN's Conv1d).

A Conv1d (F -> E channels, kernel k, zero padding p, stride 1) over time equals a Linear
[E, k*F] applied to every window of k consecutive frames of the zero-padded input. The float
SequenceModel, rnnslim.capture and the integer path all use these two helpers, so the window
layout (frame-major: element j*F + f is feature f of the window's frame j) is defined once.
Padding frames are zeros; the integer input quantization is symmetric, so they are code 0.
"""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F


def unfold_windows(x: Tensor, window: int, padding: int) -> Tensor:
    """x (T, B, F) -> windows (T + 2p - k + 1, B, k*F), zeros for the p frames at both ends."""
    if window == 1 and padding == 0:
        return x
    if x.dim() != 3:
        raise ValueError(f"a windowed input projection needs (T, B, F) features, got shape {tuple(x.shape)}")
    padded = F.pad(x, (0, 0, 0, 0, padding, padding))  # (T + 2p, B, F)
    if padded.shape[0] < window:
        raise ValueError(f"a sequence of {x.shape[0]} steps is shorter than the input window ({window} frames "
                         f"with padding {padding}); give at least {window - 2 * padding} steps")
    w = padded.unfold(0, window, 1)  # (T_out, B, F, k)
    return w.permute(0, 1, 3, 2).reshape(w.shape[0], w.shape[1], window * x.shape[2])  # (T_out, B, k*F)


def conv1d_as_linear_weight(weight: Tensor) -> Tensor:
    """A Conv1d weight (E, F, k) as the Linear weight (E, k*F) over unfold_windows' windows."""
    if weight.dim() != 3:
        raise ValueError(f"a Conv1d weight is (out, in, kernel), got shape {tuple(weight.shape)}")
    return weight.permute(0, 2, 1).reshape(weight.shape[0], -1)


def window_count(steps: int, window: int, padding: int) -> int:
    """Output steps of a window-k, padding-p, stride-1 convolution over `steps` frames."""
    return steps + 2 * padding - window + 1


__all__ = ["unfold_windows", "conv1d_as_linear_weight", "window_count"]
