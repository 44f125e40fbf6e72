"""Exit heads on a stacked recurrent classifier, stored with the model.

    add_exits_(model, EarlyExit(hidden=0))   # model.exits: one Linear after each of layers 1 .. L-1
    model.exits.threshold                    # None until calibrated (rnnslim.early_exit.calibrate)

`model.exits` is an ExitHeads module: model.exits.heads[k] maps the readout of recurrent layer
k (the last step, or the mean over time, as the model's own readout) to class logits. The
model's forward is unchanged (all layers, its own decoder); early-exit inference is
rnnslim.early_exit.infer. Saved and loaded by rnnslim.io.format as a module record
(kind "early_exit_heads"; the thresholds live in its config, the head weights in the
safetensors file under exits.heads.*), so a model without exits is stored exactly as before.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from rnnslim.early_exit.config import EarlyExit
from rnnslim.io.modules import register_module_kind
from rnnslim.models.sequence import Readout


class ExitHeadsConfig(BaseModel):
    """The architecture of the heads (the manifest's module record)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    in_sizes: list[int] = Field(min_length=1, max_length=4096, description="output width of layers 1 .. L-1")
    classes: int = Field(ge=1, le=10**7)
    hidden: int = Field(default=0, ge=0, le=65_536)
    threshold: float | None = Field(default=None, ge=0.0, le=2.0, description="whole-sequence (depth) exit "
                                    "threshold on the max softmax (>= 1: exits off); None: not calibrated")
    stream_threshold: float | None = Field(default=None, ge=0.0, le=2.0,
                                           description="streaming (early_time) threshold; None: not calibrated")


def _head(in_size: int, classes: int, hidden: int) -> nn.Module:
    if hidden == 0:
        return nn.Linear(in_size, classes)
    return nn.Sequential(nn.Linear(in_size, hidden), nn.Tanh(), nn.Linear(hidden, classes))


class ExitHeads(nn.Module):
    """heads[k]: readout of layer k (B, in_sizes[k]) -> logits (B, classes), k = 0 .. L-2."""

    rnnslim_kind = "early_exit_heads"

    def __init__(self, in_sizes: list[int], classes: int, hidden: int = 0, threshold: float | None = None,
                 stream_threshold: float | None = None) -> None:
        super().__init__()
        self.cfg = ExitHeadsConfig(in_sizes=in_sizes, classes=classes, hidden=hidden, threshold=threshold,
                                   stream_threshold=stream_threshold)
        self.heads = nn.ModuleList(_head(n, classes, hidden) for n in in_sizes)

    @property
    def threshold(self) -> float | None:
        return self.cfg.threshold

    @property
    def stream_threshold(self) -> float | None:
        return self.cfg.stream_threshold

    def set_thresholds(self, threshold: float | None = None, stream_threshold: float | None = None) -> None:
        """Store calibrated thresholds (validated; None leaves one as it is)."""
        update = {k: v for k, v in (("threshold", threshold), ("stream_threshold", stream_threshold)) if v is not None}
        self.cfg = ExitHeadsConfig.model_validate({**self.cfg.model_dump(), **update})

    def rnnslim_config(self) -> dict:
        return self.cfg.model_dump(mode="json")

    @classmethod
    def from_config(cls, config: dict) -> ExitHeads:
        return cls(**ExitHeadsConfig.model_validate(config).model_dump())

    def extra_repr(self) -> str:
        return f"exits={len(self.heads)}, hidden={self.cfg.hidden}, threshold={self.threshold}"


register_module_kind(ExitHeads.rnnslim_kind, ExitHeads.from_config)


def check_classifier(model: nn.Module) -> None:
    """Raise a clear error unless `model` is a stacked rnnslim sequence classifier."""
    spec = getattr(model, "spec", None)
    rnn = getattr(model, "rnn", None)
    if spec is None or rnn is None or not hasattr(rnn, "layers") or not hasattr(model, "decoder"):
        raise TypeError(f"early exit needs an rnnslim SequenceModel (per-layer RecurrentStack + decoder), got a "
                        f"{type(model).__name__}; build one with rnnslim.SequenceModel or load one with load_model")
    task = (getattr(model, "task_meta", None) or {}).get("task")
    if spec.readout is Readout.ALL or task in ("charlm", "wordlm"):
        raise ValueError("early exit applies to sequence classifiers (readout 'last' or 'mean'); this is a language "
                         "model with one output per step")
    if task not in (None, "classify"):
        raise ValueError(f"early exit applies to sequence classifiers; this model was made for the {task!r} task "
                         "(a forecaster's regression output has no confidence to exit on)")
    if len(rnn.layers) < 2:
        raise ValueError("early exit needs at least 2 recurrent layers (an exit after each layer but the last); "
                         "this model has 1")


def exits_of(model: nn.Module) -> ExitHeads | None:
    exits = getattr(model, "exits", None)
    return exits if isinstance(exits, ExitHeads) else None


def require_exits(model: nn.Module) -> ExitHeads:
    exits = exits_of(model)
    if exits is None:
        raise ValueError("the model has no early exits; add them with rnnslim.early_exit.add_exits_")
    if len(exits.heads) != len(model.rnn.layers) - 1:
        raise ValueError(f"the model has {len(model.rnn.layers)} recurrent layers but {len(exits.heads)} exit heads "
                         "(layers were removed after the exits were added)")
    return exits


def add_exits_(model: nn.Module, cfg: EarlyExit | None = None) -> nn.Module:
    """Attach fresh exit heads after recurrent layers 1 .. L-1 (in place; on error the model is
    untouched). The heads take the device and dtype of the model's decoder."""
    cfg = cfg or EarlyExit()
    check_classifier(model)
    if exits_of(model) is not None:
        raise ValueError("the model already has early exits")
    n_layers = len(model.rnn.layers)
    cfg.exit_weights(n_layers)  # validates the weights' length now, not at training time
    specs = model.rnn.specs
    w = model.decoder.weight
    heads = ExitHeads([s.output_size for s in specs[:-1]], model.decoder.out_features, cfg.hidden)
    model.exits = heads.to(device=w.device, dtype=w.dtype)
    return model
