"""A float SequenceModel holding the (dequantized) weights of any rnnslim model.

Exporters that rebuild a model in another framework (tflite.py) start from float weights:
a float model's own, or what a quantized model's codes and scales stand for:

    weight-only (QuantRecurrent / QuantEmbedding / QuantLinear)  torch_export.float_weights_copy
    int8 dynamic / static (Int8Recurrent / Int8Linear / Int8Embedding)  codes x per-row scale
    int8 integer (IntegerRecurrent / IntegerLinear / IntegerEmbedding)   codes x scale; the Q.12
        recurrent bias split back into b_ih / b_hh (GRU: [r | z | n_x | n_h] -> b_hn in b_hh),
        the Linear's accumulator-unit bias times s_in * s_w[row]

The copy is a new model (the input is never modified); quantization error stays in the weights.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from rnnslim.models.sequence import SequenceModel, build_model
from rnnslim.quantize.int8.emulated import Int8Embedding, Int8Linear, Int8Recurrent
from rnnslim.quantize.int8.fixedpoint import PRE_FRAC
from rnnslim.quantize.int8.integer import IntegerEmbedding, IntegerLinear, IntegerRecurrent
from rnnslim.recurrent.gates import CellType

INT8_LAYERS = (Int8Recurrent, Int8Linear, Int8Embedding, IntegerRecurrent, IntegerLinear, IntegerEmbedding)


def _rows(codes: Tensor, scale: Tensor) -> Tensor:
    """int8 codes (R, C) x per-row scales (R,) (or one scale) -> float32 (R, C)."""
    s = scale.float().reshape(-1, 1) if scale.numel() > 1 else scale.float()
    return codes.float() * s


def _recurrent(mod) -> dict[str, Tensor]:
    """torch.nn.LSTM/GRU tensors (suffix _l0) of a unidirectional int8 recurrent layer."""
    out = {"weight_ih_l0": _rows(mod.w_ih, mod.w_ih_scale), "weight_hh_l0": _rows(mod.w_hh, mod.w_hh_scale)}
    if isinstance(mod, Int8Recurrent):
        out.update(bias_ih_l0=mod.b_ih.float().clone(), bias_hh_l0=mod.b_hh.float().clone())
        return out
    b = mod.bias.double() / (1 << PRE_FRAC)  # Q.12 -> real
    G_H = mod.w_ih.shape[0]
    if mod.cell is CellType.GRU:  # [r | z | n_x | n_h] (4H): r, z biases summed, n_h kept apart (r scales it)
        H = G_H // 3
        out["bias_ih_l0"] = b[: 3 * H].float()
        out["bias_hh_l0"] = torch.cat([torch.zeros(2 * H, dtype=torch.float64), b[3 * H:]]).float()
    else:
        out["bias_ih_l0"], out["bias_hh_l0"] = b[:G_H].float(), torch.zeros(G_H)
    return out


def _linear(mod) -> dict[str, Tensor]:
    w = _rows(mod.weight, mod.weight_scale)
    if mod.bias is None:
        return {"weight": w}
    if isinstance(mod, IntegerLinear):  # bias in accumulator units: s_in * s_w[row] each
        return {"weight": w, "bias": (mod.bias.double() * float(mod.in_scale) * mod.weight_scale.double()).float()}
    return {"weight": w, "bias": mod.bias.float().clone()}


def _embedding(mod) -> dict[str, Tensor]:
    return {"weight": _rows(mod.weight, mod.weight_scale if isinstance(mod, Int8Embedding) else mod.scale)}


def dequantized_copy(model: SequenceModel) -> tuple[SequenceModel, list[str]]:
    """(float SequenceModel with the same spec and the weights `model` stands for, paths of the layers
    that were dequantized). Raises ValueError for a layer this does not know how to dequantize."""
    from rnnslim.export.torch_export import float_weights_copy

    src, done = float_weights_copy(model)  # weight-only layers -> torch layers (a copy)
    state: dict[str, Tensor] = {}
    for path, mod in src.named_modules():
        if not isinstance(mod, INT8_LAYERS):
            continue
        if getattr(mod, "directions", 1) != 1 or getattr(mod, "proj_size", 0):
            raise ValueError(f"{path}: a bidirectional or projected int8 layer has no float twin here")
        part = _recurrent(mod) if isinstance(mod, (Int8Recurrent, IntegerRecurrent)) else \
            _linear(mod) if isinstance(mod, (Int8Linear, IntegerLinear)) else _embedding(mod)
        state.update({f"{path}.{k}": v for k, v in part.items()})
        done.append(path)
    if not done:
        return src, []
    out = build_model(src.spec)
    own = {k: v for k, v in src.state_dict().items() if k in out.state_dict() and k not in state
           and not any(k.startswith(p + ".") for p in done)}
    missing = set(out.state_dict()) - set(own) - set(state)
    if missing:
        raise ValueError(f"cannot rebuild float weights for {', '.join(sorted(missing)[:4])}: the model holds "
                         "layers this exporter does not dequantize; export its float model")
    out.load_state_dict({**own, **state}, strict=True)
    for attr in ("task_meta", "source_path", "history"):
        if hasattr(model, attr):
            setattr(out, attr, copy.deepcopy(getattr(model, attr)))
    return out.eval(), done


def is_integer_model(model: nn.Module) -> bool:
    """True when the model holds int8 integer layers (IntegerRunner's kind of model)."""
    return any(isinstance(m, IntegerRecurrent) for m in model.modules())
