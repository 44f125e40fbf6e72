"""The search verdict: a trial outside the budget is never called best without saying so."""

from rnnslim.search.verdict import budget_verdict, caps_text, misses, worse_than_input

BASE = {"loss": 1.50, "bytes": 1_000_000, "latency_ms": 1.0}


def _results(best: dict | None, caps: dict, higher_is_better: bool = False) -> dict:
    return {"metric": "loss_nats", "caps": caps, "baseline": BASE, "best": best, "higher_is_better": higher_is_better}


def _best(feasible: bool, loss: float, size: int, latency: float | None = 0.5, recipe: str | None = "o/best.yaml"):
    return {"trial": 4, "feasible": feasible, "loss": loss, "bytes": size, "latency_ms": latency,
            "bytes_ratio": BASE["bytes"] / size, "loss_change_pct": 100 * (loss / BASE["loss"] - 1), "recipe": recipe}


def test_a_trial_within_the_budget_is_the_best():
    text = budget_verdict(_results(_best(True, 1.52, 40_000), {"bytes": 50_000.0, "loss": 1.53}))
    assert text.startswith("within the budget (bytes <= 50,000, loss <= 1.5300): best is trial #4:")
    assert "40,000 bytes (25.0x smaller)" in text and "+1.33 %" in text and "best.yaml: o/best.yaml" in text
    assert "NO trial" not in text


def test_no_trial_in_budget_says_so_first_and_names_what_it_misses():
    best = _best(False, 2.40, 1_200_000, latency=2.0)
    text = budget_verdict(_results(best, {"bytes": 50_000.0, "loss": 1.53}))
    first, second, third = text.splitlines()
    assert first.startswith("NO trial met the budget (bytes <= 50,000, loss <= 1.5300): "
                            "the least-violating trial is #4:")
    assert "best is" not in text
    # both missed caps with their values and how far over, and that it is worse than its input
    assert "bytes 1,200,000 (cap 50,000: +2300.0 %)" in second and "loss 2.4000 (cap 1.5300: +56.9 %)" in second
    assert "worse than the input model (loss +60.0 %, 1.20x larger, 2.00x slower)" in second
    assert third.startswith("best.yaml: o/best.yaml anyway: it is NOT within the budget")


def test_nothing_finished_or_nothing_stored_says_best_yaml_holds_nothing():
    assert "best.yaml holds nothing" in budget_verdict(_results(None, {"bytes": 50_000.0}))
    text = budget_verdict(_results(_best(False, 1.6, 60_000, recipe=None), {"bytes": 50_000.0}))
    assert text.splitlines()[-1].startswith("best.yaml holds nothing") and "anyway" not in text


def test_helpers_on_accuracy_floors_and_missing_values():
    assert caps_text({"loss": 0.9, "latency_ms": 0.25}, higher_is_better=True) == "loss >= 0.9000, ms/step <= 0.25"
    assert caps_text({}) == "no caps"
    assert misses({"loss": 0.8, "bytes": 10}, {"loss": 0.9, "bytes": 100.0}, higher_is_better=True) == [
        "loss 0.8000 (cap 0.9000: -11.1 %)"]
    assert misses({"loss": 1.0}, {"latency_ms": 0.5}) == ["ms/step not measured (cap 0.5)"]
    assert worse_than_input({"loss": 0.95, "bytes": 10}, {"loss": 0.9, "bytes": 100}, higher_is_better=True) == []
    assert worse_than_input({"loss": 0.85}, {"loss": 0.9}, higher_is_better=True) == ["loss -5.6 %"]
