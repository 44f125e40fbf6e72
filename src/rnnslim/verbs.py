"""One verb per family, one dispatch mechanism: prune_, quantize_, factorize_, distill_.

    prune_(model, UnstructuredPruning(sparsity=0.5))
    prune_(user_model, StructuredPruning(ratio=0.25), example_inputs=(x,))     # any nn.Module
    prune_(model, OBSPruning(sparsity=0.5), calibration=task)
    prune_(model, GradualPruning(schedule=..., train=...), task=task)
    quantize_(model, WeightOnly(bits=4))
    quantize_(model, Int8Config(mode="static"), calibration=[x1, x2])
    quantize_(model, GPTQ(bits=4), calibration=task)
    factorize_(model, LowRank(energy=0.9))
    distill_(student, Distillation(train=TrainConfig(max_steps=500)), teacher=teacher, task=task)

Each config class is registered, in the module that defines it, with its family and the
function that applies it (`@register(Family.PRUNE, UnstructuredPruning)` on that function).
A config object can only exist once its module ran, so every config a caller holds is
registered: this module imports no technique and keeps no list of modules.

A verb finds the function by the config's class (its base classes too), refuses a config of
another family ("GPTQ is a quantization config: use quantize_") or an object that is no
registered config, hands over the inputs the function takes (example_inputs, calibration,
task, teacher, filter, ...; one it does not take is refused, not dropped), and returns the
function's EditResult (rnnslim.results) with the common core filled in: family, method,
changed module paths, stored bytes before / after, warnings. The functions themselves edit
the model all or nothing (rnnslim.utils.atomic).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from torch import Tensor, nn

from rnnslim.results import EditResult, stored_bytes


class Family(str, Enum):
    PRUNE = "prune"
    QUANTIZE = "quantize"
    FACTORIZE = "factorize"
    DISTILL = "distill"

    @property
    def verb(self) -> str:
        return f"{self.value}_"

    @property
    def noun(self) -> str:
        return {"prune": "pruning", "quantize": "quantization", "factorize": "factorization",
                "distill": "distillation"}[self.value]


@dataclass(frozen=True)
class Method:
    family: Family
    fn: Callable[..., EditResult]
    takes: tuple[str, ...]  # keyword inputs fn accepts after (model, config)
    needs: tuple[str, ...]  # those of them without a default


_METHODS: dict[type, Method] = {}


def register(family: Family, *config_classes: type) -> Callable[[Callable], Callable]:
    """Decorator: `fn(model, config, **inputs) -> EditResult` applies these config classes."""

    def deco(fn: Callable) -> Callable:
        params = list(inspect.signature(fn).parameters.values())[2:]
        named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        method = Method(family, fn, tuple(p.name for p in named),
                        tuple(p.name for p in named if p.default is inspect.Parameter.empty))
        for cls in config_classes:
            old = _METHODS.get(cls)
            if old is not None and old.fn is not fn:
                raise ValueError(f"{cls.__name__} is already applied by {old.fn.__module__}.{old.fn.__qualname__} "
                                 f"({old.family.verb}); one method per config class")
            _METHODS[cls] = method
        return fn

    return deco


def method_for(family: Family, config: Any) -> Method:
    """The registered method of `config`'s class, or a one-line error saying which verb to use."""
    if isinstance(config, type):
        raise TypeError(f"{family.verb} takes a config object, not the class {config.__name__}: "
                        f"write {config.__name__}(...)")
    method = next((_METHODS[c] for c in type(config).__mro__ if c in _METHODS), None)
    if method is None:
        known = ", ".join(sorted(c.__name__ for c, m in _METHODS.items() if m.family is family))
        raise TypeError(f"{family.verb} does not know {type(config).__name__} (no {family.noun} method for it); "
                        f"{family.noun} configs: {known}")
    if method.family is not family:
        raise TypeError(f"{type(config).__name__} is a {method.family.noun} config: use "
                        f"{method.family.verb}(model, config), not {family.verb}")
    return method


