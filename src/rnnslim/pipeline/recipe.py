"""Recipes: typed, versioned YAML that composes compression stages.

    version: 1                  # required; the only version this rnnslim reads
    name: lstm-prune-fp16       # names the run; an out_dir holds one recipe name
    seed: 0
    task:                       # optional when the caller passes a Task object
      name: charlm
      data: ../shared/data/tinyshakespeare.txt
      options: {max_chars: 200000}
    measure:                    # optional; defaults shown
      latency: false
      threads: 1
      steps: 200
      repeats: 5
      eval_max_steps: null      # cap on evaluated tokens per split (null = whole split)
    stages:
      - kind: finetune
        max_steps: 300
        lr: 0.001
      - kind: cast
        dtype: bf16

Each stage mapping is validated by the config class registered for its `kind`
(rnnslim.pipeline.stage.parse_stage). YAML is read with yaml.safe_load only: values are
data, never code.
"""

from __future__ import annotations

import difflib
import math
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    field_validator,
)

from rnnslim.pipeline.stage import StageConfig, get_stage, parse_stage

RECIPE_VERSION = 1
Scalar = str | int | float | bool | None

# --- hardening limits: a recipe is small, shallow, finite data -------------------------
MAX_RECIPE_CHARS = 1_000_000  # a recipe file is a few hundred bytes; refuse anything absurd
MAX_DEPTH = 20  # nesting of mappings/sequences (recipes need 4)
MAX_NODES = 100_000  # scalars + collections after loading
MAX_STRING = 10_000  # any one string value
MAX_NAME = 200
NAME_PATTERN = r"^[\w][\w .+@=,()\-]*$"  # letters, digits, _ first; then also space . + @ = , ( ) -
MAX_ERROR_CHARS = 16_000  # every problem of a recipe, one line each (MAX_ERROR_LINES, MAX_LINE_CHARS)
MAX_INT = 10**12  # any integer anywhere (seed included)
MAX_STEPS = 10**7
# per-field caps on stage fields that drive time or memory (applied to every stage kind
# that has a field of that name; the config classes carry the same or looser bounds)
STAGE_INT_CAPS: dict[str, int] = {
    "max_steps": MAX_STEPS, "finetune_steps": MAX_STEPS, "steps": MAX_STEPS, "start_step": MAX_STEPS,
    "end_step": MAX_STEPS, "warmup_steps": MAX_STEPS, "eval_every": MAX_STEPS, "checkpoint_every": MAX_STEPS,
    "frequency": MAX_STEPS, "eval_max_steps": 10**9, "epochs": 10_000,
    "batch_size": 4096, "seq_len": 100_000, "calibration_batches": 10_000, "refit_batches": 10_000,
    "refit_iterations": 100, "iters": 100_000, "n": 64, "m": 64, "block_rows": 65_536, "block_cols": 65_536,
    "group_size": 1 << 24, "round_to": 65_536, "clusters": 256, "bits": 64, "gate_bits": 64,
    "threads": 1024, "repeats": 10_000, "batches": 10_000, "samples": 10**7,
}
STAGE_FLOAT_CAPS: dict[str, float] = {"lr": 10.0, "weight_decay": 100.0, "momentum": 10.0, "clip_grad": 1e6,
                                      "distill_temperature": 1e4, "lam": 1e6, "ridge": 1e9}


class RecipeError(ValueError):
    """A recipe is malformed, names an unknown stage, or has wrong fields."""

    def __init__(self, message: str = "") -> None:
        super().__init__(_cap(str(message), MAX_ERROR_CHARS))


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 40] + f"... [{len(text) - limit + 40} more characters]"


