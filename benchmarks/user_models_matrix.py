"""Users' own nn.Modules x techniques: does each verb work, what does it cost, how big is the result.

    python benchmarks/user_models_matrix.py

Models are written the usual way (tests/user_models.py): word LMs with nn.LSTM / nn.GRU (untied,
tied embedding/decoder), a bidirectional tagger, a CNN + GRU classifier, each trained briefly on a
synthetic task so the outputs mean something. Each cell: the technique applied one-shot (no
fine-tuning; QAT trains 50 steps with the user's own loop; the half-width student trains 50
distillation steps with the user's own loop) to a fresh copy through rnnslim's
public verbs; the largest output change relative
to the largest output (max |y - y_ref| / max |y_ref|) and the task loss, both on a held-out
batch; the bytes `save_edited` writes. Or the error the verb raised, word for word: a
ValueError is a clear refusal, anything else is counted as a bug.
Writes benchmarks/results/user_models_matrix.json.
"""

from __future__ import annotations

import copy
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from common import RESULTS, update_results  # noqa: E402
from user_models import USER_MODELS, fit, train_briefly  # noqa: E402

from rnnslim.lowrank import LowRankLinears, lowrank_linears_  # noqa: E402
from rnnslim.prune import (  # noqa: E402
    BlockPruning,
    NMPruning,
    StructuredPruning,
    UnstructuredPruning,
    mark_sparse_,
    prune_block_,
    prune_nm_,
    prune_units_,
    prune_unstructured_,
    save_edited,
)
from rnnslim.quantize.api import QAT, WeightOnly, quantize_  # noqa: E402
from rnnslim.quantize.int8 import Int8Config, quantize_int8_  # noqa: E402
from rnnslim.quantize.qat import convert_qat_  # noqa: E402
from rnnslim.students import StudentSpec, make_student  # noqa: E402
from rnnslim.train.distill import kd_loss  # noqa: E402


def _sparse(fn):
    def run(m, x, calib, spec):
        res = fn(m, x, calib, spec)
        mark_sparse_(m, list(res.masks))
    return run


def _qat(m, x, calib, spec, steps: int = 50) -> None:
    """Prepare, train `steps` steps with the user's own loop (their loss, Adam), convert."""
    quantize_(m, QAT(weights=WeightOnly(bits=4, group_size=64)))
    fit(m, spec, steps, lr=1e-3, seed=3)
    convert_qat_(m.eval())


def _logits(y):
    return y[0] if isinstance(y, tuple) else y


def _student(m, x, calib, spec, steps: int = 50, alpha: float = 0.5):
    """A half-width copy of the user's class (teacher-initialised), then `steps` steps of the
    user's own loop on alpha * KD(T=2) + (1 - alpha) * their loss, Adam; returns the student."""
    import warnings

    with warnings.catch_warnings():  # WordLM.nhid names the old width; its forward does not read it
        warnings.simplefilter("ignore")
        s = make_student(m, StudentSpec(hidden_size=m.rnn.hidden_size // 2), example_inputs=(x,))
    g = torch.Generator().manual_seed(3)
    opt = torch.optim.Adam(s.parameters(), lr=1e-2)
    m.eval()
    s.train()
    for _ in range(steps):
        xb, tb = spec.batch(g)
        with torch.no_grad():
            teacher = _logits(m(xb))
        y = _logits(s(xb))
        loss = alpha * kd_loss(y, teacher, 2.0) + (1 - alpha) * spec.loss(y, tb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return s.eval()


# each: (model, example inputs, calibration batches from the training distribution) -> None, or the new
# model when the technique makes one (a student)
TECHNIQUES = {
    "prune_units 50%": lambda m, x, c, s: prune_units_(m, StructuredPruning(ratio=0.5, reduce="l1"),
                                                                  example_inputs=(x,)),
    "unstructured 80% (sparse storage)": _sparse(lambda m, x, c, s: prune_unstructured_(m, UnstructuredPruning(
        sparsity=0.8))),
    "N:M 2:4 (sparse storage)": _sparse(lambda m, x, c, s: prune_nm_(m, NMPruning(n=2, m=4))),
    "block 4x4 50% (sparse storage)": _sparse(lambda m, x, c, s: prune_block_(m, BlockPruning(sparsity=0.5))),
    "weight-only int8 (per row)": lambda m, x, c, s: quantize_(m, WeightOnly(bits=8, group_size=None)),
    "weight-only int4 g64": lambda m, x, c, s: quantize_(m, WeightOnly(bits=4, group_size=64)),
    "QAT int4 g64 (50 steps, user's loop)": _qat,
    "int8 dynamic": lambda m, x, c, s: quantize_int8_(m, Int8Config(mode="dynamic")),
    "int8 static": lambda m, x, c, s: quantize_int8_(m, Int8Config(mode="static"), calibration=c),
    "int8 fully integer": lambda m, x, c, s: quantize_int8_(m, Int8Config(mode="integer"), calibration=c),
    "low-rank Linears (rank 8)": lambda m, x, c, s: lowrank_linears_(m, LowRankLinears(rank=8)),
    "student, half width (50 KD steps, user's loop)": _student,
}


def _out(m, x) -> torch.Tensor:
    with torch.no_grad():
        y = m.eval()(x)
    return (y[0] if isinstance(y, tuple) else y).float()


def _bytes(m) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        save_edited(m, Path(tmp) / "m")
        return (Path(tmp) / "m" / "weights.safetensors").stat().st_size


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    rows = []
    for name, spec in USER_MODELS.items():
        base = train_briefly(spec)
        x, target = spec.batch(torch.Generator().manual_seed(1))  # held out: the training stream used seed 0
        g = torch.Generator().manual_seed(2)
        calib = [spec.inputs(g) for _ in range(4)]
        ref = _out(base, x)
        dense = _bytes(base)
        base_loss = float(spec.loss(ref, target))
        row = {"model": name, "dense_bytes": dense, "task_loss": base_loss, "cells": {}}
        for tech, apply in TECHNIQUES.items():
            m = copy.deepcopy(base)
            try:
                made = apply(m, x, calib, spec)
                m = made if isinstance(made, torch.nn.Module) else m
                y = _out(m, x)
                size = _bytes(m)
                cell = {"ok": True, "rel_max_diff": float((y - ref).abs().max() / ref.abs().max()),
                        "task_loss": float(spec.loss(y, target)), "bytes": size, "bytes_vs_dense": size / dense}
                if getattr(made, "notes", None) and not getattr(made, "sites", True):  # nothing was changed
                    cell["note"] = "; ".join(made.notes)[:200]
            except Exception as e:  # the verb's own words: ValueError is a refusal, anything else a bug
                cell = {"ok": False, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}",
                        "kind": "refused" if isinstance(e, ValueError) else "unexpected exception (bug)"}
            row["cells"][tech] = cell
            print(f"{name:28s} {tech:34s} " + (f"diff {cell['rel_max_diff']:.4f} loss {cell['task_loss']:.3f} "
                                                 f"(base {base_loss:.3f})  {cell['bytes']:,} B"
                                                 if cell["ok"] else cell["error"][:110]), flush=True)
        rows.append(row)
    update_results(RESULTS / "user_models_matrix.json", "result", {"rows": rows, "techniques": list(TECHNIQUES)})


if __name__ == "__main__":
    main()