def _arguments(method: Method, config: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    name = type(config).__name__
    given = {k: v for k, v in inputs.items() if v is not None}
    extra = sorted(set(given) - set(method.takes))
    if extra:
        takes = ", ".join(method.takes) or "no other inputs"
        raise ValueError(f"{name} takes no {', '.join(extra)} (it takes: {takes})")
    missing = [k for k in method.needs if k not in given]
    if missing:
        raise ValueError(f"{name} needs {', '.join(f'{k}=...' for k in missing)}: "
                         f"{method.family.verb}(model, {name}(...), {missing[0]}=...)")
    return given


def _version(t: Tensor) -> int | None:
    """The tensor's in-place edit counter (None for inference tensors, which keep none)."""
    return None if t.is_inference() else t._version


def _snapshot(model: nn.Module) -> dict[str, tuple]:
    """path -> (module, own tensors with their storage and version): compared after the edit.
    Holding the objects keeps their ids from being reused meanwhile."""
    out = {}
    for path, mod in model.named_modules():
        own = [*mod.named_parameters(recurse=False), *mod.named_buffers(recurse=False)]
        out[path] = (mod, tuple((n, t, t.data_ptr(), tuple(t.shape), t.dtype, _version(t)) for n, t in own))
    return out


def changed_paths(before: dict[str, tuple], model: nn.Module) -> list[str]:
    """Module paths added, removed, replaced or with edited tensors; descendants of a
    replaced (or added / removed) module are not listed again."""
    after = _snapshot(model)
    replaced = sorted(p for p in set(before) | set(after)
                      if p not in before or p not in after or before[p][0] is not after[p][0])

    def edited(p: str) -> bool:
        old, new = before[p][1], after[p][1]
        return len(old) != len(new) or any(a[0] != b[0] or a[1] is not b[1] or a[2:] != b[2:]
                                           for a, b in zip(old, new))

    touched = set(replaced) | {p for p in set(before) & set(after) if p not in replaced and edited(p)}
    under = lambda p, q: q == "" or p.startswith(q + ".")  # noqa: E731
    return sorted(p for p in touched if not any(q != p and under(p, q) for q in replaced))


def run(family: Family, model: nn.Module, config: Any, **inputs: Any) -> EditResult:
    """Apply `config` (of `family`) to `model` in place; the EditResult with its core filled in."""
    method = method_for(family, config)
    args = _arguments(method, config, inputs)
    before, bytes_before = _snapshot(model), stored_bytes(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = method.fn(model, config, **args)
    for w in caught:  # still shown to the caller, and kept in the result
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not isinstance(result, EditResult):
        raise TypeError(f"the {type(config).__name__} method {method.fn.__qualname__} returned "
                        f"{type(result).__name__}, not an EditResult")
    result.family, result.method = family.value, type(config).__name__
    result.changed = changed_paths(before, model)
    result.bytes_before, result.bytes_after = bytes_before, stored_bytes(model)
    result.warnings = [*result.warnings, *(str(w.message) for w in caught)]
    return result


def prune_(model: nn.Module, config: Any, calibration: Any = None, *, example_inputs: Any = None,
           **inputs: Any) -> EditResult:
    """Prune `model` in place as `config` says: UnstructuredPruning, NMPruning, BlockPruning,
    StructuredPruning, LayerRemoval, VocabPruning, OBSPruning, GradualPruning, GroupLassoPruning.
    example_inputs: inputs of your own module (structured edits trace it); calibration: a Task
    or batches (data-driven criteria, OBS); other inputs as the config needs (task=, ...)."""
    return run(Family.PRUNE, model, config, example_inputs=example_inputs, calibration=calibration, **inputs)


def quantize_(model: nn.Module, config: Any, calibration: Any = None, **inputs: Any) -> EditResult:
    """Quantize `model` in place as `config` says: WeightOnly, Ternary, KMeans, HalfPrecision,
    QAT, Int8Config, GPTQ, MixedPrecision. calibration: model inputs / a Task where the config
    needs data; filter=(path, module) -> bool limits weight-only configs to some layers."""
    return run(Family.QUANTIZE, model, config, calibration=calibration, **inputs)


def factorize_(model: nn.Module, config: Any, calibration: Any = None, **inputs: Any) -> EditResult:
    """Store `model`'s matrices in a structured form, in place: LowRank (SVD of the gate matrices,
    head), ToLSTMP (LSTM -> LSTMP), LowRankLinears (nn.Linear layers of any module),
    BlockCirculant, DCTSparsity (transform domain). calibration: a Task or batches for a
    data-aware SVD (config.calibration_batches > 0)."""
    return run(Family.FACTORIZE, model, config, calibration=calibration, **inputs)


def distill_(model: nn.Module, config: Any, *, teacher: nn.Module | None = None, task: Any = None,
             **inputs: Any) -> EditResult:
    """Train `model` (the student) in place to match `teacher` on `task` (Distillation)."""
    return run(Family.DISTILL, model, config, teacher=teacher, task=task, **inputs)