class _RecipeLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses aliases (no billion laughs) and deep nesting (no RecursionError)."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):  # noqa: D401 - PyYAML hook
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not allowed in recipes; "
                                              "write the value out", event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _check_data(data: Any, source: str) -> None:
    """Refuse what no recipe holds: non-finite floats, huge ints or strings, deep or huge trees."""
    count = 0
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise RecipeError(f"{source}: recipe too large (more than {MAX_NODES} values)")
        if depth > MAX_DEPTH:
            raise RecipeError(f"{source}: {where or 'recipe'}: nested deeper than {MAX_DEPTH} levels")
        label = where or "recipe"
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, float):
            if not math.isfinite(value):
                raise RecipeError(f"{source}: {label}: must be a finite number (got {value!r})")
        elif isinstance(value, int):
            if abs(value) > MAX_INT:
                raise RecipeError(f"{source}: {label}: {_cap(str(value), 40)} is out of range (|value| <= {MAX_INT})")
        elif isinstance(value, str):
            if len(value) > MAX_STRING:
                raise RecipeError(f"{source}: {label}: string of {len(value)} characters is too long "
                                  f"(at most {MAX_STRING})")
        elif isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, (str, int)) or isinstance(k, bool) or len(str(k)) > 200:
                    raise RecipeError(f"{source}: {label}: keys must be short strings, got {_cap(repr(k), 60)}")
                stack.append((k, label, depth + 1))
                stack.append((v, f"{where}.{k}" if where else str(k), depth + 1))
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                stack.append((v, f"{where}[{i}]", depth + 1))
        else:  # dates, bytes, sets from YAML tags
            raise RecipeError(f"{source}: {label}: unsupported value of type {type(value).__name__}")


def _check_stage_caps(data: dict, label: str) -> None:
    """Upper bounds on stage fields that drive time or memory (see STAGE_INT_CAPS)."""
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(key, str):
            continue
        if isinstance(value, str) and len(value) < 100:  # "1e400" is a YAML string that pydantic makes a float
            try:
                value = float(value.strip().replace("_", ""))
            except ValueError:
                continue
            if not math.isfinite(value):
                raise ValueError(f"{label}: field {key!r}: must be a finite number (got {data[key]!r})")
        if key in STAGE_INT_CAPS and isinstance(value, (int, float)) and value > STAGE_INT_CAPS[key]:
            raise ValueError(f"{label}: field {key!r}: {value!r} is too large (at most {STAGE_INT_CAPS[key]})")
        if key in STAGE_FLOAT_CAPS and isinstance(value, (int, float)) and value > STAGE_FLOAT_CAPS[key]:
            raise ValueError(f"{label}: field {key!r}: {value!r} is too large (at most {STAGE_FLOAT_CAPS[key]:g})")


class TaskSection(BaseModel):
    """Which task (data + metric) the pipeline evaluates and fine-tunes on."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    name: str = Field(min_length=1, max_length=100, description="task name, e.g. charlm")
    data: str | None = Field(default=None, description="data file or directory (relative to the recipe file)")
    options: dict[str, Scalar] = Field(default_factory=dict, description="keyword options of the task constructor")


class MeasureSection(BaseModel):
    """What is measured after every stage (task metrics and sizes are always measured)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    latency: bool = Field(default=False, description="streaming (batch 1) step latency")
    threads: int = Field(default=1, ge=1, le=1024)
    steps: int = Field(default=200, ge=1, le=1_000_000, description="timed steps per repeat")
    repeats: int = Field(default=5, ge=1, le=1000)
    eval_max_steps: int | None = Field(default=None, ge=1, le=10**9, description="cap on tokens evaluated per split")


