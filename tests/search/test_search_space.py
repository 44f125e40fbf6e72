"""The search space makes valid recipes; the budget and the promotion rule say what they should."""

from __future__ import annotations

import optuna
import pytest

from rnnslim.pipeline.recipe import Recipe
from rnnslim.search.budget import Budget, BudgetError, constraint_values, feasible
from rnnslim.search.fidelity import promote, rung_plan
from rnnslim.search.space import (
    DIMENSIONS,
    Dimension,
    ModelFacts,
    FinetuneSpace,
    SearchSpace,
    active_dimensions,
    build_stages,
    register_dimension,
    stages_from_params,
)


def test_every_sampled_recipe_validates_and_respects_the_bounds():
    space = SearchSpace(round_to=16)
    facts = ModelFacts((512, 256))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    kinds = set()
    for _ in range(60):
        trial = study.ask()
        stages = build_stages(space, trial, facts)
        if not stages:
            continue
        recipe = Recipe.from_dict({"version": 1, "name": "t", "stages": stages})  # pydantic-validated
        kinds.update(s.kind for s in recipe.stages)
        order = [s["kind"] for s in stages]
        if "finetune" in order:  # fine-tune after every cut, before quantization
            assert all(order.index(k) < order.index("finetune") for k in ("prune_units", "prune") if k in order)
            assert all(order.index(k) > order.index("finetune") for k in ("quantize_weights", "int8_integer",
                                                                              "mixed_precision") if k in order)
        if any(k == "lowrank" for k in order):  # pairs that do not compose are never sampled
            assert "int8_integer" not in order
        for i, hidden in enumerate(facts.widths):
            width = trial.params.get(f"width_l{i}")
            if width is not None:
                assert width % 16 == 0 and hidden * space.min_keep <= width <= hidden
        study.tell(trial, 0.0)
    assert {"prune_units", "finetune", "prune", "prune_nm", "quantize_weights", "int8_integer"} <= kinds


def test_a_dimension_whose_stage_kind_is_missing_is_skipped():
    register_dimension(Dimension("test_space_ghost", ("no_such_stage_kind",), 99, lambda t, s, f: [{"kind": "x"}]))
    try:
        active, skipped = active_dimensions(SearchSpace())
        assert "test_space_ghost" in skipped and "test_space_ghost" not in [d.name for d in active]
        with pytest.raises(ValueError, match="unknown search dimension"):
            active_dimensions(SearchSpace(dimensions=["widths", "nope"]))
    finally:
        DIMENSIONS.pop("test_space_ghost")


def test_budget_parsing_and_caps():
    b = Budget.parse("bytes=1/20, loss=+2%, latency_ms=0.5")
    caps = b.resolve({"bytes": 2000, "loss": 1.5, "latency_ms": 1.0})
    assert caps == pytest.approx({"bytes": 100, "loss": 1.53, "latency_ms": 0.5})
    assert Budget.parse("bytes=650kB").resolve({})["bytes"] == 650_000
    assert Budget.parse("bytes=1KiB").resolve({})["bytes"] == 1024
    assert b.preferred == "loss" and Budget.parse("loss=+1%").preferred == "bytes"
    for bad in ("bytes", "size=3", "bytes=-1", "loss=abc", "bytes=3parsecs", "bytes=1/0", "bytes=1,bytes=2"):
        with pytest.raises(BudgetError):
            Budget.parse(bad)
    c = constraint_values({"loss": 1.0, "bytes": 150, "latency_ms": None}, {"bytes": 100, "latency_ms": 1.0})
    assert c[0] == 0 and c[1] == pytest.approx(0.5) and c[2] == 1.0 and not feasible(c)


