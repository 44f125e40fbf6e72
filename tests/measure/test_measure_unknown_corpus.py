"""`measure` of a model whose corpus is unknown (issue 19): size, MACs and latency are measured,
the metric is left out with one line (stderr and the JSON's quality_note) saying how to add it;
an explicit --data that does not fit stays an error."""

import json

from typer.testing import CliRunner

from rnnslim.cli import app
from rnnslim.io.format import load_model, save_model
from rnnslim.measure import measure
from rnnslim.measure.quality import remembered_task
from rnnslim.tasks import make_model
from rnnslim.tasks.charlm import CharLMTask

# characters the built-in corpus (ASCII Python sources) has but this vocabulary lacks, and the reverse
TEXT = "çà élan, übermäßig naïve façade; " * 20
QUICK = ["--quick", "--threads", "1", "--no-baselines", "--json"]


def _saved(tmp_path, task: CharLMTask):
    model = make_model(task, cell="gru", hidden_size=8, num_layers=1)
    save_model(model, tmp_path / "m")
    return model, tmp_path / "m"


def _measure(args: list[str]):
    r = CliRunner().invoke(app, ["measure", *args])
    return r, (json.loads(r.stdout.strip().splitlines()[-1]) if r.exit_code == 0 else None)


def test_an_unknown_corpus_leaves_the_metric_out_and_says_how_to_add_it(tmp_path):
    _, path = _saved(tmp_path, CharLMTask(text=TEXT))  # trained on a text nobody can find again
    r, out = _measure([str(path), *QUICK])
    assert r.exit_code == 0, r.output
    assert out["model"]["quality"] is None and out["quality_change"] is None
    assert "outside the model's vocabulary" in out["quality_note"] and "--data FILE" in out["quality_note"]
    notes = [line for line in r.stderr.splitlines() if line.startswith("note: quality left out")]
    assert notes == [f"note: {out['quality_note']}"]  # one line, the same words as the JSON
    assert out["model"]["size"]["parameters"] > 0 and out["model"]["macs"]["dense"] > 0
    assert out["variants"][0]["status"] == "ok" and out["variants"][0]["latency"]["median_ms"] > 0


def test_with_data_the_metric_is_measured_and_a_bad_data_file_is_still_an_error(tmp_path):
    _, path = _saved(tmp_path, CharLMTask(text=TEXT))
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text(TEXT)
    bad.write_text("plain ascii text that this model cannot read " * 10)
    r, out = _measure([str(path), "--data", str(good), *QUICK])
    assert r.exit_code == 0, r.output
    assert out["model"]["quality"]["metrics"]["loss_nats"] > 0 and out["quality_note"] is None
    assert "quality left out" not in r.stderr
    r, _ = _measure([str(path), "--data", str(bad), *QUICK])
    assert r.exit_code == 2 and "error:" in r.output and "outside the model's vocabulary" in r.output


def test_a_moved_corpus_is_named_in_the_note(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    _, path = _saved(tmp_path, CharLMTask(corpus))  # the model remembers the file and its hash
    task, why = remembered_task(load_model(path))
    assert why is None and task.source == str(corpus.resolve())  # still there: no --data needed
    corpus.unlink()
    r, out = _measure([str(path), *QUICK])
    assert r.exit_code == 0, r.output
    assert out["model"]["quality"] is None and str(corpus) in out["quality_note"]


def test_python_api_without_a_task_says_so(tmp_path):
    model, _ = _saved(tmp_path, CharLMTask(text=TEXT))
    report = measure(model, quick=True, threads=(1,), include_baselines=False)
    assert report.model.quality is None and "task=" in report.quality_note
    assert report.quality_note in report.table()
    with_task = measure(model, task=CharLMTask(text=TEXT, vocab=model.task_meta["vocab"]), quick=True, threads=(1,),
                        include_baselines=False)
    assert with_task.model.quality is not None and with_task.quality_note is None
