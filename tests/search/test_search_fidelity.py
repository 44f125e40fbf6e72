"""Multi-fidelity promotion: fine-tune steps are a dimension and a long fine-tune is reached
through a ladder of proxy rungs, each trial going on only while the promotion rule says so."""

from __future__ import annotations

from search_helpers import FAST, FAST_SPACE, make_model

import rnnslim
from rnnslim.search.config import SearchConfig
from rnnslim.search.fidelity import promote, recovery_family, rung_plan
from rnnslim.search.space import FinetuneSpace

FT = {"kind": "finetune", "max_steps": 100}
STAGES = [{"kind": "prune_units", "ratio": 0.5}, FT, {"kind": "quantize_weights", "bits": 3}]


def test_the_proxy_ladder_grows_by_eta_and_stops_below_the_trials_fine_tune():
    plan = rung_plan(STAGES, proxy_steps=5, proxy_rungs=3, growth=3)
    assert [r for r, _ in plan] == ["oneshot", "proxy", "proxy2", "proxy3", "full"]
    assert [s[1]["max_steps"] for _, s in plan[1:]] == [5, 15, 45, 100]
    assert all(s[0] == STAGES[0] and s[-1] == STAGES[2] for _, s in plan[1:])  # only the fine-tune shortens
    assert [s["kind"] for s in plan[0][1]] == ["prune_units", "quantize_weights"]  # oneshot: no fine-tune
    short = rung_plan(STAGES, proxy_steps=40, proxy_rungs=3, growth=3)  # 40, 120 >= 100: one proxy rung
    assert [r for r, _ in short] == ["oneshot", "proxy", "full"]
    assert rung_plan(STAGES, proxy_steps=5) == rung_plan(STAGES, 5, 1, 3)  # default: one proxy rung as before


def test_promotion_keeps_the_top_one_over_eta_and_the_front():
    peers = [{"loss": 1.0 + i / 10, "bytes": 100, "latency_ms": None} for i in range(8)]
    mine = {"loss": 1.35, "bytes": 100, "latency_ms": None}  # rank 4 of 9
    assert promote(mine, peers, {}, eta=2)[0]  # keeps ceil(9 / 2) = 5
    go, why = promote(mine, peers, {}, eta=3)  # keeps 3
    assert not go and "promotes the top 3" in why
    assert promote({**mine, "bytes": 99}, peers, {}, eta=100)[0]  # smaller than every better peer: on the front
    assert not promote({**mine, "loss": 0.1}, peers, {"bytes": 50})[0]  # over the byte cap: never


def test_promotion_by_family_compares_a_trial_only_with_its_own_family():
    # dense QAT trials' rung losses are GPTQ's; a sparse trial's are pruning's before any recovery
    dense = [{"loss": 1.0 + i / 100, "bytes": 100, "latency_ms": None, "family": "dense+qat"} for i in range(6)]
    sparse = [{"loss": 2.0 + i / 10, "bytes": 100, "latency_ms": None, "family": "sparse+finetune"} for i in range(2)]
    mine = {"loss": 1.9, "bytes": 100, "latency_ms": None, "family": "sparse+finetune"}
    go, why = promote(mine, dense + sparse, {})
    assert go and "(2 peers)" in why  # the best of its family: on its front
    pooled = {k: v for k, v in mine.items() if k != "family"}  # no family: every trial is a peer
    go, why = promote(pooled, dense + sparse, {})
    assert not go and "rank 7 of 9" in why
    assert not promote({**mine, "loss": 2.5}, dense + sparse, {})[0]  # worst of its own family: stops


def test_recovery_family_reads_sparsity_and_the_training_stage():
    assert recovery_family(STAGES) == "dense+finetune"  # prune_units cuts widths: no sparsity to recover from
    assert recovery_family([{"kind": "prune_obs", "sparsity": 0.8}, FT]) == "sparse+finetune"
    assert recovery_family([{"kind": "prune_nm", "n": 2, "m": 4}]) == "sparse+none"
    assert recovery_family([{"kind": "quantize_gptq", "bits": 3}, {"kind": "qat", "steps": 5}]) == "dense+qat"


def test_the_promotion_rule_is_part_of_the_study_key_only_when_not_pooled():
    by_family = SearchConfig(model="m.json", out="o", promotion="by_family")
    assert by_family.study_key()["promotion"] == "by_family"
    pooled = SearchConfig(model="m.json", out="o")
    assert pooled.promotion == "pooled" and "promotion" not in pooled.study_key()  # the key of older studies


def test_a_search_climbs_the_ladder_and_stops_trials_that_are_not_promoted(tmp_path):
    model, data = make_model(tmp_path)
    ft = FinetuneSpace(max_steps=8, choices=1, proxy_steps=2, proxy_rungs=2,
                       settings=FAST_SPACE.finetune.settings)
    space = FAST_SPACE.model_copy(update={"finetune": ft, "dimensions": ["widths", "finetune", "quantize"]})
    widths = [(16, 16), (12, 12), (8, 8), (16, 8)]
    points = [{"width_l0": a, "width_l1": b, "finetune_steps": 8, "quant": "quantize_weights", "bits_rnn": 8,
               "bits_io": 8} for a, b in widths]
    res = rnnslim.search(str(model), data=str(data), budget="", trials=4, out=tmp_path / "s", space=space,
                         enqueue=points, eta=3.0, **FAST)
    rows = sorted(res["trials"], key=lambda r: r["number"])
    assert [r["state"] for r in rows] == ["COMPLETE"] * 4
    ladder = ["oneshot", "proxy", "proxy2", "full"]  # no fine-tune, 2 and 2 * eta = 6 steps, the trial's 8
    for r in rows:
        ran = [k for k in ladder if k in r["rungs"]]
        assert ran == ladder[:len(ran)] and r["fidelity"] == ran[-1]
        for rung in ran[:-1]:  # every rung it left was a promotion, with the reason
            assert r["promotion"][rung].startswith(("on the rung's Pareto front", "loss rank"))
        if r["fidelity"] != "full":  # it stopped: the rule said why
            assert "dominated" in r["promotion"][r["fidelity"]]
    assert rows[0]["fidelity"] == "full" and ran_of(rows[0]) == ladder  # no peers yet: on every front
    stopped = [r for r in rows if r["fidelity"] != "full"]
    assert all(r["promotion"][r["fidelity"]].startswith("dominated") for r in stopped)


def ran_of(row: dict) -> list[str]:
    return [k for k in ("oneshot", "proxy", "proxy2", "full") if k in row["rungs"]]