class Recipe(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    version: Literal[1]
    name: str = Field(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN,
                      description="letters, digits, _ first; then also space . + @ = , ( ) -")
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    task: TaskSection | None = None
    measure: MeasureSection = Field(default_factory=MeasureSection)
    # SerializeAsAny: dump each stage with its own subclass fields, not the base's
    stages: list[SerializeAsAny[StageConfig]] = Field(min_length=1)

    @field_validator("stages", mode="after")
    @classmethod
    def _resolve_against_later(cls, stages: list) -> list:
        """Each stage settles what depends on the stages after it (StageConfig.resolved, e.g. prune_units'
        `refit: auto`), here, before anything is hashed or run."""
        return [s.resolved(stages[i + 1:]) for i, s in enumerate(stages)]

    @field_validator("stages", mode="before")
    @classmethod
    def _parse_stages(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value  # pydantic reports "Input should be a valid list"
        parsed, problems = [], []
        for i, s in enumerate(value):  # every stage is checked, so one run shows every problem
            try:
                parsed.append(s if isinstance(s, StageConfig) else _parse_one(i, s))
            except ValueError as e:
                problems.append(str(e))
        if problems:
            raise ValueError("\n".join(problems))
        return parsed

    # --- YAML in and out ---------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, source: str = "recipe") -> Recipe:
        if not isinstance(data, dict):
            raise RecipeError(f"{source}: a recipe must be a mapping (version, name, stages, ...), "
                              f"got {type(data).__name__}")
        version = data.get("version")
        _check_data(data, source)
        if version is None:
            raise RecipeError(f"{source}: missing `version: {RECIPE_VERSION}` at the top of the recipe")
        if version != RECIPE_VERSION or isinstance(version, bool):
            raise RecipeError(f"{source}: recipe version {_cap(repr(version), 60)} is not supported "
                              f"(this rnnslim reads version {RECIPE_VERSION})")
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            lines = _error_lines(e, _section_fields)
            raise RecipeError(f"{source}: invalid recipe ({_count(len(lines))}):\n"
                              + "\n".join("  " + line for line in _first(lines))) from None
        except RecursionError:
            raise RecipeError(f"{source}: recipe nested too deeply") from None

    @classmethod
    def from_yaml(cls, text: str, source: str = "recipe") -> Recipe:
        if len(text) > MAX_RECIPE_CHARS:
            raise RecipeError(f"{source}: recipe of {len(text):,} characters is too large "
                              f"(at most {MAX_RECIPE_CHARS:,})")
        try:
            data = yaml.load(text, Loader=_RecipeLoader)  # noqa: S506 - a SafeLoader subclass
        except RecursionError:
            raise RecipeError(f"{source}: not valid YAML: nested too deeply") from None
        except (ValueError, TypeError, OverflowError) as e:  # e.g. a timestamp PyYAML cannot build
            raise RecipeError(f"{source}: not valid YAML: {e}") from None
        except yaml.YAMLError as e:
            where = ""
            mark = getattr(e, "problem_mark", None)
            if mark is not None:
                where = f" at line {mark.line + 1}, column {mark.column + 1}"
            problem = getattr(e, "problem", None) or str(e)
            raise RecipeError(f"{source}: not valid YAML{where}: {problem}") from None
        return cls.from_dict(data, source)

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def task_data_path(self, base: str | os.PathLike | None = None) -> Path | None:
        """The task's data path, resolved against `base` (the recipe file's folder)."""
        if self.task is None or self.task.data is None:
            return None
        p = Path(self.task.data).expanduser()
        return p if p.is_absolute() or base is None else Path(base) / p


def find_recipe(spec: str | os.PathLike) -> Path:
    """The recipe file `spec` names: a path when that file exists, else a built-in recipe's name
    (`deploy-int8` or `deploy-int8.yaml`, see rnnslim.recipes); neither: RecipeError listing the built-ins."""
    from rnnslim.recipes import builtin_recipe_path, builtin_recipes

    p = Path(spec)
    if p.is_file():
        return p
    text = str(spec)
    builtin = None if ("/" in text or os.sep in text) else builtin_recipe_path(text)
    if builtin is not None:
        return builtin
    names = list(builtin_recipes())
    near = difflib.get_close_matches(p.name.removesuffix(".yaml"), names, n=1)
    hint = f"did you mean `{near[0]}`? " if near else ""
    raise RecipeError(f"recipe not found: {_cap(text, 200)} is neither a file nor a built-in recipe; {hint}"
                      f"built-ins: {', '.join(names)} (`rnnslim recipes` describes them)")


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Read a recipe YAML file, or a built-in recipe by name (find_recipe); errors name the file."""
    p = find_recipe(path)
    try:
        if p.stat().st_size > 4 * MAX_RECIPE_CHARS:
            raise RecipeError(f"{p}: recipe file of {p.stat().st_size:,} bytes is too large")
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise RecipeError(f"{p}: not a UTF-8 text file ({e})") from None
    except OSError as e:
        raise RecipeError(f"{p}: cannot read the recipe ({e.strerror or e})") from None
    return Recipe.from_yaml(text, source=str(p))


def _parse_one(index: int, data: Any) -> StageConfig:
    """parse_stage with the stage's position and kind in every error (one line per problem)."""
    kind = data.get("kind") if isinstance(data, dict) else None
    kind_txt = _cap(repr(kind), 60) if kind else ""
    label = f"stage #{index + 1}" + (f" (kind {kind_txt})" if kind else "")  # 1-based like stages/NN-kind
    if not isinstance(data, dict):
        raise ValueError(f"{label}: each stage must be a mapping with a 'kind', got {_cap(repr(data), 100)}")
    if not isinstance(kind, str):
        raise ValueError(f"{label}: each stage needs a 'kind' string, got {_cap(repr(data), 100)}")
    _check_stage_caps(data, label)
    try:
        return parse_stage(data)
    except ValidationError as e:
        fields = list(get_stage(kind)[0].model_fields)
        raise ValueError("\n".join(f"{label}: {line}" for line in _error_lines(e, lambda loc: fields))) from None
    except ValueError as e:  # unknown kind: the registry lists the available ones
        raise ValueError(f"{label}: {e}") from None


MAX_ERROR_LINES = 40  # problems listed in one RecipeError; the rest are counted
MAX_LINE_CHARS = 360  # one problem: stage label, field path, pydantic's message, the input (<= 100)


def _count(n: int) -> str:
    return f"{n} problem" + ("" if n == 1 else "s")


def _first(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_ERROR_LINES:
        return lines
    return lines[:MAX_ERROR_LINES] + [f"... and {len(lines) - MAX_ERROR_LINES} more"]


def _section_fields(loc: tuple) -> list[str]:
    """The field names valid where a top-level recipe error points (for "did you mean")."""
    section = {"task": TaskSection, "measure": MeasureSection}.get(str(loc[0])) if len(loc) > 1 else None
    return list((section or Recipe).model_fields)


def _error_lines(e: ValidationError, fields_at) -> list[str]:
    """One line per problem: where (dotted path) and what pydantic says about it, never cut short
    (inputs are quoted up to 100 characters). An unknown field gets "did you mean" over
    `fields_at(loc)`, the names valid there. A stage's own lines (from _parse_one) come through whole."""
    lines = []
    for err in e.errors(include_url=False):
        loc = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if loc == "stages" and msg.startswith("stage #"):  # already one labelled line per problem
            lines.extend(_cap(line, MAX_LINE_CHARS) for line in msg.splitlines())
            continue
        if err["type"] == "extra_forbidden":
            near = difflib.get_close_matches(str(err["loc"][-1]), [f for f in fields_at(err["loc"]) if f != "kind"], n=1)
            msg = "unknown field" + (f"; did you mean `{near[0]}`?" if near else " (not allowed here)")
        elif "input" in err and err["type"] not in ("missing",) and not isinstance(err["input"], (dict, list)):
            msg += f" (got {_cap(repr(err['input']), 100)})"
        loc = _cap(loc, 120)
        lines.extend(_cap(f"{loc}: {part}" if loc else part, MAX_LINE_CHARS) for part in msg.splitlines() or [""])
    return lines
