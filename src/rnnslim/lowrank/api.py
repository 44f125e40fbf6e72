"""Low-rank verbs: `lowrank_` (SVD of W_ih / W_hh / the head) and `to_lstmp_` (LSTM -> LSTMP).

    lowrank_(model, LowRank(energy=0.9))                                    # W_ih and the head, 90 % energy each
    lowrank_(model, LowRank(targets=["input", "recurrent", "output"], max_params=1_100_000))
    lowrank_(model, LowRank(rank={"input.0": 65}))                          # named sites only
    lowrank_(model, LowRank(energy=0.9, calibration_batches=8), calibration=task)  # data-aware SVD
    to_lstmp_(model, ToLSTMP(proj_size=[192, 128]))                         # per layer
    to_lstmp_(model, ToLSTMP(energy=0.8))

Both edit a SequenceModel in place, all or nothing, and return a LowRankResult (per site:
rank, energy kept, parameters before / after). The result is an ordinary SequenceModel
(embed_size, bottlenecks, proj_size, decoder_rank in its spec): torch's fused LSTM / GRU
kernels run it, save_model / load_model store it, and it is really smaller on disk.
How each site is cut: rnnslim.lowrank.sites. Which ranks:

    energy      each site keeps the smallest rank with that fraction of its squared singular
                values; a site where that rank would not save parameters stays as it is
    rank        one rank for every site, or {site name: rank} for the named sites only
    max_params  the whole model's parameter count; ranks chosen greedily by energy gained
                per parameter (lowrank.svd.allocate), no site above its break-even rank

W_hh low rank is an LSTMP conversion (the projection is shared by every gate and every
reader of h, so `scope` does not apply to it); with `recurrent` targeted, the next layer's
W_ih and the head are cut inside that projection, so `input` adds layer 0's W_ih only
(of the layers targeted) and `output` nothing. GRU and RNN layers have no projection in
torch: `recurrent` is refused for them (use input / output, or structured pruning).

calibration_batches > 0 makes the SVD data-aware (lowrank.svd.spectrum): each matrix M is
cut to the rank-r matrix with the least error on the outputs M x for the inputs x it saw in
that many calibration batches, and "energy" is then the share of E||M x||^2 kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rnnslim.lowrank.calibrate import input_grams
from rnnslim.lowrank.sites import APPLY, Site, factors, input_site, output_site, recurrent_site
from rnnslim.lowrank.svd import Piece, allocate
from rnnslim.models.sequence import SequenceModel
from rnnslim.results import EditResult
from rnnslim.utils.atomic import atomic_edit
from rnnslim.verbs import Family, register, run


class LowRankTarget(str, Enum):
    INPUT = "input"  # W_ih of each layer (layer 0 folded into the embedding / input projection)
    RECURRENT = "recurrent"  # W_hh, by conversion to LSTMP (LSTM only)
    OUTPUT = "output"  # the decoder (head)


class LowRankScope(str, Enum):
    STACKED = "stacked"  # one SVD of all gates together
    PER_GATE = "per_gate"  # one SVD per gate (and direction) of W_ih; the head and W_hh have no per-gate form


CALIBRATION_HELP = ("0: SVD of the weights; n: data-aware SVD weighted by the inputs each matrix sees over n "
                    "calibration batches (16 x 64), which keeps the model's outputs rather than its weights")


def _one_of(cfg, names: tuple[str, ...]) -> None:
    given = [n for n in names if getattr(cfg, n) is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of {', '.join(names)} (got {', '.join(given) or 'none'})")


class LowRank(BaseModel):
    """SVD factorization of the gate matrices and / or the head (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    targets: tuple[LowRankTarget, ...] = Field(default=(LowRankTarget.INPUT, LowRankTarget.OUTPUT), min_length=1,
                                               description="input (W_ih), recurrent (W_hh via LSTMP), output (head)")
    scope: LowRankScope = Field(default=LowRankScope.STACKED, description="stacked gates or per gate (W_ih only)")
    energy: float | None = Field(default=None, gt=0, le=1, description="fraction of squared singular values kept")
    rank: int | dict[str, int] | None = Field(default=None, description="one rank, or {site: rank} e.g. "
                                              "{'input.0': 65, 'recurrent.1': 128, 'output': 32}")
    max_params: int | None = Field(default=None, ge=1, description="parameter budget of the whole model")
    layers: tuple[int, ...] | None = Field(default=None, description="recurrent layers whose matrices are cut "
                                           "(default: all)")
    calibration_batches: int = Field(default=0, ge=0, le=10_000, description=CALIBRATION_HELP)

    @model_validator(mode="after")
    def _check(self) -> LowRank:
        _one_of(self, ("energy", "rank", "max_params"))
        ranks = self.rank.values() if isinstance(self.rank, dict) else [self.rank] if self.rank is not None else []
        if any(r < 1 for r in ranks):
            raise ValueError(f"ranks must be >= 1, got {self.rank} (a rank-0 matrix would delete the layer's input)")
        return self


class ToLSTMP(BaseModel):
    """Convert LSTM layers to LSTMP (torch proj_size): one projection size for every layer, one per
    layer (in `layers` order), or the size keeping `energy` of the readers' singular values."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    proj_size: int | tuple[int, ...] | None = Field(default=None, description="P < hidden_size, one or per layer")
    energy: float | None = Field(default=None, gt=0, le=1)
    layers: tuple[int, ...] | None = Field(default=None, description="layers to convert (default: all)")
    calibration_batches: int = Field(default=0, ge=0, le=10_000, description=CALIBRATION_HELP)

    @model_validator(mode="after")
    def _check(self) -> ToLSTMP:
        _one_of(self, ("proj_size", "energy"))
        sizes = self.proj_size if isinstance(self.proj_size, tuple) else (self.proj_size,) if self.proj_size else ()
        if any(p < 1 for p in sizes):
            raise ValueError(f"proj_size must be >= 1, got {self.proj_size}")
        return self


@dataclass
class SiteRecord:
    name: str
    mode: str
    rank: int  # total over per-gate blocks
    block_ranks: list[int]
    energy_kept: float
    params_before: int
    params_after: int


@dataclass
class LowRankResult(EditResult):
    params_before: int
    params_after: int
    sites: list[SiteRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # sites left as they were, clipped ranks

    @property
    def ranks(self) -> dict[str, int]:
        return {s.name: s.rank for s in self.sites}

    def as_dict(self) -> dict:
        """params_before / params_after / sites / notes (the history record's fields)."""
        return self.details()


def params(model: torch.nn.Module) -> int:
    """Parameters of a model (tied ones once)."""
    return sum(p.numel() for p in model.parameters())


def _check_model(model, layers: tuple[int, ...] | None) -> list[int]:
    if not isinstance(model, SequenceModel):
        raise TypeError(f"low-rank factorization of the gate matrices works on an rnnslim SequenceModel, not a "
                        f"{type(model).__name__} (load or convert the model first); for your own module, "
                        "lowrank_linears_(model, LowRankLinears(paths=[...], energy=...)) factorizes its nn.Linear "
                        "layers (e.g. the decoder)")
    n = model.rnn.num_layers
    chosen = list(range(n)) if layers is None else sorted(set(layers))
    bad = [k for k in chosen if not 0 <= k < n]
    if bad:
        raise ValueError(f"layers {bad} do not exist; the model has recurrent layers 0..{n - 1}")
    return chosen


def _grams(model: SequenceModel, cfg: LowRank | ToLSTMP, calibration) -> dict | None:
    """Input Gram matrices for the data-aware SVD (cfg.calibration_batches > 0), else None."""
    if not cfg.calibration_batches:
        return None
    if calibration is None:
        raise ValueError(f"calibration_batches={cfg.calibration_batches} needs calibration data: a Task or a list "
                         "of Batch (or set calibration_batches to 0 for the SVD of the weights)")
    from rnnslim.prune.importance import as_calibration

    cal = as_calibration(calibration, cfg.calibration_batches)
    return input_grams(model, cal.batches, cal.stateful)


def _sites(model: SequenceModel, cfg: LowRank, grams: dict | None) -> list[Site]:
    layers = _check_model(model, cfg.layers)
    targets = set(cfg.targets)
    per_gate = cfg.scope is LowRankScope.PER_GATE
    sites: list[Site] = []
    lstmp = set(layers) if LowRankTarget.RECURRENT in targets else set()
    sites += [recurrent_site(model, k, grams) for k in sorted(lstmp)]
    if LowRankTarget.INPUT in targets:  # W_ih of k > 0 is inside layer k-1's projection when that is cut
        sites += [input_site(model, k, per_gate, grams) for k in layers if k - 1 not in lstmp]
    if LowRankTarget.OUTPUT in targets and model.rnn.num_layers - 1 not in lstmp:
        sites.append(output_site(model, grams))
    return sites


def _ranks(model: SequenceModel, sites: list[Site], cfg: LowRank, notes: list[str]) -> dict[str, list[int]]:
    if cfg.energy is not None:
        out = {}
        for s in sites:
            ranks = [min(sp.rank_for(cfg.energy), s.max_rank) for sp in s.spectra]
            if sum(ranks) * s.cost >= s.dense_params:
                notes.append(f"{s.name}: kept as it is (rank {sum(ranks)} for energy {cfg.energy} saves no parameters)")
            else:
                out[s.name] = ranks
        return out
    if cfg.rank is not None:
        wanted = cfg.rank if isinstance(cfg.rank, dict) else {s.name: cfg.rank for s in sites}
        unknown = sorted(set(wanted) - {s.name for s in sites})
        if unknown:
            raise ValueError(f"rank names sites {unknown} that these targets / layers do not have; sites: "
                             f"{[s.name for s in sites]}")
        out = {}
        for s in sites:
            if s.name in wanted:
                r = min(wanted[s.name], s.max_rank)
                if r < wanted[s.name]:
                    notes.append(f"{s.name}: rank {wanted[s.name]} clipped to {r} (the largest it can have)")
                out[s.name] = [r] * len(s.spectra)
        return out
    return _budget_ranks(model, sites, cfg.max_params, notes)


def _budget_ranks(model: SequenceModel, sites: list[Site], max_params: int, notes: list[str]) -> dict[str, list[int]]:
    before = params(model)
    if before <= max_params:
        notes.append(f"the model has {before} parameters, within max_params {max_params}: nothing cut")
        return {}
    usable = [s for s in sites if s.break_even() >= 1]
    notes += [f"{s.name}: kept as it is (no rank saves parameters)" for s in sites if s not in usable]
    rest = before - sum(s.dense_params for s in usable)
    pieces = [(s, Piece(sp, s.cost, min(s.max_rank, s.break_even()), s.total)) for s in usable for sp in s.spectra]
    smallest = rest + sum(p.cost for _, p in pieces)
    if smallest > max_params:
        raise ValueError(f"max_params {max_params} cannot be met with these targets: every targeted matrix at rank 1 "
                         f"still leaves {smallest} parameters ({rest} outside them); target more matrices "
                         "(input, recurrent, output) or raise the budget")
    ranks = allocate([p for _, p in pieces], max_params - rest)
    out: dict[str, list[int]] = {}
    for (s, _), r in zip(pieces, ranks):
        out.setdefault(s.name, []).append(r)
    return out


def _apply(model: SequenceModel, sites: list[Site], ranks: dict[str, list[int]], op: str, config: dict,
           notes: list[str]) -> LowRankResult:
    before = params(model)
    old = dict(model.state_dict())
    records = []
    with atomic_edit(model):
        for s in sites:
            if s.name not in ranks:
                continue
            left, right = factors(s, ranks[s.name], next(model.parameters()).dtype)
            APPLY[s.kind](model, s, left, right)
            r = sum(ranks[s.name])
            records.append(SiteRecord(s.name, s.mode, r, ranks[s.name], round(s.energy(ranks[s.name]), 6),
                                      s.dense_params, r * s.cost))
        model.sync_spec()
        _drop_stale_encodings(model, old)
        result = LowRankResult(before, params(model), records, notes, warnings=list(notes))
        model.history = list(getattr(model, "history", None) or []) + [
            {"op": op, "config": config, **{k: v for k, v in result.as_dict().items() if k != "notes"}}]
    return result


def _drop_stale_encodings(model: SequenceModel, old: dict[str, torch.Tensor]) -> None:
    """Storage marks (sparse, ...) of tensors that were replaced no longer apply."""
    enc = getattr(model, "tensor_encodings", None)
    if not enc:
        return
    now = model.state_dict()
    model.tensor_encodings = {n: e for n, e in enc.items()
                              if n in now and n in old and now[n].shape == old[n].shape and torch.equal(now[n], old[n])}


def lowrank_(model: SequenceModel, config: LowRank, calibration=None) -> LowRankResult:
    """Factorize `model` in place as `config` says (module docstring); all or nothing.
    `calibration` (a Task or a list of Batch) is needed when config.calibration_batches > 0.
    The same as rnnslim.factorize_(model, config, calibration=...), limited to LowRank."""
    if not isinstance(config, LowRank):
        raise TypeError(f"lowrank_ takes a LowRank config, not {type(config).__name__}")
    return run(Family.FACTORIZE, model, config, calibration=calibration)


def to_lstmp_(model: SequenceModel, config: ToLSTMP, calibration=None) -> LowRankResult:
    """Convert the chosen LSTM layers to LSTMP in place (module docstring); all or nothing.
    `calibration` (a Task or a list of Batch) is needed when config.calibration_batches > 0.
    The same as rnnslim.factorize_(model, config, calibration=...), limited to ToLSTMP."""
    if not isinstance(config, ToLSTMP):
        raise TypeError(f"to_lstmp_ takes a ToLSTMP config, not {type(config).__name__}")
    return run(Family.FACTORIZE, model, config, calibration=calibration)


@register(Family.FACTORIZE, LowRank)
def _lowrank(model: SequenceModel, config: LowRank, calibration=None) -> LowRankResult:
    _check_model(model, config.layers)
    sites = _sites(model, config, _grams(model, config, calibration))
    notes: list[str] = []
    ranks = _ranks(model, sites, config, notes)
    return _apply(model, sites, ranks, "lowrank", config.model_dump(mode="json"), notes)


@register(Family.FACTORIZE, ToLSTMP)
def _to_lstmp(model: SequenceModel, config: ToLSTMP, calibration=None) -> LowRankResult:
    layers = _check_model(model, config.layers)
    grams = _grams(model, config, calibration)
    sites = [recurrent_site(model, k, grams) for k in layers]
    notes: list[str] = []
    if config.energy is not None:
        ranks = {}
        for s in sites:
            want = s.spectra[0].rank_for(config.energy)
            if want > s.max_rank:
                notes.append(f"{s.name}: energy {config.energy} needs rank {want}; LSTMP allows at most {s.max_rank}")
            ranks[s.name] = [min(want, s.max_rank)]
    else:
        sizes = config.proj_size if isinstance(config.proj_size, tuple) else (config.proj_size,) * len(sites)
        if len(sizes) != len(sites):
            raise ValueError(f"proj_size gives {len(sizes)} sizes for {len(sites)} layers {layers}")
        for s, p in zip(sites, sizes):
            H = model.rnn.specs[s.layer].hidden_size
            if p >= H:
                raise ValueError(f"proj_size {p} for rnn.layers.{s.layer} must be below its hidden_size {H} "
                                 "(torch LSTMP)")
        ranks = {s.name: [p] for s, p in zip(sites, sizes)}
    return _apply(model, sites, ranks, "to_lstmp", config.model_dump(mode="json"), notes)
