"""Configs for the structured edits that had only verbs, so that `prune_` covers them too:

    prune_(model, LayerRemoval(layers=[1]))                                  # remove_layers_
    prune_(model, LayerRemoval(layers=[2], refit="lstsq"), calibration=task)
    prune_(model, VocabPruning(), data=task)                                  # prune_vocab_
    prune_(user_model, LayerRemoval(layers=["lstm[1]"]), example_inputs=(x,))

What each edit does: layers.py (whole recurrent layers, optional least-squares re-fit) and
vocab.py (tokens the data never uses). The results extend rnnslim.results.EditResult.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from rnnslim.prune.structured.layers import LayerRefit, remove_layers_
from rnnslim.prune.structured.vocab import SPLITS, VocabResult, prune_vocab_
from rnnslim.results import EditResult
from rnnslim.verbs import Family, register


class LayerRemoval(BaseModel):
    """Remove these recurrent layers (int: i-th layer in module order, or a group name)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    layers: tuple[int | str, ...] = Field(min_length=1)
    refit: LayerRefit = LayerRefit.NONE
    ridge: float = Field(default=1e-4, ge=0)
    calibration_batches: int = Field(default=8, ge=1, description="batches for refit='lstsq'")


class VocabPruning(BaseModel):
    """Keep only the tokens that occur in the data's splits (or in a given list of ids)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    splits: tuple[str, ...] = SPLITS
    embedding: str = "embedding"
    decoder: str | None = "decoder"


@dataclass
class LayerRemovalResult(EditResult):
    removed: list[str] = field(default_factory=list)  # group names of the removed layers
    params_before: int = 0
    params_after: int = 0


@register(Family.PRUNE, LayerRemoval)
def _remove_layers(model: nn.Module, cfg: LayerRemoval, calibration=None, example_inputs=None,
                   consumers: dict | None = None) -> LayerRemovalResult:
    out = remove_layers_(model, list(cfg.layers), cfg.refit, calibration=calibration, ridge=cfg.ridge,
                         n_batches=cfg.calibration_batches, example_inputs=example_inputs, consumers=consumers)
    return LayerRemovalResult(**out)


@register(Family.PRUNE, VocabPruning)
def _prune_vocab(model: nn.Module, cfg: VocabPruning, data) -> VocabResult:
    return prune_vocab_(model, data, cfg.splits, cfg.embedding, cfg.decoder)
