"""Shared pieces of the search tests: a tiny char model on a small text file, a fast space."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from rnnslim.io.format import save_model
from rnnslim.models.sequence import SequenceModel
from rnnslim.search.space import FinetuneSpace, SearchSpace
from rnnslim.tasks.charlm import CharLMTask

TEXT = ("To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer "
        "the slings and arrows of outrageous fortune, or to take arms against a sea of troubles. ") * 40

# trials of about a second: 2-layer width-16 LSTM, a few fine-tune steps, short evaluations
FAST_SPACE = SearchSpace(
    dimensions=["widths", "sparsity", "finetune", "quantize"], min_keep=0.5, round_to=4, refit_batches=1, calibration_batches=1,
    sparsity_kinds=("none", "prune"), quant_kinds=("none", "quantize_weights"), bits=(4, 8), io_bits=(8,),
    finetune=FinetuneSpace(max_steps=4, choices=2, proxy_steps=2,
                           settings={"lr": 0.003, "batch_size": 4, "seq_len": 16, "eval_max_steps": 100}))
FAST = {"eval_tokens": 200, "latency_steps": 10, "latency_repeats": 1, "threads": 1, "seed": 0}


def make_model(tmp: Path) -> tuple[Path, Path]:
    """(model dir, data file): an untrained 2 x 16 LSTM whose vocabulary is the text's."""
    data = tmp / "text.txt"
    data.write_text(TEXT)
    task = CharLMTask(data)
    torch.manual_seed(0)
    model = SequenceModel(task.model_spec(hidden_size=16, num_layers=2))
    model.task_meta = task.meta()
    return save_model(model, tmp / "model"), data


def space_file(tmp: Path) -> Path:
    p = tmp / "space.yaml"
    p.write_text(yaml.safe_dump(FAST_SPACE.model_dump(mode="json")))
    return p


def cli_search(model: Path, data: Path, out: Path, trials: int, *extra: str) -> subprocess.Popen:
    """`rnnslim search` in its own process (stdout: one JSON object)."""
    cmd = [sys.executable, "-m", "rnnslim.cli", "search", str(model), "--data", str(data), "--out", str(out),
           "--trials", str(trials), "--space", str(space_file(out.parent)), "--eval-tokens", "200", "--json", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def load_study(out: Path, name: str = "rnnslim-search"):
    import optuna

    from rnnslim.search.storage import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(None, out))