def test_rungs_and_the_promotion_rule():
    stages = [{"kind": "prune_units", "ratio": 0.5}, {"kind": "finetune", "max_steps": 100}, {"kind": "cast"}]
    plan = rung_plan(stages, proxy_steps=10)
    assert [r for r, _ in plan] == ["oneshot", "proxy", "full"]
    assert plan[0][1] == [stages[0], stages[2]] and plan[1][1][1]["max_steps"] == 10
    assert [r for r, _ in rung_plan(stages[:1], 10)] == ["full"]
    me = {"loss": 2.0, "bytes": 100, "latency_ms": 1.0}
    assert promote(me, [], {})[0]  # nobody to compare with: on the front
    assert not promote(me, [], {"bytes": 50})[0]  # over the bytes cap: fine-tuning cannot help
    better = [{"loss": 1.0 + i / 10, "bytes": 90, "latency_ms": 0.9} for i in range(6)]
    go, why = promote(me, better, {})
    assert not go and "dominated" in why
    assert promote({**me, "bytes": 10}, better, {})[0]  # smaller than all: on the front



def test_fold_and_mse_clip_join_every_recipe_between_fine_tune_and_quantization():
    space = SearchSpace(dimensions=["widths", "finetune", "fold", "quantize"], fold_input=True, clip="mse",
                        quant_kinds=("quantize_weights",), finetune=FinetuneSpace(max_steps=10, choices=1))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({"finetune_steps": 10})  # a fine-tune (the random sampler may pick 0 steps)
    trial = study.ask()
    stages = build_stages(space, trial, ModelFacts((64, 64), vocab=30, embed_size=64))
    kinds = [s["kind"] for s in stages]
    assert kinds[-4:] == ["finetune", "lowrank", "quantize_weights", "quantize_weights"]
    assert stages[-3] == {"kind": "lowrank", "targets": ["input"], "layers": [0], "rank": 30}  # rank V: exact
    assert all(s["clip"] == "mse" for s in stages[-2:])
    Recipe.from_dict({"version": 1, "name": "t", "stages": stages})  # every stage validates
    # no fold where it would not save anything (V >= E) or there is no embedding
    for facts in (ModelFacts((64, 64), vocab=80, embed_size=64), ModelFacts((64, 64))):
        assert "lowrank" not in [s["kind"] for s in build_stages(space, study.ask(), facts)]
    # the default clip leaves the stage mapping as before (recipe hashes of older studies hold)
    plain = build_stages(SearchSpace(quant_kinds=("quantize_weights",), dimensions=["quantize"]), study.ask(),
                         ModelFacts((64,)))
    assert all("clip" not in s for s in plain)


def test_study_key_of_a_space_without_the_later_fields_is_unchanged():
    """A study started before `clip` / `fold_input` existed keeps its key at their defaults."""
    from rnnslim.search.config import SearchConfig

    key = SearchConfig(model="m", out="o").study_key()["space"]
    assert "clip" not in key and "fold_input" not in key
    key = SearchConfig(model="m", out="o", space=SearchSpace(clip="mse", fold_input=True)).study_key()["space"]
    assert key["clip"] == "mse" and key["fold_input"] is True


def test_gptq_is_offered_when_named_and_builds_valid_stages():
    assert "quantize_gptq" not in SearchSpace().quant_kinds  # not a default choice: slower per trial
    space = SearchSpace(dimensions=["quantize"], quant_kinds=("quantize_gptq",), bits=(3,), io_bits=(8,),
                        calibration_batches=4)
    stages = build_stages(space, optuna.create_study().ask(), ModelFacts((64,)))
    assert [s["kind"] for s in stages] == ["quantize_gptq", "quantize_gptq"]
    assert stages[0]["bits"] == 3 and stages[1]["targets"] == ["embedding", "decoder"]
    assert all(s["calibration_batches"] == 4 for s in stages)
    Recipe.from_dict({"version": 1, "name": "t", "stages": stages})
    with pytest.raises(ValueError, match="quant_kinds must be"):
        SearchSpace(quant_kinds=("gptq_please",))


