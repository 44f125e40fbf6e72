"""Reference points read from a `rnnslim compress` run's report.json: what is read, and a clear
error naming the path for a missing, corrupt or incomplete report or another metric."""

from __future__ import annotations

import json

import pytest

from rnnslim.search.references import ReferenceError, ReferencePoint, check_metric, load_reference


def _report(tmp_path, last: dict, name: str = "deploy-int8", metric: str = "loss_nats"):
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    rows = [{"index": 0, "kind": "input", "measurements": {"metrics": {"valid": {metric: 1.3}}, "artifact_bytes": 1000}},
            {"index": 1, "kind": "int8_integer", "measurements": last}]
    (run / "report.json").write_text(json.dumps({"format": "rnnslim-report", "primary_metric": metric,
                                                 "recipe": {"name": name}, "rows": rows}))
    return run


def test_the_last_stage_gives_the_validation_and_test_metric_and_the_bytes(tmp_path):
    run = _report(tmp_path, {"metrics": {"valid": {"loss_nats": 1.41}, "test": {"loss_nats": 1.52}},
                             "artifact_bytes": 250})
    ref = load_reference(run)
    assert (ref.label, ref.loss, ref.test_loss, ref.bytes, ref.metric) == ("deploy-int8", 1.41, 1.52, 250, "loss_nats")
    assert load_reference(run / "report.json", label="mine").label == "mine"  # the file itself, relabelled


def test_a_run_without_a_test_split_still_gives_a_point(tmp_path):
    ref = load_reference(_report(tmp_path, {"metrics": {"valid": {"loss_nats": 1.41}}, "artifact_bytes": 250}))
    assert ref.test_loss is None


@pytest.mark.parametrize("last, words", [
    ({"metrics": {"valid": {"loss_nats": float("nan")}}, "artifact_bytes": 250}, "no finite validation loss_nats"),
    ({"metrics": {"test": {"loss_nats": 1.5}}, "artifact_bytes": 250}, "no finite validation"),
    ({"metrics": {"valid": {"loss_nats": 1.4}}}, "no artifact size"),
    ({"metrics": {"valid": {"loss_nats": 1.4}}, "artifact_bytes": 0}, "no artifact size"),
])
def test_an_incomplete_last_stage_is_refused_naming_what_is_missing(tmp_path, last, words):
    with pytest.raises(ReferenceError, match=words):
        load_reference(_report(tmp_path, last))


def test_a_missing_or_corrupt_report_is_refused_naming_the_path(tmp_path):
    with pytest.raises(ReferenceError, match="no report.json") as e:
        load_reference(tmp_path / "nowhere")
    assert "nowhere" in str(e.value)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ReferenceError, match="cannot read it as JSON"):
        load_reference(bad)
    bad.write_text(json.dumps({"rows": []}))
    with pytest.raises(ReferenceError, match="no stage rows"):
        load_reference(bad)


def test_a_reference_on_another_metric_cannot_share_the_axis():
    ref = ReferencePoint(label="r", loss=0.9, bytes=10, metric="accuracy")
    check_metric([ref], "accuracy")
    with pytest.raises(ReferenceError, match="'accuracy'.*'loss_nats'"):
        check_metric([ref], "loss_nats")
