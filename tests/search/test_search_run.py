"""A 3-trial search writes a Pareto front and a best recipe that `rnnslim compress` re-runs;
the best trial respects the budget."""

from __future__ import annotations

import json

import yaml
from search_helpers import FAST, FAST_SPACE, make_model
from typer.testing import CliRunner

import rnnslim
from rnnslim.cli import app
from rnnslim.io.format import artifact_bytes
from rnnslim.search.budget import feasible
from rnnslim.search.references import load_reference
from rnnslim.search.results import choose_best


def test_three_trials_write_a_front_and_a_best_recipe_compress_reruns(tmp_path):
    model, data = make_model(tmp_path)
    out = tmp_path / "search"
    # two warm-start points make the budget test certain: one inside the cap (8 + 8 units, 4-bit
    # recurrent weights: ~60 % of the bytes, the manifest weighs on a model this small), one over
    # it (the input as it is); the third trial is sampled
    inside = {"width_l0": 8, "width_l1": 8, "sparsity_kind": "none", "finetune_steps": 0, "quant": "quantize_weights",
              "bits_rnn": 4, "bits_io": 8}
    over = {"width_l0": 16, "width_l1": 16, "sparsity_kind": "none", "finetune_steps": 0, "quant": "none"}
    res = rnnslim.search(str(model), data=str(data), budget="bytes=2/3", trials=3, out=out, space=FAST_SPACE,
                         enqueue=[inside, over], **FAST)
    # a sampled trial predicted over the byte cap is PRUNED before training and does not count
    assert res["states"]["COMPLETE"] == 3 and set(res["states"]) <= {"COMPLETE", "PRUNED"}
    assert all(r["predicted_bytes"] > res["caps"]["bytes"] for r in res["trials"] if r["state"] == "PRUNED")
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["pareto_front"] == res["pareto_front"] and len(on_disk["trials"]) == sum(res["states"].values())
    full = {r["number"]: r for r in res["trials"] if r["fidelity"] == "full" and r["reused_from"] is None}
    assert res["pareto_front"] and set(res["pareto_front"]) <= set(full)
    best = res["best"]
    cap = res["caps"]["bytes"]
    assert abs(cap - res["baseline"]["bytes"] * 2 / 3) < 1e-6 * cap
    assert full[0]["params"] == inside and full[0]["bytes"] <= cap and full[0]["feasible"]
    assert full[1]["params"] == over and full[1]["bytes"] > cap and not full[1]["feasible"]
    # the budget defines the best: within the cap, and among those the lowest loss
    fits = [r for r in full.values() if r["bytes"] <= cap]
    assert best["feasible"] and best["bytes"] <= cap and best["trial"] != 1
    assert best["loss"] == min(r["loss"] for r in fits)
    recipe = yaml.safe_load((out / "best.yaml").read_text())
    assert recipe["measure"].get("eval_max_steps") is None  # the re-run evaluates the whole splits
    if (out / "pareto.png").exists():
        assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"

    rerun = tmp_path / "rerun"
    r = CliRunner().invoke(app, ["compress", str(model), "--recipe", str(out / "best.yaml"), "--out", str(rerun),
                                 "--json"])
    assert r.exit_code == 0, r.output
    assert artifact_bytes(rerun / "model") == best["bytes"]  # the same artifact as the trial's

    # the re-run as a reference point: the finished study runs no new trial, and its report.html
    # draws the reference beside the trials
    ref = load_reference(rerun)
    assert ref.bytes == best["bytes"] and ref.label == recipe["name"] and ref.test_loss is not None
    again = rnnslim.search(str(model), data=str(data), budget="bytes=2/3", trials=3, out=out, space=FAST_SPACE,
                           references=[ref], **FAST)
    assert again["states"] == res["states"] and again["references"] == [ref.model_dump(mode="json")]
    page = (out / "report.html").read_text()
    assert 'id="plot-pareto"' in page and "reference recipes" in page and f"{ref.label} (reference)" in page


def test_the_best_is_the_lowest_preferred_value_among_feasible_trials():
    rows = [{"number": i, "state": "COMPLETE", "fidelity": "full", "reused_from": None, "loss": loss, "bytes": b,
             "latency_ms": 1.0, "constraints": [0.0, b / 100 - 1, 0.0], "feasible": feasible([0.0, b / 100 - 1, 0.0])}
            for i, (loss, b) in enumerate([(1.0, 500), (1.5, 90), (1.2, 100), (1.1, 150)])]
    rows.append({**rows[0], "number": 9, "fidelity": "proxy", "loss": 0.1, "bytes": 10, "feasible": True})
    best, why = choose_best(rows, "loss", False)
    assert best["number"] == 2 and "within the budget" in why  # 0 and 3 are over 100 bytes; 9 is a proxy
    assert choose_best(rows, "bytes", False)[0]["number"] == 1
    for r in rows:
        r["feasible"] = False
    best, why = choose_best([rows[0], rows[3]], "loss", False)
    assert best["number"] == 3 and "NO trial" in why  # the least violating (150 vs cap 100)