def test_obs_strips_lstmp_gptq2_and_entropy_coding_sample_valid_recipes():
    """The families that reach 1/20 and 1/40 (issue 23): OBS sparsity (unstructured or strips)
    with entropy-coded low bits, GPTQ int2, LSTMP; every sampled recipe validates."""
    space = SearchSpace(dimensions=["widths", "lstmp", "sparsity", "finetune", "quantize"], round_to=16,
                        sparsity_kinds=("none", "prune_obs", "prune_obs_strips"), sparsity=(0.5, 0.9),
                        lstmp_ratios=(1.0, 0.5, 0.25), entropy_coding=(False, True),
                        quant_kinds=("quantize_weights", "quantize_gptq"), bits=(2, 3, 4), io_bits=(8,),
                        finetune=FinetuneSpace(max_steps=10, choices=2))
    facts = ModelFacts((64, 32), vocab=30, embed_size=16, cell="lstm")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen: dict[str, set] = {"kinds": set(), "patterns": set(), "coded": set(), "bits": set()}
    for _ in range(80):
        trial = study.ask()
        stages = build_stages(space, trial, facts)
        Recipe.from_dict({"version": 1, "name": "t", "stages": stages})  # pydantic-validated
        by_kind = {s["kind"]: s for s in stages}
        seen["kinds"].update(by_kind)
        if "prune_obs" in by_kind:
            obs = by_kind["prune_obs"]
            assert 0.5 <= obs["sparsity"] <= 0.9 and obs["sparsity"] == pytest.approx(trial.params["sparsity"])
            seen["patterns"].add(obs.get("pattern", "unstructured"))
        if "to_lstmp" in by_kind:  # a fraction of each layer's kept width
            r = trial.params["lstmp_ratio"]
            kept = [trial.params.get(f"width_l{i}", h) for i, h in enumerate(facts.widths)]
            assert by_kind["to_lstmp"]["proj_size"] == [round(w * r) for w in kept] and r < 1
        q = [s for s in stages if s["kind"] in ("quantize_weights", "quantize_gptq")]
        if q:
            seen["coded"].add(trial.params["entropy_coding"])
            assert all(s.get("entropy_coding", False) == trial.params["entropy_coding"] for s in q)
            seen["bits"].add((q[0]["kind"], q[0]["bits"]))
        study.tell(trial, 0.0)
    assert {"prune_obs", "to_lstmp", "quantize_weights", "quantize_gptq", "finetune"} <= seen["kinds"]
    assert seen["patterns"] == {"unstructured", "strips"} and seen["coded"] == {False, True}
    assert ("quantize_gptq", 2) in seen["bits"]
    # LSTMP only for LSTM models; not offered at the defaults
    gru = ModelFacts((64, 32), cell="gru")
    assert all(s["kind"] != "to_lstmp" for _ in range(10) for s in build_stages(space, study.ask(), gru))
    plain = optuna.create_study().ask()
    build_stages(SearchSpace(dimensions=["lstmp", "quantize"], quant_kinds=("quantize_weights",)), plain, facts)
    assert "lstmp_ratio" not in plain.params and "entropy_coding" not in plain.params


def test_new_space_fields_keep_old_study_keys_and_reject_bad_values():
    from rnnslim.search.config import SearchConfig

    key = SearchConfig(model="m", out="o").study_key()["space"]
    assert not {"strip_rows", "lstmp_ratios", "entropy_coding"} & set(key)
    with pytest.raises(ValueError, match="sparsity_kinds must be"):
        SearchSpace(sparsity_kinds=("prune_obs_diagonal",))
    with pytest.raises(ValueError, match="lstmp_ratios"):
        SearchSpace(lstmp_ratios=(0.0,))
    with pytest.raises(ValueError, match="entropy_coding"):
        SearchSpace(entropy_coding=())


