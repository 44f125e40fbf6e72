"""Low-rank nn.Linear layers in any module, the user's own included: the decoder of a word LM
(V x H, often the largest matrix), a classifier head, an input projection.

    from rnnslim.lowrank import LowRankLinears, lowrank_linears_
    res = lowrank_linears_(my_model, LowRankLinears(paths=["decoder"], energy=0.9))
    save_edited(my_model, "out/")            # load_edited(MyModel(), "out/") rebuilds it

Each chosen Linear W (out, in) = U S V^T becomes LowRankLinear: `down` (r, in, no bias) =
V_r^T, then `up` (out, r) = U_r S_r with the old bias; forward is up(down(x)), the rank-r W.
A layer is replaced only where r (in + out) < in x out (fewer parameters); otherwise, and for
weights tied to another module (a decoder sharing the embedding) or stored in a transform
domain, it is kept and the result says why. LowRankLinear is a module kind of rnnslim's
formats (kind "lowrank_linear"), so save_model / save_edited store it at its real size.
rnnslim SequenceModels have the head factorization in `lowrank_` (targets=["output"]),
which the rest of the toolkit (measure, export) knows; this verb is for other modules.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from rnnslim.io.modules import register_module_kind, set_submodule
from rnnslim.lowrank.api import LowRankResult, SiteRecord, params
from rnnslim.lowrank.svd import spectrum
from rnnslim.utils.atomic import atomic_edit
from rnnslim.verbs import Family, register, run


class LowRankLinear(nn.Module):
    """x (..., in) -> up(down(x)) (..., out): a rank-`rank` Linear stored as its two factors."""

    rnnslim_kind = "lowrank_linear"

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = nn.Linear(rank, out_features, bias=bias)

    def forward(self, x):
        return self.up(self.down(x))

    def rnnslim_config(self) -> dict:
        return {"in_features": self.in_features, "out_features": self.out_features, "rank": self.rank,
                "bias": self.up.bias is not None}


register_module_kind(LowRankLinear.rnnslim_kind, lambda c: LowRankLinear(**c))


class LowRankLinears(BaseModel):
    """Which nn.Linear layers to factorize (`paths`, default every one) and at what rank."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    paths: tuple[str, ...] | None = Field(default=None, description="module paths of nn.Linear layers (None: all)")
    energy: float | None = Field(default=None, gt=0, le=1, description="fraction of squared singular values kept")
    rank: int | None = Field(default=None, ge=1, description="one rank for every chosen layer (clipped to its size)")

    @model_validator(mode="after")
    def _check(self) -> LowRankLinears:
        if (self.energy is None) == (self.rank is None):
            raise ValueError("give exactly one of energy, rank")
        return self


def _chosen(model: nn.Module, cfg: LowRankLinears) -> list[tuple[str, nn.Linear]]:
    linears = {p: m for p, m in model.named_modules() if type(m) is nn.Linear and p}
    if cfg.paths is None:
        return list(linears.items())
    bad = [p for p in cfg.paths if p not in linears]
    if bad:
        raise ValueError(f"{bad} are not nn.Linear layers of {type(model).__name__}; its Linear layers: "
                         f"{list(linears)[:20]}")
    return [(p, linears[p]) for p in cfg.paths]


def _kept_why(model: nn.Module, path: str, linear: nn.Linear) -> str | None:
    from rnnslim.recurrent.inputs import shared_parameters

    if f"{path}.weight" in shared_parameters(model):
        return "its weight is tied to another module's"
    if f"{path}.weight" in (getattr(model, "tensor_encodings", None) or {}):
        return "its weight is stored in a transform domain or sparse form; factorize before that stage"
    return None


def lowrank_linears_(model: nn.Module, cfg: LowRankLinears) -> LowRankResult:
    """Replace the chosen nn.Linear layers of `model` by LowRankLinear, in place (module doc);
    all or nothing. Returns the ranks, energy kept and parameters per layer, and notes for the
    layers left as they were. The same as rnnslim.factorize_(model, cfg), limited to LowRankLinears."""
    if not isinstance(cfg, LowRankLinears):
        raise TypeError(f"lowrank_linears_ takes a LowRankLinears config, not {type(cfg).__name__}")
    return run(Family.FACTORIZE, model, cfg)


@register(Family.FACTORIZE, LowRankLinears)
def _lowrank_linears(model: nn.Module, cfg: LowRankLinears) -> LowRankResult:
    from rnnslim.models.sequence import SequenceModel

    if isinstance(model, SequenceModel):
        raise TypeError("for an rnnslim SequenceModel use lowrank_(model, LowRank(targets=['output'], ...)): it "
                        "factorizes the head in the form measure and export know")
    chosen, notes, records = _chosen(model, cfg), [], []
    before = params(model)
    with atomic_edit(model):
        for path, linear in chosen:
            why = _kept_why(model, path, linear)
            if why is None:
                why = _factorize(model, path, linear, cfg, records)
            if why:
                notes.append(f"{path}: kept as it is ({why})")
        model.history = list(getattr(model, "history", None) or []) + [
            {"op": "lowrank_linears", "config": cfg.model_dump(mode="json"),
             "sites": [vars(r) for r in records]}]
    return LowRankResult(before, params(model), records, notes, warnings=list(notes))


def _factorize(model: nn.Module, path: str, linear: nn.Linear, cfg: LowRankLinears,
               records: list[SiteRecord]) -> str | None:
    """Swap one Linear for its rank-r factors; a reason string when it is kept instead."""
    import torch

    w = linear.weight.detach()
    out_f, in_f = w.shape
    sp = spectrum(w)
    r = min(cfg.rank, sp.n) if cfg.rank is not None else sp.rank_for(cfg.energy)
    if r * (in_f + out_f) >= in_f * out_f:
        return f"rank {r} saves no parameters on a {out_f} x {in_f} matrix"
    left, right = sp.factors(r, w.dtype)
    new = LowRankLinear(in_f, out_f, r, bias=linear.bias is not None).to(device=w.device, dtype=w.dtype)
    with torch.no_grad():
        new.down.weight.copy_(right)
        new.up.weight.copy_(left)
        if linear.bias is not None:
            new.up.bias.copy_(linear.bias.detach())
    set_submodule(model, path, new.train(linear.training))
    records.append(SiteRecord(path, "linear", r, [r], round(sp.energy(r), 6), in_f * out_f, r * (in_f + out_f)))
    return None
