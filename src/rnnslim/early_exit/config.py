"""What `add_exits_` builds and how the exits are trained.

    EarlyExit()                                   # a Linear head after layers 1 .. L-1, trained jointly
    EarlyExit(hidden=32, train_mode="heads")      # Linear-tanh-Linear heads; backbone frozen
    EarlyExit(weights=[0.5, 0.5, 1.0])            # loss weights of exits 1, 2 and of the model's own decoder
    EarlyExit(time_weight=1.0)                    # also train every prefix (streaming, early_time)

The last recurrent layer's exit is the model's own decoder; an L-layer model gets L - 1 heads.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field


class TrainMode(str, Enum):
    JOINT = "joint"  # backbone, decoder and heads: loss = sum_k w_k CE(exit k), the decoder's included
    HEADS = "heads"  # backbone and decoder frozen (requires_grad False during training): only the heads learn


class EarlyExit(BaseModel):
    """Early-exit heads of a stacked recurrent classifier and their training."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    hidden: int = Field(default=0, ge=0, le=65_536,
                        description="0: each head is one Linear; > 0: Linear(hidden) - tanh - Linear")
    train_mode: TrainMode = Field(default=TrainMode.JOINT,
                                  description="joint: everything trains; heads: only the heads")
    weights: list[float] | None = Field(default=None, description="loss weight per exit, the last being the model's "
                                        "decoder (length = recurrent layers); None: all 1 (a plain sum)")
    time_weight: float = Field(default=0.0, ge=0.0, le=100.0,
                               description="adds time_weight x the mean CE over every prefix of the sequence "
                               "(each step's readout) to each exit's loss: trains the exits for streaming")

    def exit_weights(self, n_layers: int) -> list[float]:
        """Loss weight of each of the n_layers exits (the last one is the decoder's)."""
        if self.weights is None:
            return [1.0] * n_layers
        if len(self.weights) != n_layers:
            raise ValueError(f"EarlyExit.weights has {len(self.weights)} entries, the model has {n_layers} exits "
                             f"(one per recurrent layer, the last being the decoder)")
        if any(not (w >= 0 and w < float("inf")) for w in self.weights) or not any(self.weights):
            raise ValueError(f"EarlyExit.weights must be finite, >= 0 and not all 0, got {self.weights}")
        return list(self.weights)
