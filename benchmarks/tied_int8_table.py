"""A tied embedding / decoder as ONE int8 table in the fully integer model (H10, issue 20).

    nice -n 10 .venv/bin/python benchmarks/tied_int8_table.py

For a tied LM, the integer model now keeps one int8 table: the embedding's codes with its
per-tensor scale, read by the lookup and by the decoder (IntegerLinear.tied_to); before, the
decoder had its own per-row codes of the same float matrix, so the C export held the table
twice. "before" is that former layout, reproduced by quantizing an untied copy of the same
weights (its decoder codes and per-row scales are exactly what a tied model got before).
Per model: test loss of the float model and of both integer layouts (IntegerRunner, one
stream, batch 1, state carried; bit-identical to the C export), and the C export's flash
(manifest const_bytes) of both. Models:
    word_lm  the tied word LM of benchmarks/your_model_to_device.py (Embedding 2001 x 128 tied,
             LSTM 2x128; cached weights in benchmarks/runs/your_model_to_device/, test split)
    char_lm  a tied character LM (SequenceModel LSTM 2x128, embedding 128, 65 symbols) trained
             here for 600 steps on Tiny Shakespeare (weights cached in benchmarks/runs/tied_int8_table/);
             the first 20,000 characters of the test split
Writes benchmarks/results/tied_int8_table.json.
"""

from __future__ import annotations

import copy
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, RESULTS, RUNS, update_results  # noqa: E402

from rnnslim.export.c_source import export_c  # noqa: E402
from rnnslim.models.sequence import SequenceModel  # noqa: E402
from rnnslim.quantize.int8 import Int8Config, Int8Mode, IntegerRunner, quantize_int8_  # noqa: E402
from rnnslim.tasks.charlm import CharLMTask  # noqa: E402
from rnnslim.train.loop import TrainConfig, train  # noqa: E402

CACHE = RUNS / "tied_int8_table"
CHAR_TEST_TOKENS = 20_000


def untied_copy(model: SequenceModel) -> SequenceModel:
    """The same weights with the decoder holding its own copy of the matrix (the former integer layout)."""
    spec = model.spec.model_copy(update={"tie_weights": False})
    u = SequenceModel(spec).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["decoder.weight"] = model.embedding.weight.detach().clone()
    u.load_state_dict(state)
    return u


def integer(model: SequenceModel, calibration: list[torch.Tensor]) -> SequenceModel:
    q = copy.deepcopy(model).eval()
    return quantize_int8_(q, Int8Config(mode=Int8Mode.INTEGER), calibration=calibration)


def float_nll(model: SequenceModel, d: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        logits, _ = model(d[:-1, None])
    return F.cross_entropy(logits[:, 0], d[1:], reduction="none")


def int_nll(q: SequenceModel, d: torch.Tensor) -> torch.Tensor:
    logits, _ = IntegerRunner(q).run(d[:-1])
    return F.cross_entropy(logits, d[1:], reduction="none")


def compare(key: str, model: SequenceModel, calibration: list[torch.Tensor], d: torch.Tensor, work: Path,
            float_loss: torch.Tensor | None = None) -> dict:
    t0 = time.perf_counter()
    assert model.spec.tie_weights and model.decoder.weight is model.embedding.weight
    flt = float_nll(model, d) if float_loss is None else float_loss
    after, before = integer(model, calibration), integer(untied_copy(model), calibration)
    assert after.decoder.weight is after.embedding.weight and before.decoder.weight is not before.embedding.weight
    la, lb = int_nll(after, d), int_nll(before, d)
    fa, fb = export_c(after, work / f"{key}_after", name=key), export_c(before, work / f"{key}_before", name=key)
    f = float(flt.mean())
    V, E = model.embedding.weight.shape
    row = {"vocab": int(V), "embed": int(E), "tokens": int(d.numel() - 1), "float_loss": f,
           "before": {"integer_loss": float(lb.mean()), "change_rel_vs_float": float(lb.mean()) / f - 1,
                      "flash_bytes": fb.const_bytes,
                      "layout": "embedding per-tensor codes + decoder per-row codes (two tables)"},
           "after": {"integer_loss": float(la.mean()), "change_rel_vs_float": float(la.mean()) / f - 1,
                     "flash_bytes": fa.const_bytes,
                     "layout": "one table, per-tensor scale, decoder dequantizes per row"},
           "folded_embedding": [fb.folded_embedding, fa.folded_embedding]}
    row["loss_change_rel_after_vs_before"] = row["after"]["integer_loss"] / row["before"]["integer_loss"] - 1
    row["flash_saved_bytes"] = fb.const_bytes - fa.const_bytes
    row["flash_saved_rel"] = row["flash_saved_bytes"] / fb.const_bytes
    row["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"{key}: float {f:.4f}, integer before {row['before']['integer_loss']:.4f} / after "
          f"{row['after']['integer_loss']:.4f} ({100 * row['loss_change_rel_after_vs_before']:+.3f} %), flash "
          f"{fb.const_bytes:,} -> {fa.const_bytes:,} B (-{100 * row['flash_saved_rel']:.1f} %)", flush=True)
    return row


def word_lm_row(work: Path) -> dict:
    import your_model_to_device as ymd  # the benchmark's tied word LM, captured as it is there

    case = ymd.lm_case(True)
    seq = case.to_rnnslim().eval()
    d = ymd.word_corpus().test
    row = compare("word_lm", seq, case.calibration, d, work, float_loss=ymd.lm_user_nll(case.user_module, d))
    row["model"] = case.label
    row["data"] = case.data
    return row


def char_lm_row(work: Path) -> dict:
    task = CharLMTask(path=DATA)
    torch.manual_seed(0)
    model = SequenceModel(task.model_spec(cell="lstm", hidden_size=128, num_layers=2, tie_weights=True))
    weights = CACHE / "char_lm.safetensors"
    cfg = TrainConfig(max_steps=600, batch_size=32, seq_len=64, lr=3e-3)
    if weights.exists():
        load_model(model, str(weights), strict=False)
    else:
        train(model, task, cfg, progress=False)
        CACHE.mkdir(parents=True, exist_ok=True)
        save_model(model, str(weights))
    model.eval()
    g = torch.Generator().manual_seed(5)
    tr = task.split("train")
    starts = torch.randint(0, tr.numel() - 65, (8, 16), generator=g)
    calib = [tr[s[None, :] + torch.arange(64)[:, None]] for s in starts]
    d = task.split("test")[:CHAR_TEST_TOKENS + 1]
    row = compare("char_lm", model, calib, d, work)
    row["model"] = "char LM, SequenceModel LSTM 2x128, embedding 128 tied with the decoder"
    row["data"] = f"Tiny Shakespeare characters, vocabulary {len(task.vocab)}, test {CHAR_TEST_TOKENS:,} characters"
    row["training"] = cfg.model_dump(mode="json") | {"cached": str(weights.relative_to(RUNS.parent.parent))}
    return row


def main() -> None:
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tied_int8_table_") as tmp:
        rows = {"word_lm": word_lm_row(Path(tmp)), "char_lm": char_lm_row(Path(tmp))}
    out = RESULTS / "tied_int8_table.json"
    update_results(out, "result", {"rows": rows, "threads": 1, "seconds": round(time.perf_counter() - t0, 1)})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
