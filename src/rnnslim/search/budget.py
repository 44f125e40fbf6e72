"""The search budget: caps on loss, artifact bytes and step latency, and what "best" means.

    budget = Budget.parse("bytes=1/20,loss=+2%")      # 1/20 of the input's bytes, +2 % valid loss
    budget = Budget.parse("bytes=650kB,latency_ms=0.2,loss=1.45")
    caps = budget.resolve(baseline)                   # absolute caps from the input model's numbers

Values: `bytes` is an integer, with an optional kB/MB (x1000) or KiB/MiB (x1024) suffix, or
`1/N` (a fraction of the input model's artifact bytes). `latency_ms` is milliseconds or
`1/N` of the input's step latency. `loss` is absolute, or `+P%` relative to the input
model's validation loss (for a higher-is-better metric such as accuracy, `-P%` allows a
drop of P % and an absolute value is a floor). The caps drive Optuna's constraints_func
(a trial is feasible when every constraint value is <= 0) and the choice of the best trial:
among feasible full-fidelity trials, the lowest value of `prefer` (default: the first of
loss, bytes, latency_ms that the budget leaves uncapped, else loss).

Every term is bounded to a range where it means something (check_cap; BudgetError else):
a loss change in (-100 %, +1000 %], an absolute loss in (0, 1e6]; a fraction (bytes or
latency) in (0, 1]; absolute bytes a whole number in [16, 2**53], latency_ms in
[1e-6, 1e6]; a relative cap resolved against the input (resolve) at least 16 bytes or
1e-6 ms. NaN and infinities are refused everywhere, and numbers are ASCII digits.
"""

from __future__ import annotations

import math
import re

from pydantic import BaseModel, ConfigDict, Field, model_validator

OBJECTIVES = ("loss", "bytes", "latency_ms")
LOSS_PCT = (-100.0, 1000.0)  # (lowest excluded, highest included) relative loss change, %
MAX_LOSS = 1e6  # absolute loss caps (or accuracy floors) above this are typos
MIN_BYTES, MAX_BYTES = 16, 2**53  # smaller: no artifact fits; larger: not exact in a float
LATENCY_MS = (1e-6, 1e6)  # 1 ns .. 1000 s per step
_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


class BudgetError(ValueError):
    """A --budget string that cannot be read."""


class Cap(BaseModel):
    """One cap as written: an absolute value, or relative to the input model."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    value: float = Field(description="absolute cap, or the factor / percentage when relative")
    relative: bool = Field(default=False, description="value is a fraction (bytes, latency) or a +% (loss) of the input's")
    text: str = Field(default="", description="as written on the command line")


class Budget(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    loss: Cap | None = None
    bytes: Cap | None = None
    latency_ms: Cap | None = None
    prefer: str | None = Field(default=None, description="objective the best trial minimizes among feasible ones")

    @model_validator(mode="after")
    def _bounded(self) -> Budget:  # Budget(...) from Python meets the same bounds as parse()
        for key in OBJECTIVES:
            cap = getattr(self, key)
            if cap is not None:
                check_cap(key, cap)
        return self

    @classmethod
    def parse(cls, text: str | None, prefer: str | None = None) -> Budget:
        """`bytes=1/20,latency_ms=0.5,loss=+2%` (any subset, any order; empty = no caps)."""
        caps: dict[str, Cap] = {}
        for part in (text or "").split(","):
            if not part.strip():
                continue
            key, sep, raw = part.partition("=")
            key, raw = key.strip().lower().replace("-", "_"), raw.strip()
            if key == "latency":
                key = "latency_ms"
            if not sep or key not in OBJECTIVES:
                raise BudgetError(f"budget item {part.strip()!r}: expected NAME=VALUE with NAME one of "
                                  f"{', '.join(OBJECTIVES)} (e.g. bytes=1/20,loss=+2%)")
            if key in caps:
                raise BudgetError(f"budget names {key} twice")
            caps[key] = _parse_cap(key, raw)
        if prefer is not None and prefer not in OBJECTIVES:
            raise BudgetError(f"prefer must be one of {', '.join(OBJECTIVES)}, got {prefer!r}")
        return cls(**caps, prefer=prefer)

    @property
    def preferred(self) -> str:
        if self.prefer:
            return self.prefer
        return next((k for k in OBJECTIVES if getattr(self, k) is None), "loss")

    def resolve(self, baseline: dict, higher_is_better: bool = False) -> dict[str, float]:
        """Absolute caps {objective: value} from the input model's {loss, bytes, latency_ms}."""
        out: dict[str, float] = {}
        for key in OBJECTIVES:
            cap: Cap | None = getattr(self, key)
            if cap is None:
                continue
            if not cap.relative:
                out[key] = cap.value
                continue
            base = baseline.get(key)
            if base is None:
                raise BudgetError(f"budget {key}={cap.text} is relative but the input model's {key} was not measured")
            if not (isinstance(base, (int, float)) and math.isfinite(base) and base > 0):
                raise BudgetError(f"budget {key}={cap.text} is relative but the input model's {key} is {base!r}; "
                                  "give an absolute value")
            out[key] = base * (1 + cap.value / 100) if key == "loss" else base * cap.value
            least = {"bytes": MIN_BYTES, "latency_ms": LATENCY_MS[0]}.get(key, 0.0)
            if out[key] < least:
                raise BudgetError(f"budget {key}={cap.text} of the input's {base:g} is a cap of {out[key]:.3g}, "
                                  f"below {least:g}; no model fits it")
        return out

    def text(self) -> str:
        return ",".join(f"{k}={getattr(self, k).text}" for k in OBJECTIVES if getattr(self, k) is not None)


