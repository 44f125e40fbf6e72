"""The search space: which recipes a trial may become, one dimension per technique.

    space = SearchSpace()                                  # every dimension, defaults below
    space = SearchSpace.model_validate(yaml.safe_load(open("space.yaml")))
    stages, params = build_stages(space, trial, ModelFacts.of(model))   # inside an Optuna trial

A trial's recipe is always, in this order (a dimension that picks "off" adds nothing):

    prune_units        per-layer hidden widths (a NAS over what structured pruning reaches)
    lowrank            energy kept by the factorization (only when a `lowrank` stage is registered)
    to_lstmp           LSTM -> LSTMP, projection = a sampled fraction of each layer's kept width
                       (LSTM models only; off unless `lstmp_ratios` offers a ratio < 1)
    prune | prune_nm | prune_obs   unstructured (magnitude), N:M, or second-order (SparseGPT-style)
                       sparsity, unstructured ("prune_obs") or in strips ("prune_obs_strips", the
                       layout the strips kernels run); a quantized pruned weight stores its codes
                       entropy coded, so sparsity and low bits compound
    finetune           the fine-tune budget (steps; 0 = none); with `qat` offering True, those steps
                       may instead run as quantization-aware training (the `qat` stage) after the
                       quantize stages below, on the rnn's frozen grid (step 0 = the PTQ model), so
                       the training sees the rounding (a plain fine-tune before quantizing cannot)
    lowrank (fold)     with `fold_input`: layer 0's W_ih folded into the embedding at rank = vocabulary
                       (exact: the layer only ever sees V embedding rows), so a 4H x E matrix becomes
                       V x V + 4H x V; not sampled, a fixed step of every recipe
    quantize_weights | mixed_precision | int8_integer | quantize_gptq   bits (rnn / embedding+decoder),
                       a per-tensor bit allocation under a byte budget, the integer int8 model, or
                       GPTQ at the same bits (only when `quant_kinds` names it); `entropy_coding`
                       (when the space offers both) LZMA-codes every weight's codes

Dimensions are registered by stage kind (`register_dimension`); a dimension whose stage
kinds are not registered when the search runs is skipped and named in the results, so a
new technique joins the search by registering its stage and a Dimension here.

Parameter names are stable (they are the study's parameters, shared by all workers and by
a resumed search): width_l{i}, lowrank_energy, lstmp_ratio, sparsity_kind, sparsity, nm, quant
(quant_after_lowrank, quant_after_lstmp), bits_rnn, bits_io, entropy_coding, mixed_ratio, finetune_steps,
qat.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SPARSITY_KINDS = ("none", "prune", "prune_nm")  # the default choices
# also allowed: second-order (OBS / SparseGPT) pruning, unstructured or in strips (slower per
# trial: a Hessian per layer from calibration data; lower loss at high sparsity)
ALLOWED_SPARSITY_KINDS = SPARSITY_KINDS + ("prune_obs", "prune_obs_strips")
QUANT_KINDS = ("none", "quantize_weights", "mixed_precision", "int8_integer")  # the default choices
# also allowed: GPTQ (error-compensating rounding from calibration data; slower per trial, lower
# loss at 2-3 bits), offered when a space names it
ALLOWED_QUANT_KINDS = QUANT_KINDS + ("quantize_gptq",)


class FinetuneSpace(BaseModel):
    """The fine-tune budget and the fixed settings of every fine-tune a trial runs."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    max_steps: int = Field(default=1000, ge=0, le=10**7, description="the largest fine-tune a trial may get")
    choices: int = Field(default=4, ge=1, le=16, description="fine-tune lengths tried: 0 and max_steps / 2^k")
    proxy_steps: int = Field(default=100, ge=1, le=10**6,
                             description="the short fine-tune of the proxy rung (capped at the trial's steps)")
    proxy_rungs: int = Field(default=1, ge=1, le=8, description="proxy rungs: proxy_steps * eta^k steps, k < this "
                                                                "(each only when shorter than the trial's fine-tune)")
    settings: dict[str, Any] = Field(default_factory=lambda: {"lr": 0.001},
                                     description="other finetune stage fields (lr, batch_size, distill_alpha, ...)")

    def step_choices(self) -> list[int]:
        if self.max_steps == 0:
            return [0]
        steps = {0, self.max_steps}
        steps.update(max(1, self.max_steps >> k) for k in range(1, self.choices))
        return sorted(steps)