def test_enqueued_points_run_first_and_the_fold_shrinks_layer_0(tmp_path):
    """Warm start: a new study runs the enqueued parameter sets before sampling; with fold_input
    layer 0 reads a V-wide embedding (E = 48 > V), exactly the same function."""
    import torch

    from rnnslim.io.format import load_model, save_model
    from rnnslim.models.sequence import SequenceModel
    from rnnslim.search.space import SearchSpace
    from rnnslim.tasks.charlm import CharLMTask

    _, data = make_model(tmp_path)
    task = CharLMTask(data)
    torch.manual_seed(0)
    wide = SequenceModel(task.model_spec(hidden_size=16, num_layers=2, embed_size=48))
    wide.task_meta = task.meta()
    model = save_model(wide, tmp_path / "wide")
    space = SearchSpace(**{**FAST_SPACE.model_dump(), "dimensions": ["widths", "finetune", "fold", "quantize"],
                           "fold_input": True})
    point = {"width_l0": 12, "width_l1": 16, "finetune_steps": 0, "quant": "none"}
    out = tmp_path / "search"
    res = rnnslim.search(str(model), data=str(data), trials=1, out=out, space=space, enqueue=[point], **FAST)
    (trial,) = res["trials"]
    assert trial["number"] == 0 and trial["params"] == point and trial["state"] == "COMPLETE"
    final = load_model(trial["run_dir"] + "/model")
    V = len(task.vocab)
    assert final.embedding.weight.shape == (V, V) and final.rnn.layers[0].weight_ih_l0.shape == (4 * 12, V)


def test_a_malformed_warm_start_file_is_refused_before_any_trial(tmp_path):
    model, data = make_model(tmp_path)
    bad = tmp_path / "warm.yaml"
    for text in ("width_l0: 12\n", "- [1, 2]\n", "- {width_l0: [12]}\n", "- {}\n"):
        bad.write_text(text)
        r = CliRunner().invoke(app, ["search", str(model), "--data", str(data), "--out", str(tmp_path / "s"),
                                     "--warm-start", str(bad)])
        assert r.exit_code != 0 and "--warm-start" in r.output and "parameter mappings" in r.output, r.output
    assert not (tmp_path / "s").exists()


def test_a_gptq_trial_runs_end_to_end(tmp_path):
    """A GPTQ trial completes, and it is GPTQ: its codes differ from round-to-nearest's in the
    same formats, and its outputs on calibration data are closer to the float model's."""
    import copy
    from pathlib import Path

    import torch

    from rnnslim.io.format import load_model
    from rnnslim.quantize.api import apply_format_
    from rnnslim.reconstruct.gptq import GPTQ
    from rnnslim.search.space import SearchSpace
    from rnnslim.tasks.charlm import CharLMTask

    model, data = make_model(tmp_path)
    space = SearchSpace(dimensions=["quantize"], quant_kinds=("quantize_gptq",), bits=(3,), io_bits=(8,),
                        calibration_batches=1)
    res = rnnslim.search(str(model), data=str(data), trials=1, out=tmp_path / "s", space=space, **FAST)
    (trial,) = res["trials"]
    assert trial["state"] == "COMPLETE" and trial["fidelity"] == "full" and trial["bytes"] < res["baseline"]["bytes"]

    float_model, gptq = load_model(model), load_model(Path(trial["run_dir"]) / "model")
    rtn = copy.deepcopy(float_model)  # round-to-nearest in the formats of the trial's two GPTQ stages
    for bits, targets in ((3, ["rnn", "input_proj"]), (8, ["embedding", "decoder"])):
        cfg = GPTQ(bits=bits, targets=targets)
        apply_format_(rtn, cfg.weight_format(), cfg.targets)
    x = torch.cat([b.inputs for b in CharLMTask(data).calibration_batches(2, 8, 32)], 1)  # (T, B) token ids
    with torch.no_grad():
        ref, out_gptq, out_rtn = float_model(x)[0], gptq(x)[0], rtn(x)[0]
    assert not torch.equal(out_gptq, out_rtn)
    err_gptq, err_rtn = ((out_gptq - ref) ** 2).mean().item(), ((out_rtn - ref) ** 2).mean().item()
    assert err_gptq < err_rtn, (err_gptq, err_rtn)


