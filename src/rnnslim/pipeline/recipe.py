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

from rnnslim.pipeline.stage import StageConfig, parse_stage

RECIPE_VERSION = 1
Scalar = str | int | float | bool | None


class RecipeError(ValueError):
    """A recipe is malformed, names an unknown stage, or has wrong fields."""


class TaskSection(BaseModel):
    """Which task (data + metric) the pipeline evaluates and fine-tunes on."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(min_length=1, description="task name, e.g. charlm")
    data: str | None = Field(default=None, description="data file or directory (relative to the recipe file)")
    options: dict[str, Scalar] = Field(default_factory=dict, description="keyword options of the task constructor")


class MeasureSection(BaseModel):
    """What is measured after every stage (task metrics and sizes are always measured)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    latency: bool = Field(default=False, description="streaming (batch 1) step latency")
    threads: int = Field(default=1, ge=1)
    steps: int = Field(default=200, ge=1, description="timed steps per repeat")
    repeats: int = Field(default=5, ge=1)
    eval_max_steps: int | None = Field(default=None, ge=1, description="cap on tokens evaluated per split")


class Recipe(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    version: Literal[1]
    name: str = Field(min_length=1)
    seed: int = 0
    task: TaskSection | None = None
    measure: MeasureSection = Field(default_factory=MeasureSection)
    # SerializeAsAny: dump each stage with its own subclass fields, not the base's
    stages: list[SerializeAsAny[StageConfig]] = Field(min_length=1)

    @field_validator("stages", mode="before")
    @classmethod
    def _parse_stages(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value  # pydantic reports "Input should be a valid list"
        return [s if isinstance(s, StageConfig) else _parse_one(i, s) for i, s in enumerate(value)]

    # --- YAML in and out ---------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, source: str = "recipe") -> Recipe:
        if not isinstance(data, dict):
            raise RecipeError(f"{source}: a recipe must be a mapping (version, name, stages, ...), "
                              f"got {type(data).__name__}")
        version = data.get("version")
        if version is None:
            raise RecipeError(f"{source}: missing `version: {RECIPE_VERSION}` at the top of the recipe")
        if version != RECIPE_VERSION:
            raise RecipeError(f"{source}: recipe version {version!r} is not supported "
                              f"(this rnnslim reads version {RECIPE_VERSION})")
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise RecipeError(f"{source}: invalid recipe:\n{_format_errors(e)}") from None

    @classmethod
    def from_yaml(cls, text: str, source: str = "recipe") -> Recipe:
        try:
            data = yaml.safe_load(text)
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


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Read a recipe YAML file; errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise RecipeError(f"recipe file not found: {path}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise RecipeError(f"{p}: not a UTF-8 text file ({e})") from None
    return Recipe.from_yaml(text, source=str(p))


def _parse_one(index: int, data: Any) -> StageConfig:
    """parse_stage with the stage's position and kind in every error."""
    kind = data.get("kind") if isinstance(data, dict) else None
    label = f"stage #{index + 1}" + (f" (kind {kind!r})" if kind else "")  # 1-based like stages/NN-kind
    if not isinstance(data, dict):
        raise ValueError(f"{label}: each stage must be a mapping with a 'kind', got {data!r}")
    if not isinstance(kind, str):
        raise ValueError(f"{label}: each stage needs a 'kind' string, got {data!r}")
    try:
        return parse_stage(data)
    except ValidationError as e:
        raise ValueError(f"{label}: {_format_errors(e, indent='', sep='; ')}") from None
    except ValueError as e:  # unknown kind: the registry lists the available ones
        raise ValueError(f"{label}: {e}") from None


def _format_errors(e: ValidationError, indent: str = "  ", sep: str = "\n") -> str:
    """One line per problem: where (dotted path) and what pydantic says about it."""
    lines = []
    for err in e.errors(include_url=False):
        loc = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (not allowed here)"
        elif "input" in err and err["type"] not in ("missing",) and not isinstance(err["input"], (dict, list)):
            msg += f" (got {err['input']!r})"
        lines.append(f"{indent}{loc}: {msg}" if loc else f"{indent}{msg}")
    return sep.join(lines)
