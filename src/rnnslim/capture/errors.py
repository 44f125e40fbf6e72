"""CaptureError and the user's source line of a traced operation (for refusals that say where)."""

from __future__ import annotations

import os
import re

import torch
import torch.fx as fx

_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)(?:\n[ \t]+(?!File ")(.*))?')
_TORCH_DIR = os.path.dirname(torch.__file__)
_OWN_DIR = os.path.dirname(os.path.abspath(__file__))


class CaptureError(ValueError):
    """The user's module cannot be captured exactly (an unsupported operation, a parity failure)."""


def source_line(node: fx.Node | None) -> str:
    """'file.py:LINE (code)' of the user's code that made `node`, or '' when fx recorded none."""
    frames = [m for m in _FRAME.finditer(getattr(node, "stack_trace", None) or "")
              if not m.group(1).startswith((_TORCH_DIR, _OWN_DIR))]
    if not frames:
        return ""
    path, line, _, code = frames[-1].groups()
    return f"{path}:{line}" + (f" ({code.strip()})" if code and code.strip() else "")


def where(node: fx.Node | None) -> str:
    """' at file.py:LINE (code)' for messages, or '' when unknown."""
    line = source_line(node)
    return f" at {line}" if line else ""


def refuse(node: fx.Node | None, message: str) -> CaptureError:
    """A CaptureError naming the operation's source line: `raise refuse(node, "...")`."""
    return CaptureError(f"{message}{where(node)}")
