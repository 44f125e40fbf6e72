"""What an ONNX LSTM / GRU / RNN node means in torch's terms (for rnnslim.interop.onnx_import).

    LSTM  W (D, 4H, I), R (D, 4H, H), B (D, 8H) = [Wb | Rb], gates i,o,f,c -> torch i,f,g,o
    GRU   W (D, 3H, I), R (D, 3H, H), B (D, 6H), gates z,r,h -> torch r,z,n; linear_before_reset=1
          only (with 0, ONNX applies the reset gate to h before the recurrent matmul, torch after)
    RNN   W (D, H, I), R (D, H, H), B (D, 2H), activation Tanh or Relu

D = 1 (forward) or 2 (bidirectional; "reverse" alone is refused). Options torch's cells lack
(clip, input_forget, peepholes, sequence_lens, non-default activations, non-zero initial states)
are refused with the node's name.
"""

from __future__ import annotations

import numpy as np

from rnnslim.interop.assemble import DirectionWeights, ImportedLayer, reorder_gates
from rnnslim.interop.onnx_static import is_zero
from rnnslim.recurrent.gates import CellType

GATE_ORDERS = {"LSTM": ("iofc", "ifco"), "GRU": ("zrh", "rzh"), "RNN": ("h", "h")}  # ONNX letters, torch's order


def node_name(node) -> str:
    return f"{node.op_type} {node.name or '(unnamed)'!r}"


def recurrent_layer(node, op: str, attrs: dict, weights: list, args: list, input_size) -> ImportedLayer:
    """Check an LSTM / GRU / RNN node's options and convert its W, R, B to torch's layout."""
    what = f"node {node_name(node)}"
    w, r, bias = weights
    if w is None or r is None:
        raise ValueError(f"{what} has no constant W / R weights")
    direction = attrs.get("direction", "forward")
    if direction not in ("forward", "bidirectional"):
        raise ValueError(f"{what} has direction {direction!r}; rnnslim runs forward or bidirectional layers")
    if attrs.get("clip") is not None or attrs.get("input_forget", 0):
        raise ValueError(f"{what} uses clip or input_forget; torch's cells have neither")
    if len(args) > 4 and args[4] is not None:
        raise ValueError(f"{what} has sequence_lens (padded batches); rnnslim runs whole sequences")
    for pos, part in ((5, "initial_h"), (6, "initial_c"), (7, "P (peepholes)")):
        v = args[pos] if len(args) > pos else None
        if v is not None and not is_zero(v):
            raise ValueError(f"{what}: its {part} is not a constant zero tensor; rnnslim starts from zero states "
                             "without peepholes")
    acts = [a.lower() for a in attrs.get("activations", [])]
    cell = {"LSTM": CellType.LSTM, "GRU": CellType.GRU}.get(op, CellType.RNN_TANH)
    if op == "RNN":
        if any(a != acts[0] for a in acts) or (acts and acts[0] not in ("tanh", "relu")):
            raise ValueError(f"{what} has activations {acts}; rnnslim's simple RNN uses tanh or relu")
        cell = CellType.RNN_RELU if acts and acts[0] == "relu" else CellType.RNN_TANH
    else:
        want = ["sigmoid", "tanh", "tanh"] if op == "LSTM" else ["sigmoid", "tanh"]
        if acts and acts != want * (len(acts) // len(want)):
            raise ValueError(f"{what} has activations {acts}; torch's {op} uses {want}")
    if op == "GRU" and not attrs.get("linear_before_reset", 0):
        raise ValueError(f"{what} has linear_before_reset=0: ONNX then applies the reset gate to h before the "
                         "recurrent matmul, torch and rnnslim after it, so the outputs would differ")
    hidden = int(attrs.get("hidden_size", r.shape[-1]))
    order, torch_order = GATE_ORDERS[op]
    g, nd = len(order), 2 if direction == "bidirectional" else 1
    if bias is not None and bias.shape != (nd, 2 * g * hidden):
        raise ValueError(f"{what}: B has shape {bias.shape}, not ({nd}, {2 * g * hidden})")
    if w.shape != (nd, g * hidden, input_size) or r.shape != (nd, g * hidden, hidden):
        raise ValueError(f"{what}: W {w.shape} / R {r.shape} do not fit {nd} direction(s) x {g} gates x {hidden} "
                         f"units on {input_size} inputs")
    dirs = []
    for d in range(w.shape[0]):
        bd = np.zeros(2 * g * hidden, np.float32) if bias is None else bias[d]
        dirs.append(DirectionWeights(reorder_gates(w[d], order, torch_order, hidden),
                                     reorder_gates(r[d], order, torch_order, hidden),
                                     reorder_gates(bd[:g * hidden], order, torch_order, hidden),
                                     reorder_gates(bd[g * hidden:], order, torch_order, hidden)))
    return ImportedLayer(cell, hidden, dirs, node.name or op)