def test_qat_runs_the_fine_tune_steps_at_the_rnns_bits_in_place_of_the_fine_tune():
    """qat offered: a trial's fine-tune steps become a `qat` stage (rnn + input projection at bits_rnn,
    the sampled entropy coding) last, after the PTQ stages of the rnn and of the embedding + decoder;
    no finetune stage. Without weight quantization they stay a plain fine-tune."""
    space = SearchSpace(dimensions=["widths", "sparsity", "finetune", "quantize"], round_to=16, qat=(False, True),
                        sparsity_kinds=("none", "prune"),
                        quant_kinds=("none", "quantize_weights", "quantize_gptq"), bits=(2, 3), io_bits=(8,),
                        clip="mse", entropy_coding=(False, True),
                        finetune=FinetuneSpace(max_steps=40, choices=2, settings={"lr": 0.002, "batch_size": 8}))
    facts = ModelFacts((64, 32))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=5))
    seen = set()
    for _ in range(80):
        trial = study.ask()
        stages = build_stages(space, trial, facts)
        if stages:  # (every dimension off: the input model itself)
            Recipe.from_dict({"version": 1, "name": "t", "stages": stages})  # pydantic-validated
        kinds = [s["kind"] for s in stages]
        steps, qat, quant = trial.params["finetune_steps"], trial.params.get("qat", False), trial.params["quant"]
        if trial.params["sparsity_kind"] != "none":  # qat_sparse off (default): a sparse trial fine-tunes first
            assert "qat" not in trial.params and "qat" not in kinds and kinds.count("finetune") == (1 if steps else 0)
        elif steps and qat and quant != "none":
            seen.add("qat")
            q = stages[kinds.index("qat")]
            assert "finetune" not in kinds and kinds[-3:] == [quant, quant, "qat"]
            ptq = stages[-3]  # QAT continues on this stage's grid (rnnslim.quantize.qat)
            assert (ptq["bits"], ptq["targets"]) == (trial.params["bits_rnn"], ["rnn", "input_proj"])
            assert (q["steps"], q["bits"], q["targets"], q["lr"], q["batch_size"]) == (
                steps, trial.params["bits_rnn"], ["rnn", "input_proj"], 0.002, 8)
            assert "clip" not in q  # the grid is the PTQ stage's: QAT chooses no scales
            assert q.get("entropy_coding", False) == trial.params["entropy_coding"]
            assert stages[-2]["targets"] == ["embedding", "decoder"]
        elif steps:
            seen.add("finetune")
            assert "qat" not in kinds and kinds.count("finetune") == 1
        else:
            assert "qat" not in trial.params and not {"qat", "finetune"} & set(kinds)
        study.tell(trial, 0.0)
    assert seen == {"qat", "finetune"}


def test_a_qat_trials_oneshot_rung_is_the_same_format_without_training():
    qat = {"kind": "qat", "steps": 90, "bits": 3, "targets": ["rnn", "input_proj"], "clip": "mse",
           "entropy_coding": True, "lr": 0.001}
    io = {"kind": "quantize_weights", "bits": 8, "targets": ["embedding", "decoder"]}
    plan = rung_plan([{"kind": "prune_units", "ratio": 0.5}, qat, io], proxy_steps=10, proxy_rungs=2, growth=3)
    assert [r for r, _ in plan] == ["oneshot", "proxy", "proxy2", "full"]
    oneshot = plan[0][1][1]
    assert oneshot == {"kind": "quantize_weights", "bits": 3, "targets": ["rnn", "input_proj"], "clip": "mse",
                       "entropy_coding": True}
    assert [s[1]["steps"] for _, s in plan[1:]] == [10, 30, 90] and all(s[2] == io for _, s in plan)


def test_qat_after_ptq_has_the_recipe_without_it_as_its_oneshot_rung():
    """The search's qat mode: PTQ (rnn, then embedding + decoder) -> qat on the rnn's grid; step 0 of
    QAT is the PTQ model, so the zero-step rung is the recipe with the qat stage dropped."""
    ptq = {"kind": "quantize_gptq", "bits": 2, "targets": ["rnn", "input_proj"], "entropy_coding": True}
    qat = {"kind": "qat", "steps": 90, "bits": 2, "targets": ["rnn", "input_proj"], "entropy_coding": True}
    io = {"kind": "quantize_gptq", "bits": 4, "targets": ["embedding", "decoder"]}
    plan = rung_plan([ptq, io, qat], proxy_steps=10, proxy_rungs=1, growth=3)
    assert [r for r, _ in plan] == ["oneshot", "proxy", "full"]
    assert plan[0][1] == [ptq, io] and plan[1][1] == [ptq, io, {**qat, "steps": 10}]


