"""Size before cost: the bytes predicted from a recipe's shapes and bit widths are those of the
model the pipeline finishes with; a trial over the byte cap ends before any training, PRUNED
with its byte excess as the constraint the sampler ranks it by."""

from __future__ import annotations

import json
import math

import pytest
from search_helpers import FAST, FAST_SPACE, load_study, make_model

import rnnslim
from rnnslim.io.format import artifact_bytes, load_model, resolve_model_path
from rnnslim.pipeline import stage as stage_registry
from rnnslim.pipeline.recipe import Recipe
from rnnslim.pipeline.runner import run_pipeline
from rnnslim.search.run import _constraints
from rnnslim.search.size import ENTROPY_SLACK, entropy_coded_bytes, predict_bytes, predict_bytes_bounds
from rnnslim.tasks.charlm import CharLMTask

FT = {"kind": "finetune", "max_steps": 3, "lr": 0.003, "batch_size": 4, "seq_len": 16, "eval_max_steps": 100}
CONFIGS = {
    "widths+int3/int8": [{"kind": "prune_units", "per_layer": {0: 0.5, 1: 0.25}, "round_to": 4, "refit_batches": 1},
                         FT, {"kind": "quantize_weights", "bits": 3, "targets": ["rnn", "input_proj"], "clip": "mse"},
                         {"kind": "quantize_weights", "bits": 8, "targets": ["embedding", "decoder"], "clip": "mse"}],
    "int4": [FT, {"kind": "quantize_weights", "bits": 4, "targets": ["rnn", "input_proj"]}],
    "sparsity": [{"kind": "prune", "sparsity": 0.7, "calibration_batches": 1}, FT],
    "qat int3 / int8": [  # the search's qat mode: predicted as quantize_weights in the same format
        {"kind": "qat", "steps": 3, "bits": 3, "targets": ["rnn", "input_proj"], "clip": "mse",
         **{k: v for k, v in FT.items() if k not in ("kind", "max_steps")}},
        {"kind": "quantize_weights", "bits": 8, "targets": ["embedding", "decoder"]}],
    "int2 lzma -> qat on its grid / int8": [  # v4's qat mode: the skeleton converts without training
        {"kind": "quantize_weights", "bits": 2, "targets": ["rnn", "input_proj"], "clip": "mse",
         "entropy_coding": True},
        {"kind": "qat", "steps": 3, "bits": 2, "targets": ["rnn", "input_proj"], "entropy_coding": True,
         **{k: v for k, v in FT.items() if k not in ("kind", "max_steps")}},
        {"kind": "quantize_weights", "bits": 8, "targets": ["embedding", "decoder"]}],
}


