"""Hashes that decide reuse, and JSON-safe records."""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path

import numpy as np
import torch

from rnnslim.models.sequence import SequenceModel
from rnnslim.pipeline.fingerprint import input_hash, jsonable, model_hash, stage_hash
from rnnslim.tasks.charlm import CharLMTask


def test_model_hash_sees_every_weight_and_dtype():
    task = CharLMTask(text="hello world\n" * 20)
    m = SequenceModel(task.model_spec(hidden_size=8, num_layers=1))
    h = model_hash(m)
    assert model_hash(m) == h
    with torch.no_grad():
        m.rnn.layers[0].weight_hh_l0[3, 2] += 1e-6
    h2 = model_hash(m)
    assert h2 != h
    assert model_hash(m.to(torch.bfloat16)) not in (h, h2)  # bf16 hashes too (no numpy bf16)


def test_input_hash_depends_on_task_data_and_seed():
    t1, t2 = CharLMTask(text="hello world\n" * 20), CharLMTask(text="hello world\n" * 21)
    m = SequenceModel(t1.model_spec(hidden_size=8, num_layers=1))
    assert input_hash(m, t1, 0) == input_hash(m, t1, 0)
    assert len({input_hash(m, t1, 0), input_hash(m, t1, 1), input_hash(m, t2, 0)}) == 3


def test_input_hash_ignores_how_the_data_path_is_spelled(tmp_path, monkeypatch):
    (tmp_path / "d.txt").write_text("hello world\n" * 20)
    monkeypatch.chdir(tmp_path)
    t1, t2 = CharLMTask("d.txt"), CharLMTask(tmp_path / "d.txt")
    m = SequenceModel(t1.model_spec(hidden_size=8, num_layers=1))
    assert t1.source != t2.source and input_hash(m, t1, 0) == input_hash(m, t2, 0)


def test_stage_hash_chains():
    a = stage_hash({"kind": "cast", "dtype": "fp16"}, "x")
    assert a != stage_hash({"kind": "cast", "dtype": "bf16"}, "x") and a != stage_hash({"kind": "cast", "dtype": "fp16"}, "y")


def test_jsonable():
    class E(Enum):
        A = "a"

    got = jsonable({"t": torch.tensor([1, 2]), "s": torch.tensor(0.5), "n": np.float32(2.0), "nan": math.nan,
                    "e": E.A, "p": Path("/x"), 3: (1, 2)})
    assert got == {"t": [1, 2], "s": 0.5, "n": 2.0, "nan": None, "e": "a", "p": "/x", "3": [1, 2]}


def test_a_changed_default_is_hashed_against_the_old_one():
    """prune_units' defaults went from reduce l1 / refit true to l2 / auto: a stage finished under the old
    ones (hashed without those fields) is reused by a config that asks for them, never by one that now
    gets the new defaults."""
    from rnnslim.pipeline.fingerprint import config_hash
    from rnnslim.pipeline.stages.structured import PruneUnitsStage

    old = stage_hash({"kind": "prune_units", "ratio": 0.25}, "in")  # how an l1, re-fitted stage was hashed
    assert config_hash(PruneUnitsStage(ratio=0.25, reduce="l1", refit=True), "in") == old
    assert config_hash(PruneUnitsStage(ratio=0.25, refit=True), "in") != old
    assert config_hash(PruneUnitsStage(ratio=0.25, reduce="l1", refit=False), "in") != old
    assert (config_hash(PruneUnitsStage(ratio=0.25, refit=True), "in")
            == config_hash(PruneUnitsStage(ratio=0.25, reduce="l2", refit=True), "in"))
