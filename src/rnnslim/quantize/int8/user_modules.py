"""Dynamic int8 on a user's own nn.Module (not rnnslim's SequenceModel).

Every torch LSTM / GRU / RNN inside the model (any number of layers, bidirectional,
proj_size, batch_first) becomes a TorchContractStack of per-layer Int8Recurrent modules:
the user's forward calls it exactly as before (torch's state shapes, `hidden_size`,
`num_layers`). nn.Linear layers become Int8Linear (cfg.quantize_decoder) and nn.Embedding
Int8Embedding (cfg.quantize_embedding); tied weights are quantized on both sides to the
same codes. Convolutions and everything else stay float.

Static and fully integer int8 need calibrated int8 activations between layers whose order
rnnslim knows, so they stay with SequenceModel; the error says so.
"""

from __future__ import annotations

from torch import nn

from rnnslim.io.modules import set_submodule
from rnnslim.quantize.int8.config import Int8Config, Int8Mode
from rnnslim.quantize.int8.emulated import Int8Embedding, Int8Linear, Int8Recurrent
from rnnslim.recurrent.torch_contract import TorchContractStack, single_layer_copies


def is_sequence_model(model: nn.Module) -> bool:
    return hasattr(model, "spec") and hasattr(getattr(model, "rnn", None), "layers")


def quantize_user_dynamic_(model: nn.Module, cfg: Int8Config) -> list[str]:
    """Dynamic int8 in place on a user's module; returns the paths of the replaced modules."""
    if cfg.mode is not Int8Mode.DYNAMIC:
        raise ValueError(f"int8 mode {cfg.mode.value!r} needs rnnslim's SequenceModel layout (calibrated int8 "
                         f"activations between known layers); {type(model).__name__} is your own module: use "
                         "Int8Config(mode='dynamic'), or weight-only quantize_(model, WeightOnly(bits=8))")
    recurrent = [(p, m) for p, m in model.named_modules() if isinstance(m, nn.RNNBase)]
    if not recurrent:
        raise ValueError(f"{type(model).__name__} holds no torch LSTM / GRU / RNN module to quantize")
    linears = [(p, m) for p, m in model.named_modules() if isinstance(m, nn.Linear)] if cfg.quantize_decoder else []
    embeddings = ([(p, m) for p, m in model.named_modules() if isinstance(m, nn.Embedding)]
                  if cfg.quantize_embedding else [])
    changed = []
    for path, m in recurrent:
        layers = [Int8Recurrent.from_float(layer, Int8Mode.DYNAMIC) for layer in single_layer_copies(m)]
        set_submodule(model, path, TorchContractStack.from_layers(m, layers).train(m.training))
        changed.append(path)
    for path, m in linears:
        set_submodule(model, path, Int8Linear.from_float(m, Int8Mode.DYNAMIC))
        changed.append(path)
    for path, m in embeddings:
        set_submodule(model, path, Int8Embedding.from_float(m))
        changed.append(path)
    return changed