def _shape_only(node):
    """The manifest with what only values decide blanked: stage run records (training logs,
    error figures), floats, the weights' hash."""
    if isinstance(node, dict):
        return {k: ({} if k == "record" else "-" if k == "weights_sha256" else _shape_only(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_shape_only(v) for v in node]
    return 0.0 if isinstance(node, float) else node


@pytest.mark.parametrize("name", list(CONFIGS))
def test_predicted_bytes_are_the_finished_models(tmp_path, name):
    model_dir, data = make_model(tmp_path)
    model, task = load_model(model_dir), CharLMTask(data)
    recipe = Recipe.from_dict({"version": 1, "name": "size-test", "seed": 0,
                               "measure": {"latency": False, "eval_max_steps": 100}, "stages": CONFIGS[name]})
    predicted, bound = predict_bytes_bounds(model, task, recipe, keep=tmp_path / "skeleton")
    assert predict_bytes(model, task, recipe) == bound
    res = run_pipeline(model, recipe, task, tmp_path / "run", progress=False)
    final = res.out_dir / "model"
    assert artifact_bytes(tmp_path / "skeleton") == predicted and (bound > predicted) == ("lzma" in name)
    (sj, sw), (fj, fw) = resolve_model_path(tmp_path / "skeleton"), resolve_model_path(final)
    if "lzma" in name:  # lzma-coded codes: their size follows the values QAT moved (the bound's slack)
        assert abs(sw.stat().st_size - fw.stat().st_size) <= ENTROPY_SLACK * entropy_coded_bytes(final)
    else:
        assert sw.stat().st_size == fw.stat().st_size  # the weights: shapes, encodings and bits, byte for byte
    skel, done = json.loads(sj.read_text()), json.loads(fj.read_text())
    if name.startswith("qat "):  # the weights are byte for byte; the manifest's history names qat's own ops
        assert [h.get("op") for h in done["history"]][:2] == ["qat_prepare", "qat_convert"]
        assert abs(artifact_bytes(final) - predicted) <= 0.02 * predicted
        return
    assert _shape_only(skel) == _shape_only(done)  # every tensor record, config, kept unit and hash
    # the rest is the run records' text (the fine-tune's log is only in the finished model)
    records = sum(len(json.dumps(h.get("record"), indent=1)) for h in done["history"] if "record" in h)
    slack = ENTROPY_SLACK * entropy_coded_bytes(final) if "lzma" in name else 0
    assert -slack < artifact_bytes(final) - predicted <= records + slack
    assert artifact_bytes(final) <= bound + records
    assert predicted < artifact_bytes(model_dir) or name == "sparsity"


def test_an_over_cap_trial_ends_before_training_and_the_sampler_gets_its_excess(tmp_path, monkeypatch):
    model, data = make_model(tmp_path)
    out = tmp_path / "search"
    stage_registry.stage_kinds()  # the built-in stages registered (when this test runs alone)
    calls = []
    kind_cfg, finetune = stage_registry._STAGES["finetune"]
    monkeypatch.setitem(stage_registry._STAGES, "finetune",
                        (kind_cfg, lambda m, cfg, ctx: calls.append(cfg.max_steps) or finetune(m, cfg, ctx)))
    over = {"width_l0": 16, "width_l1": 16, "sparsity_kind": "none", "finetune_steps": 4, "quant": "none"}
    inside = {"width_l0": 8, "width_l1": 8, "sparsity_kind": "none", "finetune_steps": 0, "quant": "quantize_weights",
              "bits_rnn": 4, "bits_io": 8}
    res = rnnslim.search(str(model), data=str(data), budget="bytes=2/3", trials=1, out=out, space=FAST_SPACE,
                         enqueue=[over, inside], **FAST)
    cap = res["caps"]["bytes"]
    rows = {r["number"]: r for r in res["trials"]}
    assert res["states"] == {"PRUNED": 1, "COMPLETE": 1}  # the pruned one does not count toward trials=1
    assert calls == []  # no fine-tune ran: the over-cap trial stopped before its first rung
    pruned, done = rows[0], rows[1]
    assert pruned["params"] == over and pruned["state"] == "PRUNED" and pruned["fidelity"] == "predicted"
    assert pruned["predicted_bytes"] > cap and pruned["bytes"] == pruned["predicted_bytes"] and pruned["run_dir"] is None
    assert not pruned["feasible"] and not (out / "trials" / pruned["recipe_hash"]).exists()
    assert done["state"] == "COMPLETE" and done["predicted_bytes"] <= cap and res["best"]["trial"] == 1
    excess = pruned["predicted_bytes"] / cap - 1
    trial = load_study(out).trials[0]
    assert trial.constraints == pytest.approx({"loss": 0.0, "bytes": excess, "latency_ms": 0.0})  # Optuna >= 5
    assert _constraints(trial) == pytest.approx([0.0, excess, 0.0])  # the constraints_func of older Optuna
    from optuna.samplers._tpe.sampler import _get_infeasible_trial_score

    assert _get_infeasible_trial_score(trial) == pytest.approx(excess)  # TPE ranks it among the infeasible


Q3 = {"kind": "quantize_weights", "bits": 3, "targets": ["rnn", "input_proj"], "group_size": 16}
ESTIMATED = {  # stages whose skeleton stands in (OBS as magnitude / 1 batch, GPTQ as RTN) or codes with lzma
    "obs+int3": [{"kind": "prune_obs", "sparsity": 0.8, "calibration_batches": 1}, FT, Q3],
    "strips+gptq-int2-lzma": [{"kind": "prune_obs", "sparsity": 0.75, "pattern": "strips", "strip_rows": 4,
                               "strip_panel": 8, "calibration_batches": 1}, FT,
                              {"kind": "quantize_gptq", "bits": 2, "targets": ["rnn", "input_proj"],
                               "calibration_batches": 1, "entropy_coding": True}],
    "lstmp+int4-lzma": [{"kind": "to_lstmp", "proj_size": [8, 8], "error_batches": 0}, FT,
                        {**Q3, "bits": 4, "entropy_coding": True}],
}


@pytest.mark.parametrize("name", list(ESTIMATED))
def test_estimated_bytes_bound_the_finished_weights(tmp_path, name):
    """Entropy-coded codes depend on values the fine-tune changes: the prediction adds
    ENTROPY_SLACK of the skeleton's lzma bytes, and bounds the finished weights file from above
    (the manifest still differs only by the stages' run records, as for exact predictions)."""
    from rnnslim.search.size import entropy_coded_bytes

    model_dir, data = make_model(tmp_path)
    model, task = load_model(model_dir), CharLMTask(data)
    recipe = Recipe.from_dict({"version": 1, "name": "size-test", "seed": 0,
                               "measure": {"latency": False, "eval_max_steps": 100}, "stages": ESTIMATED[name]})
    predicted = predict_bytes(model, task, recipe, keep=tmp_path / "skeleton")
    final = run_pipeline(model, recipe, task, tmp_path / "run", progress=False).out_dir / "model"
    (_, sw), (fj, fw) = resolve_model_path(tmp_path / "skeleton"), resolve_model_path(final)
    coded = entropy_coded_bytes(tmp_path / "skeleton")
    assert coded > 0  # pruned or asked for: the codes are lzma-coded
    assert predicted - artifact_bytes(tmp_path / "skeleton") == math.ceil(ENTROPY_SLACK * coded)
    assert fw.stat().st_size <= sw.stat().st_size + (predicted - artifact_bytes(tmp_path / "skeleton"))
    assert abs(fw.stat().st_size - sw.stat().st_size) < 0.1 * sw.stat().st_size
    done = json.loads(fj.read_text())
    records = sum(len(json.dumps(h.get("record"), indent=1)) for h in done["history"] if "record" in h)
    assert artifact_bytes(final) - predicted <= records


def test_pruned_low_bit_bytes_fall_with_sparsity(tmp_path):
    """Sparsity and low bits compound: the predicted bytes of OBS + int3 shrink as sparsity grows."""
    import torch

    from rnnslim.models.sequence import SequenceModel

    _, data = make_model(tmp_path)
    task = CharLMTask(data)
    torch.manual_seed(0)
    model = SequenceModel(task.model_spec(hidden_size=64, num_layers=2))  # big enough that codes outweigh records
    model.task_meta = task.meta()
    sizes = [predict_bytes(model, task, Recipe.from_dict({"version": 1, "name": "s", "seed": 0, "stages": (
        [{"kind": "prune_obs", "sparsity": s, "calibration_batches": 1}] if s else []) + [Q3]}))
        for s in (0.0, 0.7, 0.9)]
    assert sizes[0] > sizes[1] > sizes[2]
    assert sizes[2] < 0.8 * sizes[0]


def test_an_over_cap_obs_trial_is_pruned_without_running_obs_or_a_fine_tune(tmp_path, monkeypatch):
    """Size before cost for the new families: the prediction of a prune_obs trial stands in
    magnitude pruning, so an over-cap OBS trial costs neither a Hessian nor a fine-tune."""
    model, data = make_model(tmp_path)
    stage_registry.stage_kinds()  # the built-in stages registered
    calls = []
    for kind in ("finetune", "prune_obs"):
        cfg_cls, fn = stage_registry._STAGES[kind]
        monkeypatch.setitem(stage_registry._STAGES, kind,
                            (cfg_cls, lambda m, cfg, ctx, fn=fn, kind=kind: calls.append(kind) or fn(m, cfg, ctx)))
    space = FAST_SPACE.model_copy(update={"sparsity_kinds": ("none", "prune_obs"), "sparsity": (0.5, 0.9)})
    over = {"width_l0": 16, "width_l1": 16, "sparsity_kind": "prune_obs", "sparsity": 0.5, "finetune_steps": 4,
            "quant": "none"}  # fp32 at 50 % sparsity: about 0.8 of the input's bytes
    inside = {"width_l0": 8, "width_l1": 8, "sparsity_kind": "none", "finetune_steps": 0, "quant": "quantize_weights",
              "bits_rnn": 4, "bits_io": 8}
    res = rnnslim.search(str(model), data=str(data), budget="bytes=2/3", trials=1, out=tmp_path / "s", space=space,
                         enqueue=[over, inside], **FAST)
    rows = {r["number"]: r for r in res["trials"]}
    assert res["states"] == {"PRUNED": 1, "COMPLETE": 1} and calls == []
    assert rows[0]["fidelity"] == "predicted" and rows[0]["predicted_bytes"] > res["caps"]["bytes"]
