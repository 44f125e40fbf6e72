"""The contract every compression stage implements.

A stage is a frozen pydantic config class with a literal `kind` plus a function

    run(model: SequenceModel, cfg: ThatConfig, ctx: StageContext) -> SequenceModel

registered with `@register_stage(ThatConfig)`. The function may edit the model in place
or return a new one; the pipeline hands it a private copy, saves what it returns to the
stage's directory, and records `ctx.record` (a dict of what the stage did and measured)
in the report. Modules that define stages are listed in STAGE_MODULES so recipes can
name their kinds without importing anything by hand.

Fields that name parts of the model (layer indices, per-layer sizes) are checked by the
config's `check_against(model)` before any stage runs (rnnslim.pipeline.model_fields); a
stage that changes the layers or sizes sets `changes_structure`, and the stages after it
are checked when they start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

STAGE_MODULES = (
    "rnnslim.pipeline.builtin_stages",  # finetune, cast
    "rnnslim.pipeline.stages.prune",
    "rnnslim.pipeline.stages.structured",  # prune_units, remove_layers, prune_vocab, group_lasso
    "rnnslim.pipeline.stages.quantize",
    "rnnslim.pipeline.stages.int8",
    "rnnslim.pipeline.stages.delta",  # delta (delta-network thresholds of an integer model)
    "rnnslim.pipeline.stages.reconstruct",  # prune_obs, quantize_gptq
    "rnnslim.pipeline.stages.lowrank",  # lowrank, to_lstmp
    "rnnslim.pipeline.stages.transform",  # dct_sparsify, block_circulant
    "rnnslim.pipeline.stages.early_exit",  # early_exit
    "rnnslim.pipeline.stages.student",  # student (a compact model to distill into)
)


class StageConfig(BaseModel):
    """Base class of stage configs; subclasses set `kind: Literal["..."] = "..."`."""

    # NaN / infinity refused here as in recipes, so a config built in Python is checked the same way
    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False, allow_inf_nan=False)
    kind: str
    # True where the stage changes what later fields refer to (layer count, hidden sizes, vocabulary):
    # the stages after it are checked against the model they really receive, when they start
    changes_structure: ClassVar[bool] = False
    # fields whose default changed after stage hashes were first written, with the default they had:
    # hashed against that one (fingerprint.config_hash), so a finished stage run under the old default is
    # reused only by a config that asks for the old value, never by one that now gets the new default
    hash_legacy_defaults: ClassVar[dict[str, Any]] = {}

    def trains_model(self) -> bool:
        """True when the stage trains the weights of the model it gets (a fine-tune, QAT, masked
        fine-tuning steps): prune_units' `refit: auto` does not re-fit before such a stage."""
        return False

    def resolved(self, later: list[StageConfig]) -> StageConfig:
        """This config with any setting that depends on the `later` stages of its recipe settled
        (Recipe validation calls it); most stages have none."""
        return self

    def check_against(self, model) -> None:
        """Raise ValueError naming the field when it refers to a part `model` lacks (a layer
        index past the last layer, ...); the runner calls it before any stage runs. The default
        checks a `layers` field of plain indices; stages with other such fields extend it."""
        from rnnslim.pipeline.model_fields import check_layer_keys

        check_layer_keys("layers", getattr(self, "layers", None), model)


@dataclass
class StageContext:
    task: Any  # rnnslim.tasks.base.Task
    work_dir: Path  # a private directory for this stage (checkpoints of fine-tuning, ...)
    device: str = "cpu"
    seed: int = 0
    progress: bool = True
    teacher: Any = None  # the uncompressed input model (for distillation), eval mode
    record: dict = field(default_factory=dict)  # what the stage did / measured -> report


StageFn = Callable[[Any, StageConfig, StageContext], Any]
_STAGES: dict[str, tuple[type[StageConfig], StageFn]] = {}


def register_stage(config_cls: type[StageConfig]) -> Callable[[StageFn], StageFn]:
    kind = config_cls.model_fields["kind"].default
    if not isinstance(kind, str):
        raise TypeError(f"{config_cls.__name__} must give `kind` a literal default")

    def deco(fn: StageFn) -> StageFn:
        _STAGES[kind] = (config_cls, fn)
        return fn

    return deco


def _load_stage_modules() -> None:
    import importlib

    for mod in STAGE_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name is None or not mod.startswith(e.name):
                raise


def stage_kinds() -> list[str]:
    _load_stage_modules()
    return sorted(_STAGES)


def get_stage(kind: str) -> tuple[type[StageConfig], StageFn]:
    if kind not in _STAGES:
        _load_stage_modules()
    if kind not in _STAGES:
        import difflib

        near = difflib.get_close_matches(str(kind), stage_kinds(), n=3)  # first: long lists get cut in messages
        raise ValueError(f"unknown stage kind {kind!r}" + (f" (did you mean {', '.join(near)}?)" if near else "")
                         + f"; available: {', '.join(stage_kinds())}")
    return _STAGES[kind]


def parse_stage(data: dict) -> StageConfig:
    """Validate one stage mapping from a recipe into its typed config."""
    if not isinstance(data, dict) or "kind" not in data:
        raise ValueError(f"each stage needs a 'kind' key, got {data!r}")
    cls, _ = get_stage(data["kind"])
    return cls.model_validate(data)