def test_qat_sparse_lets_a_sparse_trial_run_its_steps_as_qat_after_quantizing():
    """qat_sparse: a trial with a sparsity stage runs its fine-tune steps as the last `qat` stage (the
    stage holds the pruning masks), no finetune stage; without it (the default) it fine-tunes first."""
    space = SearchSpace(dimensions=["sparsity", "finetune", "quantize"], qat=(True,), qat_sparse=True,
                        sparsity_kinds=("prune_obs",), quant_kinds=("quantize_gptq",), bits=(4,), io_bits=(8,),
                        finetune=FinetuneSpace(max_steps=40, choices=1, settings={"lr": 0.002}))
    facts = ModelFacts((64, 32))
    params = {"sparsity_kind": "prune_obs", "sparsity": 0.5, "finetune_steps": 40, "bits_rnn": 4, "bits_io": 8}
    stages = build_stages(space, optuna.trial.FixedTrial(params), facts)
    assert [s["kind"] for s in stages] == ["prune_obs", "quantize_gptq", "quantize_gptq", "qat"]
    assert stages[-1]["steps"] == 40 and stages[-1]["bits"] == 4
    off = space.model_copy(update={"qat_sparse": False})
    kinds = [s["kind"] for s in build_stages(off, optuna.trial.FixedTrial(params), facts)]
    assert kinds == ["prune_obs", "finetune", "quantize_gptq", "quantize_gptq"]


def test_unit_reduce_reaches_prune_units_and_l1_keeps_the_old_study_key():
    """A study from before `unit_reduce` cut units with prune_units' default of then (l1): its space
    says unit_reduce="l1" and keeps its key; new spaces cut by the group norm (l2)."""
    from rnnslim.search.config import SearchConfig

    def cut(space):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(20):  # until a trial keeps fewer units than the model has
            stages = build_stages(space, study.ask(), ModelFacts((64, 64)))
            if stages and stages[0]["kind"] == "prune_units":
                return stages[0]
        raise AssertionError("no trial cut a layer")

    assert cut(SearchSpace(dimensions=["widths"]))["reduce"] == "l2"
    assert cut(SearchSpace(dimensions=["widths"], unit_reduce="l1"))["reduce"] == "l1"
    old = SearchConfig(model="m", out="o", space=SearchSpace(unit_reduce="l1")).study_key()["space"]
    assert "unit_reduce" not in old
    assert SearchConfig(model="m", out="o").study_key()["space"]["unit_reduce"] == "l2"


def test_a_trials_recorded_params_replay_its_stages_and_a_missing_one_is_named():
    # the committed results table keeps each trial's params; its recipe must be rebuilt from them alone
    space = SearchSpace(round_to=16, dimensions=["widths", "lstmp", "sparsity", "finetune", "fold", "quantize"],
                        lstmp_ratios=(1.0, 0.5), sparsity_kinds=("none", "prune_obs"), quant_kinds=("quantize_gptq",),
                        bits=(2, 4), entropy_coding=(False, True), fold_input=True, qat=(True,))
    facts = ModelFacts((512, 256))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(25):
        trial = study.ask()
        stages = build_stages(space, trial, facts)
        assert stages_from_params(space, dict(trial.params), facts) == stages
        study.tell(trial, 0.0)
    params = dict(study.trials[0].params)
    dropped = sorted(params)[0]
    del params[dropped]
    with pytest.raises(ValueError, match=dropped):
        stages_from_params(space, params, facts)