class SearchSpace(BaseModel):
    """Bounds of every dimension; `dimensions` picks which are searched (default: all registered)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    dimensions: list[str] | None = Field(default=None, description="dimension names to search (None: all)")
    min_keep: float = Field(default=0.125, gt=0, le=1, description="smallest kept fraction of a layer's units")
    round_to: int = Field(default=8, ge=1, le=4096, description="kept widths are multiples of this")
    refit: Literal["auto"] | bool = Field(default="auto", description="prune_units re-fits the cut layers by least "
                                          "squares (slow on wide models): true, false or auto (not before a fine-tune)")
    refit_batches: int = Field(default=16, ge=1, description="prune_units least-squares re-fit batches")
    unit_reduce: Literal["l1", "l2"] = Field(default="l2", description="prune_units' `reduce`: how a unit's weight "
                                                                      "scores add up (l2 since 2026-12; l1 before)")
    lowrank_energy: tuple[float, float] = Field(default=(0.8, 0.99),
                                                description="fraction of squared singular values kept (lowrank)")
    sparsity_kinds: tuple[str, ...] = Field(default=SPARSITY_KINDS)
    sparsity: tuple[float, float] = Field(default=(0.5, 0.95), description="unstructured sparsity range")
    sparsity_step: float = Field(default=0.05, gt=0, lt=1)
    nm_patterns: tuple[str, ...] = Field(default=("2:4", "1:4", "2:8"), description="N:M patterns")
    strip_rows: int = Field(default=16, ge=1, le=4096, description="prune_obs_strips: rows sharing their kept columns")
    lstmp_ratios: tuple[float, ...] = Field(default=(1.0,), description="to_lstmp projection size / kept width "
                                                                      "(1.0 = no projection)")
    entropy_coding: tuple[bool, ...] = Field(default=(False,), description="LZMA-code the quantized weights' codes: "
                                                                         "(False,), (True,) or both (searched)")
    quant_kinds: tuple[str, ...] = Field(default=QUANT_KINDS)
    bits: tuple[int, ...] = Field(default=(2, 3, 4, 5, 6, 8), description="quantize_weights widths of the rnn")
    io_bits: tuple[int, ...] = Field(default=(4, 6, 8), description="widths of embedding + decoder")
    clip: Literal["minmax", "mse"] = Field(default="minmax", description="quantize_weights clipping (mse: search "
                                                                         "the clip range with least squared error)")
    fold_input: bool = Field(default=False, description="fold layer 0's input weights into the embedding "
                                                        "(exact) before quantizing; embedding-input models only")
    mixed_ratio: tuple[float, float] = Field(default=(0.1, 0.3), description="mixed_precision budget_ratio range")
    calibration_batches: int = Field(default=8, ge=1, description="calibration batches of quantizing stages")
    finetune: FinetuneSpace = Field(default_factory=FinetuneSpace)
    qat: tuple[bool, ...] = Field(default=(False,), description="run the fine-tune as quantization-aware training "
                                                              "at the rnn's bits: (False,), (True,) or both (searched)")
    qat_sparse: bool = Field(default=False, description="let trials with a sparsity stage run their fine-tune as QAT "
                             "too (the qat stage holds the pruning masks); off: they fine-tune before quantizing")

    @field_validator("sparsity_kinds")
    @classmethod
    def _sparsity_kinds(cls, v):
        return _subset(v, ALLOWED_SPARSITY_KINDS, "sparsity_kinds")

    @field_validator("quant_kinds")
    @classmethod
    def _quant_kinds(cls, v):
        return _subset(v, ALLOWED_QUANT_KINDS, "quant_kinds")

    @field_validator("lstmp_ratios")
    @classmethod
    def _ratios(cls, v):
        if not v or any(not 0 < r <= 1 for r in v):
            raise ValueError(f"lstmp_ratios must be a non-empty list of fractions in (0, 1]; got {list(v)}")
        return v

    @field_validator("entropy_coding", "qat")
    @classmethod
    def _flags(cls, v, info):
        if not v or len(set(v)) != len(v):
            raise ValueError(f"{info.field_name} must be (False,), (True,) or (False, True); got {list(v)}")
        return v

    @field_validator("nm_patterns")
    @classmethod
    def _nm(cls, v):
        for p in v:
            n, _, m = p.partition(":")
            if not (n.isdigit() and m.isdigit() and 0 < int(n) < int(m) <= 64):
                raise ValueError(f"N:M pattern {p!r} must read N:M with 0 < N < M <= 64")
        return v


def _subset(values: tuple[str, ...], allowed: tuple[str, ...], name: str) -> tuple[str, ...]:
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ValueError(f"{name} must be a non-empty subset of {', '.join(allowed)}; got {list(values)}")
    return values


@dataclass(frozen=True)
class ModelFacts:
    """What the space needs to know about the model: recurrent widths per layer."""

    widths: tuple[int, ...]  # hidden units per recurrent layer
    vocab: int | None = None  # embedding rows when the input is an embedding (else None)
    embed_size: int | None = None  # embedding columns = layer 0's input width
    cell: str | None = None  # "lstm", "gru", ... (to_lstmp only for "lstm")

    @classmethod
    def of(cls, model) -> ModelFacts:
        spec = getattr(model, "spec", None)
        if spec is None:
            raise TypeError(f"search needs an rnnslim SequenceModel (with .spec); got {type(model).__name__}")
        emb = getattr(model, "embedding", None)
        vocab, size = (tuple(int(n) for n in emb.weight.shape) if emb is not None and hasattr(emb, "weight")
                       else (None, None))
        cell = getattr(spec, "cell", None)
        return cls(tuple(int(s.hidden_size) for s in spec.layer_specs), vocab, size,
                   None if cell is None else str(getattr(cell, "value", cell)).lower())


@dataclass(frozen=True)
class Dimension:
    """One searchable technique: `suggest(trial, space, facts)` returns the stage mappings it adds."""

    name: str
    kinds: tuple[str, ...]  # stage kinds it may emit; skipped unless at least one is registered
    order: int  # position in the recipe (lower runs first)
    suggest: Callable[[Any, SearchSpace, ModelFacts], list[dict]]


DIMENSIONS: dict[str, Dimension] = {}


def register_dimension(dim: Dimension) -> Dimension:
    DIMENSIONS[dim.name] = dim
    return dim


def _widths(trial, space: SearchSpace, facts: ModelFacts) -> list[dict]:
    per_layer = {}
    for i, hidden in enumerate(facts.widths):
        step = min(space.round_to, hidden)
        low = max(step, int(hidden * space.min_keep) // step * step)
        top = hidden // step * step
        width = trial.suggest_int(f"width_l{i}", low, top, step=step) if top > low else top
        if width < hidden:
            per_layer[i] = (hidden - width) / hidden
    if not per_layer:
        return []
    cut = {"kind": "prune_units", "per_layer": per_layer, "round_to": min(space.round_to, min(facts.widths)),
           "reduce": space.unit_reduce}
    if space.refit is False:
        return [{**cut, "refit": False}]
    return [{**cut, "refit": space.refit, "refit_batches": space.refit_batches}]  # "auto": unless the trial fine-tunes


def _lowrank(trial, space: SearchSpace, facts: ModelFacts) -> list[dict]:
    """Low-rank factorization keeping a fraction of each matrix's squared singular values
    (the `lowrank` stage's `energy`; its default targets); 1.0 = off."""
    from rnnslim.pipeline.stage import get_stage

    if "energy" not in get_stage("lowrank")[0].model_fields:  # another lowrank: nothing this dimension can set
        return []
    lo, hi = space.lowrank_energy
    energy = trial.suggest_categorical("lowrank_energy", [round(lo + (hi - lo) * k / 4, 4) for k in range(5)] + [1.0])
    return [] if energy >= 1 else [{"kind": "lowrank", "energy": energy}]


def _lstmp(trial, space: SearchSpace, facts: ModelFacts) -> list[dict]:
    """LSTMP: each layer's recurrent state projected to `lstmp_ratio` of its kept width (SVD)."""
    ratios = sorted(set(space.lstmp_ratios), reverse=True)
    if facts.cell != "lstm" or ratios == [1.0]:
        return []
    r = trial.suggest_categorical("lstmp_ratio", ratios) if len(ratios) > 1 else ratios[0]
    if r >= 1:
        return []
    kept = [trial.params.get(f"width_l{i}", h) for i, h in enumerate(facts.widths)]  # after prune_units
    return [{"kind": "to_lstmp", "proj_size": [max(1, round(w * r)) for w in kept], "error_batches": 0}]


def _sparsity(trial, space: SearchSpace, facts: ModelFacts) -> list[dict]:
    kind = trial.suggest_categorical("sparsity_kind", list(space.sparsity_kinds))
    if kind in ("prune", "prune_obs", "prune_obs_strips"):  # one "sparsity" parameter for all three
        lo, hi = space.sparsity
        s = round(trial.suggest_float("sparsity", lo, hi, step=space.sparsity_step), 6)
        if kind == "prune":
            return [{"kind": "prune", "sparsity": s, "calibration_batches": space.calibration_batches}]
        obs = {"kind": "prune_obs", "sparsity": s, "calibration_batches": space.calibration_batches,
               "targets": ["input", "recurrent"]}
        return [obs if kind == "prune_obs" else {**obs, "pattern": "strips", "strip_rows": space.strip_rows}]
    if kind == "prune_nm":
        n, _, m = trial.suggest_categorical("nm", list(space.nm_patterns)).partition(":")
        return [{"kind": "prune_nm", "n": int(n), "m": int(m), "calibration_batches": space.calibration_batches}]
    return []


def _finetune(trial, space: SearchSpace, facts: ModelFacts) -> list[dict]:
    choices = space.finetune.step_choices()
    steps = trial.suggest_categorical("finetune_steps", choices) if len(choices) > 1 else choices[0]
    if not steps:
        return []
    modes = list(space.qat)
    if not _qat_barred(trial, space) and (trial.suggest_categorical("qat", modes) if len(modes) > 1 else modes[0]):
        return []  # the quantize dimension runs these steps as a `qat` stage (_qat_stage)
    return [{**space.finetune.settings, "kind": "finetune", "max_steps": int(steps)}]


def _qat_barred(trial, space: SearchSpace) -> bool:
    """A sparsity stage was sampled and the space keeps sparse trials off QAT (`qat_sparse` False, the
    v4 study's behaviour): such a trial fine-tunes before quantizing. With `qat_sparse` the qat stage
    holds the pruning masks (a pruned weight's zeros are exact on its frozen grid) and stores the
    pruned codes entropy coded, as the PTQ stage did."""
    return not space.qat_sparse and trial.params.get("sparsity_kind", "none") != "none"


def _qat_wanted(trial, space: SearchSpace) -> int:
    """The fine-tune steps the quantize dimension runs as QAT (0: none); _finetune decided."""
    if space.dimensions is not None and "finetune" not in space.dimensions or _qat_barred(trial, space):
        return 0
    choices = space.finetune.step_choices()
    steps = int(trial.params.get("finetune_steps", choices[0] if len(choices) == 1 else 0))
    modes = list(space.qat)
    on = trial.params.get("qat", False) if len(modes) > 1 else modes[0]
    return steps if on else 0


# fine-tune settings a `qat` stage takes (FinetuneFields; its step count is `steps`, not `max_steps`)
QAT_SETTINGS = ("batch_size", "seq_len", "lr", "optimizer", "weight_decay", "momentum", "clip_grad", "lr_schedule",
                "warmup_steps", "eval_every", "eval_max_steps", "checkpoint_every", "dropout", "distill_alpha",
                "distill_temperature", "patience", "distill_teacher")


def _qat_stage(space: SearchSpace, steps: int, bits: int, extra: dict) -> dict:
    """QAT of the rnn (and input projection) at `bits`, last, after the PTQ stages of the rnn and of
    the embedding + decoder: it trains on the rnn stage's frozen grid (its scales, groups of 64,
    entropy coding as sampled) with the quantized embedding + decoder in the loop, so its step 0 is
    the PTQ model and its oneshot rung is the recipe without it (fidelity.rung_plan). QAT from the
    float model with min-max scales was tried first and lost: +40 % valid after 500 steps on
    charlstm-512x2 int2 vs +4.35 % for GPTQ int2 with no training."""
    settings = {k: v for k, v in space.finetune.settings.items() if k in QAT_SETTINGS}
    coded = {"entropy_coding": True} if extra.get("entropy_coding") else {}
    return {**settings, "kind": "qat", "steps": steps, "bits": bits, "targets": ["rnn", "input_proj"], **coded}


def _fold(trial, space: SearchSpace, facts: ModelFacts) -> list[dict]:
    """Layer 0's W_ih (4H x E) @ embedding^T is a 4H x V matrix: at rank V the fold is exact and
    stores V x V + 4H x V numbers instead of V x E + 4H x E; worth it only when V < E."""
    if not space.fold_input or facts.vocab is None or facts.embed_size is None or facts.vocab >= facts.embed_size:
        return []
    return [{"kind": "lowrank", "targets": ["input"], "layers": [0], "rank": facts.vocab}]


# stage pairs that do not compose (the later stage cannot take the earlier one's output):
# {earlier parameter that turned it on: kinds the quantize dimension must not offer after it}
INCOMPATIBLE = {"lowrank_energy": ("int8_integer",),  # the integer kernel has no factorized W_ih
                "lstmp_ratio": ("int8_integer",)}  # nor a projection


def _quantize(trial, space: SearchSpace, facts: ModelFacts) -> list[dict]:
    kinds, name = list(space.quant_kinds), "quant"
    for param, banned in INCOMPATIBLE.items():
        if trial.params.get(param, 1.0) < 1.0 and any(k in kinds for k in banned):
            # a parameter's choices must not change between trials: another name for the smaller set
            kinds, name = [k for k in kinds if k not in banned], f"quant_after_{param.split('_')[0]}"
    kind = trial.suggest_categorical(name, kinds) if len(kinds) > 1 else kinds[0]
    if kind in ("quantize_weights", "quantize_gptq"):  # the rnn and the embedding + decoder at their own widths
        rnn = trial.suggest_categorical("bits_rnn", list(space.bits))
        io = trial.suggest_categorical("bits_io", list(space.io_bits))
        if kind == "quantize_gptq":  # GPTQ's own clip (MSE) and calibration
            extra = {"calibration_batches": space.calibration_batches}
        else:
            extra = {} if space.clip == "minmax" else {"clip": space.clip}  # default omitted: old recipe hashes hold
        coded = list(space.entropy_coding)
        if (trial.suggest_categorical("entropy_coding", coded) if len(coded) > 1 else coded[0]):
            extra["entropy_coding"] = True  # off = the default, omitted (old recipe hashes hold)
        io_stage = {"kind": kind, "bits": io, "targets": ["embedding", "decoder"], **extra}
        qat_steps = _qat_wanted(trial, space)
        rnn_stage = {"kind": kind, "bits": rnn, "targets": ["rnn", "input_proj"], **extra}
        if qat_steps:  # PTQ of everything, then QAT of the rnn on its grid (step 0 = the PTQ model), so the
            return [rnn_stage, io_stage, _qat_stage(space, qat_steps, rnn, extra)]  # training sees all rounding
        return [rnn_stage, io_stage]
    qat_steps = _qat_wanted(trial, space)
    ft = [{**space.finetune.settings, "kind": "finetune", "max_steps": qat_steps}] if qat_steps else []
    if kind == "mixed_precision":  # bits per tensor chosen by sensitivity under a byte budget
        r = trial.suggest_float("mixed_ratio", *space.mixed_ratio, step=0.01)
        return ft + [{"kind": "mixed_precision", "budget_ratio": round(r, 6),
                      "calib_batches": min(4, space.calibration_batches)}]
    if kind == "int8_integer":
        return ft + [{"kind": "int8_integer", "calibration_batches": space.calibration_batches}]
    return ft  # QAT sampled with no weight quantization: the steps run as a plain fine-tune


for _dim in (Dimension("widths", ("prune_units",), 10, _widths),
             Dimension("lowrank", ("lowrank",), 20, _lowrank),
             Dimension("lstmp", ("to_lstmp",), 25, _lstmp),
             Dimension("sparsity", ("prune", "prune_nm", "prune_obs"), 30, _sparsity),
             Dimension("finetune", ("finetune",), 40, _finetune),
             Dimension("fold", ("lowrank",), 45, _fold),
             Dimension("quantize", ("quantize_weights", "mixed_precision", "int8_integer", "quantize_gptq", "qat"), 50,
                       _quantize)):
    register_dimension(_dim)


def active_dimensions(space: SearchSpace) -> tuple[list[Dimension], dict[str, str]]:
    """(dimensions searched in recipe order, {skipped name: why})."""
    from rnnslim.pipeline.stage import stage_kinds

    kinds = set(stage_kinds())
    wanted = space.dimensions if space.dimensions is not None else list(DIMENSIONS)
    unknown = [d for d in wanted if d not in DIMENSIONS]
    if unknown:
        raise ValueError(f"unknown search dimension(s) {', '.join(unknown)}; known: {', '.join(DIMENSIONS)}")
    active, skipped = [], {}
    for name in wanted:
        dim = DIMENSIONS[name]
        if not kinds.intersection(dim.kinds):
            skipped[name] = f"stage kind {' / '.join(dim.kinds)} is not registered"
        else:
            active.append(dim)
    return sorted(active, key=lambda d: d.order), skipped


def build_stages(space: SearchSpace, trial, facts: ModelFacts) -> list[dict]:
    """The stage mappings of one trial (full fidelity), asking `trial` for every choice."""
    stages: list[dict] = []
    for dim in active_dimensions(space)[0]:
        stages += dim.suggest(trial, space, facts)
    return stages


def stages_from_params(space: SearchSpace, params: dict, facts: ModelFacts) -> list[dict]:
    """The stages of the trial that sampled `params` (its Optuna parameters, as a study's results table
    records them): Optuna's FixedTrial replays every choice, so a trial can be re-run when its study's
    journal is gone. A parameter the space asks for and `params` lacks is a ValueError naming it."""
    import optuna

    try:
        return build_stages(space, optuna.trial.FixedTrial(params), facts)
    except ValueError as e:  # FixedTrial: "The value of the parameter 'x' is not found..."
        raise ValueError(f"these parameters do not name every choice of this search space: {e}") from e