def test_a_warm_start_point_with_unknown_names_fails_its_trial_clearly(tmp_path):
    import pytest

    model, data = make_model(tmp_path)
    point = {"width_l0": 12, "widht_l1": 16}  # a typo the space never asks for: Optuna alone would ignore it
    with pytest.raises(RuntimeError, match="widht_l1"):
        rnnslim.search(str(model), data=str(data), trials=1, out=tmp_path / "s", space=FAST_SPACE,
                       enqueue=[point], max_failures=1, **FAST)
    results = json.loads((tmp_path / "s" / "results.json").read_text())
    assert results["trials"][0]["state"] == "FAIL" and "does not sample" in results["trials"][0]["error"]


def test_a_reference_that_is_not_a_compress_run_is_refused_before_any_trial(tmp_path):
    model, data = make_model(tmp_path)
    r = CliRunner().invoke(app, ["search", str(model), "--data", str(data), "--out", str(tmp_path / "s"),
                                 "--reference", str(tmp_path / "no-run")])
    assert r.exit_code != 0 and "--reference" in r.output and "no report.json" in r.output, r.output
    assert not (tmp_path / "s").exists()


def test_a_trial_predicted_under_the_size_floor_is_pruned_before_training(tmp_path):
    model, data = make_model(tmp_path)
    small = {"width_l0": 8, "width_l1": 8, "sparsity_kind": "none", "finetune_steps": 0, "quant": "quantize_weights",
             "bits_rnn": 4, "bits_io": 8}  # about 60 % of the input's bytes (the first test)
    same = {"width_l0": 16, "width_l1": 16, "sparsity_kind": "none", "finetune_steps": 0, "quant": "none"}
    res = rnnslim.search(str(model), data=str(data), budget="bytes=1/1", trials=1, out=tmp_path / "s",
                         space=FAST_SPACE, enqueue=[small, same], size_floor=0.9, **FAST)
    first, second = res["trials"][:2]
    assert first["state"] == "PRUNED" and first["fidelity"] == "predicted" and first["run_dir"] is None
    assert first["predicted_bytes"] < 0.9 * res["caps"]["bytes"]
    assert first["constraints"][1] > 0  # bytes constraint: floor / predicted - 1, so the sampler sees it infeasible
    assert second["state"] == "COMPLETE" and second["params"] == same
    r = CliRunner().invoke(app, ["search", str(model), "--data", str(data), "--out", str(tmp_path / "t"),
                                 "--size-floor", "0.5"])
    assert r.exit_code != 0 and "--budget bytes=" in r.output, r.output
    r = CliRunner().invoke(app, ["search", str(model), "--data", str(data), "--out", str(tmp_path / "t"),
                                 "--promotion", "best"])
    assert r.exit_code != 0 and "--promotion must be by_family or pooled" in r.output, r.output


def test_a_qat_trial_climbs_its_rungs_and_ends_quantized_as_predicted(tmp_path):
    """qat on: the fine-tune steps run as QAT at bits_rnn after the rnn's PTQ stage (the oneshot rung:
    the recipe without it), and the trial's artifact is the size predicted before training (to the
    qat stage's training record, which only the real run writes)."""
    model, data = make_model(tmp_path)
    space = FAST_SPACE.model_copy(update={"qat": (True,)})
    point = {"width_l0": 12, "width_l1": 12, "sparsity_kind": "none", "finetune_steps": 4, "quant": "quantize_weights",
             "bits_rnn": 4, "bits_io": 8}
    res = rnnslim.search(str(model), data=str(data), trials=1, out=tmp_path / "s", space=space, enqueue=[point],
                         **FAST)
    trial = res["trials"][0]
    assert trial["state"] == "COMPLETE" and trial["fidelity"] == "full", trial.get("error")
    recipe = yaml.safe_load((tmp_path / "s" / "best.yaml").read_text())
    kinds = [s["kind"] for s in recipe["stages"]]
    assert "finetune" not in kinds and kinds[-3:] == ["quantize_weights", "quantize_weights", "qat"]
    qat = recipe["stages"][-1]
    assert (qat["steps"], qat["bits"], qat["targets"]) == (4, 4, ["rnn", "input_proj"])
    manifest = json.loads(next((tmp_path / "s" / "trials").glob("*/model/model.json")).read_text())
    record = next(len(json.dumps(h["record"])) for h in manifest["history"] if h.get("stage") == "qat")
    assert 0 <= trial["bytes"] - trial["predicted_bytes"] <= record + 0.02 * trial["bytes"]
