"""A search's report.html: the Pareto figure with the trials, the chosen best and the reference
recipes as labelled squares; the front table; a higher-is-better metric plotted as 1 - metric."""

from __future__ import annotations

from rnnslim.report.search_page import render_search_html, search_points


def _results(higher_is_better: bool = False) -> dict:
    def trial(n, loss, size, fidelity="full"):
        return {"number": n, "state": "COMPLETE", "fidelity": fidelity, "loss": loss, "test_loss": loss + 0.1,
                "bytes": size, "latency_ms": 0.1, "reused_from": None, "feasible": size <= 500, "params": {"w": n}}

    return {"study": "s<1>", "model": "m", "metric": "accuracy" if higher_is_better else "loss_nats",
            "higher_is_better": higher_is_better, "budget": "bytes=1/2", "caps": {"bytes": 500}, "prefer": "bytes",
            "baseline": {"loss": 1.0, "test_loss": 1.1, "bytes": 1000}, "states": {"COMPLETE": 4},
            "pareto_front": [0, 1], "best": {"trial": 1}, "verdict": "trial 1 meets the budget",
            "references": [{"label": "hand <int8>", "loss": 0.95, "test_loss": 1.05, "bytes": 600, "source": "r"}],
            "trials": [trial(0, 0.9, 800), trial(1, 0.95, 400), trial(2, 0.99, 900), trial(3, 0.5, 100, "proxy")]}


def test_the_page_plots_full_trials_the_best_and_the_references():
    page = render_search_html(_results())
    assert 'id="plot-pareto"' in page and "chosen: trial 1" in page and "reference recipes" in page
    assert "hand &lt;int8&gt; (reference)" in page and "<int8>" not in page  # escaped, in the front table
    assert "s&lt;1&gt;" in page and "trial 1 meets the budget" in page
    points, chosen, refs = search_points(_results())
    assert [p["label"] for p in points] == ["trial 0", "trial 1", "trial 2"]  # the proxy trial is left out
    assert chosen["label"] == "trial 1" and refs[0]["bytes"] == 600


def test_a_higher_is_better_metric_is_plotted_as_one_minus_it():
    points, _, refs = search_points(_results(higher_is_better=True))
    assert abs(points[0]["loss"] - 0.1) < 1e-12 and abs(refs[0]["loss"] - 0.05) < 1e-12
    assert "validation 1 - accuracy" in render_search_html(_results(higher_is_better=True))


def test_a_search_without_a_full_trial_says_so():
    res = {**_results(), "trials": [], "references": [], "best": None, "verdict": None}
    page = render_search_html(res)
    assert "nothing to plot" in page and "No trial reached the full fine-tune yet" in page
