"""Which layers of a model a quantization step touches.

Targets are found by module type, so this works on a SequenceModel (rnn.layers.k,
embedding, input_proj, decoder) and on any user module holding torch.nn.LSTM/GRU/RNN,
Embedding and Linear layers. A Linear named `decoder` or `input_proj` is its own target;
other Linears are `linear`; the factors of a low-rank model (rnnslim.lowrank) go with what
they factor: rnn.bottlenecks.{k} with `rnn`, decoder_proj with `decoder`. Layers that are
already quantized are not targets again.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from torch import nn


class Target(str, Enum):
    RNN = "rnn"
    EMBEDDING = "embedding"
    DECODER = "decoder"
    INPUT_PROJ = "input_proj"
    LINEAR = "linear"  # any other nn.Linear


DEFAULT_TARGETS = (Target.RNN, Target.EMBEDDING, Target.DECODER, Target.INPUT_PROJ)

LayerFilter = Callable[[str, nn.Module], bool]


def target_of(path: str, module: nn.Module) -> Target | None:
    """The target class of a float module, or None when it is not a quantizable layer
    (rnnslim's own quantized / QAT / factorized layers declare `rnnslim_kind` and are not)."""
    if getattr(type(module), "rnnslim_kind", None):
        return None
    if isinstance(module, nn.RNNBase):
        return Target.RNN
    if isinstance(module, nn.Embedding):
        return Target.EMBEDDING
    if isinstance(module, nn.Linear):
        return _linear_target(path)
    return None


def _linear_target(path: str) -> Target:
    parent, _, leaf = path.rpartition(".")
    if parent.endswith("bottlenecks"):  # a low-rank W_ih's input factor (rnnslim.lowrank) belongs to the layer
        return Target.RNN
    return {"decoder": Target.DECODER, "decoder_proj": Target.DECODER,
            "input_proj": Target.INPUT_PROJ}.get(leaf, Target.LINEAR)


def quantized_target_of(path: str, module: nn.Module) -> Target | None:
    """The target class a weight-only quantized layer (rnnslim.quantize.lowbit) was quantized as;
    None for every other module (QAT continues from these, rnnslim.quantize.qat)."""
    kind = getattr(type(module), "rnnslim_kind", None)
    if kind == "weight_only_linear":
        return _linear_target(path)
    return {"weight_only_recurrent": Target.RNN, "weight_only_embedding": Target.EMBEDDING}.get(kind)


def find_targets(model: nn.Module, targets=DEFAULT_TARGETS, filter: LayerFilter | None = None
                 ) -> list[tuple[str, nn.Module]]:
    """(path, module) of every float layer of the requested target classes, in model order."""
    wanted = {Target(t) for t in targets}
    out = []
    for path, mod in model.named_modules():
        if not path:
            continue
        t = target_of(path, mod)
        if t is not None and t in wanted and (filter is None or filter(path, mod)):
            out.append((path, mod))
    return out


def describe_targets(targets) -> str:
    return ", ".join(Target(t).value for t in targets)
