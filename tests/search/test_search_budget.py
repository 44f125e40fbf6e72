"""Budget terms are bounded to meaningful ranges (issue 19 section 6): a loss change of -200 %
made every trial "feasible", `bytes=1/<400 digits>` gave a cap of 0."""

from __future__ import annotations

import pytest
from search_helpers import make_model
from typer.testing import CliRunner

from rnnslim.cli import app
from rnnslim.search.budget import MIN_BYTES, Budget, BudgetError, Cap, constraint_values, feasible


@pytest.mark.parametrize("text", ["loss=-200%", "loss=-100%", "loss=+1000.5%", "loss=-1" + "0" * 400 + "%"])
def test_a_loss_change_outside_minus_100_to_plus_1000_percent_is_refused(text):
    with pytest.raises(BudgetError, match=r"loss.*\(-100 %, \+1000 %\]|finite"):
        Budget.parse(text)


def test_the_loss_change_bounds_themselves_are_meaningful():
    caps = Budget.parse("loss=-99.5%").resolve({"loss": 2.0})
    assert 0 < caps["loss"] < 2.0  # a demand to improve: a trial worse than the input is infeasible
    assert not feasible(constraint_values({"loss": 3.0}, caps))
    assert Budget.parse("loss=+1000%").resolve({"loss": 2.0})["loss"] == pytest.approx(22.0)


@pytest.mark.parametrize("text", ["bytes=1/" + "9" * 400, "bytes=3/2", "latency_ms=2/1", "bytes=0/4", "bytes=1/0"])
def test_a_fraction_outside_0_to_1_is_refused(text):
    with pytest.raises(BudgetError, match="fraction"):
        Budget.parse(text)


def test_a_fraction_that_resolves_below_a_few_bytes_is_refused_when_the_input_is_known():
    budget = Budget.parse("bytes=1/" + "1" + "0" * 300)  # parses (1e-300 lies in (0, 1]) ...
    with pytest.raises(BudgetError, match=f"below {MIN_BYTES}"):
        budget.resolve({"bytes": 2_000_000})  # ... but no artifact fits 2e-294 bytes
    with pytest.raises(BudgetError, match="below"):
        Budget.parse("latency_ms=1/1000000000000").resolve({"latency_ms": 0.2})
    assert Budget.parse("bytes=1/1").resolve({"bytes": 2_000_000})["bytes"] == 2_000_000


@pytest.mark.parametrize("text", ["bytes=nan", "bytes=inf", "bytes=1e400", "latency_ms=1e400", "loss=1e400",
                                  "loss=NaN", "loss=inf%", "bytes=1" + "0" * 400 + "kB", "latency_ms=-0.5",
                                  "bytes=10", "bytes=100.5", "bytes=1e20", "latency_ms=1e7", "latency_ms=1e-9",
                                  "loss=0", "loss=2e6", "bytes=\u0661\u0662kB", "loss=+\u0662%"])
def test_non_finite_out_of_range_or_non_ascii_values_are_refused_with_the_term_named(text):
    key = text.split("=")[0]
    with pytest.raises(BudgetError, match=f"budget {key}="):
        Budget.parse(text)


def test_a_relative_cap_on_a_baseline_that_is_not_a_positive_number_is_refused():
    for base in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(BudgetError, match="give an absolute value"):
            Budget.parse("loss=+2%").resolve({"loss": base})


def test_budget_built_from_python_meets_the_same_bounds():
    with pytest.raises(ValueError, match=r"\(-100 %"):
        Budget(loss=Cap(value=-200.0, relative=True, text="-200%"))
    with pytest.raises(ValueError, match="fraction"):
        Budget(bytes=Cap(value=0.0, relative=True))


def test_a_long_value_is_shortened_in_the_message():
    with pytest.raises(BudgetError) as e:
        Budget.parse("bytes=1/" + "9" * 400)
    assert len(str(e.value)) < 300


@pytest.mark.parametrize("budget", ["loss=-200%", "bytes=1/" + "9" * 400, "latency_ms=nan"])
def test_cli_search_refuses_a_bad_budget_with_one_error_line_and_writes_nothing(tmp_path, budget):
    model, data = make_model(tmp_path)
    out = tmp_path / "search"
    r = CliRunner().invoke(app, ["search", str(model), "--data", str(data), "--out", str(out), "--budget", budget])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert lines[-1].startswith("error: budget ") and "Traceback" not in r.output
    assert not out.exists()