def _parse_cap(key: str, raw: str) -> Cap:
    def bad(why: str) -> BudgetError:
        shown = raw if len(raw) <= 60 else f"{raw[:40]}...({len(raw)} characters)"
        return BudgetError(f"budget {key}={shown!r}: {why}")

    if not raw:
        raise bad("empty value")
    num = r"[0-9]+(?:\.[0-9]+)?"
    frac = re.fullmatch(rf"({num})\s*/\s*({num})", raw, re.ASCII)
    if frac and key != "loss":
        top, den = float(frac[1]), float(frac[2])
        if not (math.isfinite(top) and math.isfinite(den)) or den == 0 or top <= 0:
            raise bad("a fraction needs a positive numerator and denominator of sensible size (e.g. 1/20)")
        cap = Cap(value=top / den, relative=True, text=raw)
    elif key == "loss" and (pct := re.fullmatch(rf"([+-]?{num})\s*%", raw, re.ASCII)):
        cap = Cap.model_construct(value=float(pct[1]), relative=True, text=raw)  # bounded by check_cap below
    else:
        m = re.fullmatch(rf"({num}(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)", raw, re.ASCII)
        if not m:
            raise bad("not a number" + (" (loss: a number or +P%)" if key == "loss" else " (or 1/N)"))
        value, unit = float(m[1]), m[2].lower()
        if key == "bytes":
            if unit not in _UNITS:
                raise bad(f"unknown unit {m[2]!r} (kB, MB, KiB, MiB)")
            value *= _UNITS[unit]
        elif unit:
            raise bad(f"no unit expected, got {m[2]!r}")
        cap = Cap.model_construct(value=value, relative=False, text=raw)
    try:
        check_cap(key, cap)
    except BudgetError as e:
        raise bad(str(e)) from None
    return Cap(value=cap.value, relative=cap.relative, text=raw)


def check_cap(key: str, cap: Cap) -> None:
    """BudgetError unless `cap` lies in its term's meaningful range (module docstring)."""
    v = cap.value
    if not math.isfinite(v):
        raise BudgetError("must be a finite number")
    if key == "loss" and cap.relative:
        if not LOSS_PCT[0] < v <= LOSS_PCT[1]:
            raise BudgetError(f"a loss change must lie in ({LOSS_PCT[0]:+g} %, {LOSS_PCT[1]:+g} %], got {v:+g} %")
    elif key == "loss":
        if not 0 < v <= MAX_LOSS:
            raise BudgetError(f"an absolute loss must lie in (0, {MAX_LOSS:g}], got {v:g}")
    elif cap.relative:
        if not 0 < v <= 1:
            raise BudgetError(f"a fraction of the input's {key} must lie in (0, 1], got {v:g}")
    elif key == "bytes":
        if not MIN_BYTES <= v <= MAX_BYTES or v != int(v):
            raise BudgetError(f"must be a whole number of bytes in [{MIN_BYTES}, 2**53], got {v:g}")
    elif not LATENCY_MS[0] <= v <= LATENCY_MS[1]:
        raise BudgetError(f"milliseconds must lie in [{LATENCY_MS[0]:g}, {LATENCY_MS[1]:g}], got {v:g}")


def constraint_values(values: dict[str, float | None], caps: dict[str, float],
                      higher_is_better: bool = False) -> list[float]:
    """One number per objective (loss, bytes, latency_ms order), <= 0 when within its cap.

    Scaled as value/cap - 1 so that violations of different units compare; an objective
    not measured (None) counts as violating its cap by 1.
    """
    out = []
    for key in OBJECTIVES:
        cap = caps.get(key)
        if cap is None:
            out.append(0.0)
            continue
        v = values.get(key)
        if v is None:
            out.append(1.0)
        elif key == "loss" and higher_is_better:  # a floor on accuracy-like metrics
            out.append(1 - v / cap if cap else -v)
        else:
            out.append(v / cap - 1 if cap else v)
    return out


def feasible(constraints: list[float] | None) -> bool:
    return constraints is not None and all(c <= 0 for c in constraints)
