"""The search's verdict in words: did any trial meet the budget, and what best.yaml holds.

    within the budget (bytes <= 847,271, loss <= 1.5362): best is trial #3 (...): valid loss ...
    NO trial met the budget (bytes <= 847,271): the least-violating trial is #0: 900,000 bytes
        (6.2 % over its cap), valid loss 1.5300 (+1.6 %); best.yaml holds it anyway: it misses the budget

A trial outside the budget is never called "best" without saying so: `rnnslim search` prints
this text first, best.yaml's header repeats it, and results.json carries it as "verdict".
Everything here reads the results dict of rnnslim.search.results.write_outputs (plain data).
"""

from __future__ import annotations

CAP_NAMES = {"loss": "loss", "bytes": "bytes", "latency_ms": "ms/step"}


def _value(key: str, v: float) -> str:
    return f"{v:,.0f}" if key == "bytes" else f"{v:.4g}" if key == "latency_ms" else f"{v:.4f}"


def caps_text(caps: dict, higher_is_better: bool = False) -> str:
    """`bytes <= 847,271, loss <= 1.5362` (a loss cap is a floor when higher is better)."""
    parts = []
    for key in ("bytes", "loss", "latency_ms"):
        if key in caps:
            op = ">=" if key == "loss" and higher_is_better else "<="
            parts.append(f"{CAP_NAMES[key]} {op} {_value(key, caps[key])}")
    return ", ".join(parts) or "no caps"


def misses(best: dict, caps: dict, higher_is_better: bool = False) -> list[str]:
    """Each cap the trial misses, with its value and by how much: `bytes 900,000 (cap 847,271: +6.2 %)`."""
    out = []
    for key in ("bytes", "loss", "latency_ms"):
        cap, v = caps.get(key), best.get(key)
        if cap is None:
            continue
        if v is None:
            out.append(f"{CAP_NAMES[key]} not measured (cap {_value(key, cap)})")
            continue
        over = (v < cap) if (key == "loss" and higher_is_better) else (v > cap)
        if over:
            pct = 100 * (v / cap - 1) if cap else float("inf")
            out.append(f"{CAP_NAMES[key]} {_value(key, v)} (cap {_value(key, cap)}: {pct:+.1f} %)")
    return out


def worse_than_input(best: dict, baseline: dict, higher_is_better: bool = False) -> list[str]:
    """What the trial does worse than the uncompressed input model (loss, bytes, latency)."""
    out = []
    loss, base_loss = best.get("loss"), baseline.get("loss")
    if loss is not None and base_loss and ((loss < base_loss) if higher_is_better else (loss > base_loss)):
        out.append(f"loss {100 * (loss / base_loss - 1):+.1f} %")
    for key, word in (("bytes", "larger"), ("latency_ms", "slower")):
        v, b = best.get(key), baseline.get(key)
        if v is not None and b and v > b:
            out.append(f"{v / b:.2f}x {word}")
    return out


def budget_verdict(results: dict) -> str:
    """The verdict lines for a search's results dict (see the module docstring)."""
    caps, best, base = results.get("caps") or {}, results.get("best"), results.get("baseline") or {}
    hib = bool(results.get("higher_is_better"))
    metric = results.get("metric", "loss")
    budget = caps_text(caps, hib)
    if best is None:
        return f"no trial finished the full fine-tune yet (budget: {budget}): best.yaml holds nothing"
    size = (f"{best['bytes']:,} bytes ({best['bytes_ratio']:.1f}x smaller)" if best.get("bytes") and
            best.get("bytes_ratio") else f"{best.get('bytes')} bytes")
    numbers = (f"valid {metric} {best['loss']:.4f} ({best['loss_change_pct']:+.2f} % vs the input), {size}"
               + (f", {best['latency_ms']:.4f} ms/step" if best.get("latency_ms") is not None else ""))
    where = f"best.yaml: {best['recipe']}" if best.get("recipe") else "best.yaml holds nothing (no recipe stored)"
    if best.get("feasible"):
        return f"within the budget ({budget}): best is trial #{best['trial']}: {numbers}\n{where}"
    missed = misses(best, caps, hib)
    worse = worse_than_input(best, base, hib)
    lines = [f"NO trial met the budget ({budget}): the least-violating trial is #{best['trial']}: {numbers}",
             "  it misses " + ("; ".join(missed) if missed else "the budget")
             + (f"; and is worse than the input model ({', '.join(worse)})" if worse else "")]
    lines.append(f"{where} anyway: it is NOT within the budget (a looser budget or more trials may find one)"
                 if best.get("recipe") else where)
    return "\n".join(lines)
