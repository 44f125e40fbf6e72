"""Peer: torchao (`quantize_`) on rnnslim's reference char models (issue 21).

    /work/peers-torchao/bin/python benchmarks/peers/torchao_bench.py --model charlstm-256x2 [--chars 20000]
        [--main-python .venv/bin/python] [--no-latency] [--latency-rounds 3]

Setup (its own venv; no rnnslim; torch pinned to the CPU wheel 2.13.0):
    python3.11 -m venv /work/peers-torchao
    /work/peers-torchao/bin/pip install torch==2.13.0 numpy safetensors -c /work/notes/torch-constraint.txt
    /work/peers-torchao/bin/pip install torchao==0.18.0 -c /work/notes/torch-constraint.txt
(exact versions: benchmarks/peers/requirements-torchao.txt; torchao 0.18.0 accepts torch 2.13.0 and pulls
nothing else).

What a PyTorch user does: build CharRNN (Embedding -> nn.LSTM / nn.GRU -> Linear, torch_char_model.py),
call torchao.quantization.quantize_(model, Config()) and run it eagerly on the CPU. torchao's configs
select nn.Linear by default (filter_fn=_is_linear); this script records which tensors each config
actually converted, so a model whose recurrent layer stayed float is the row `skips_recurrent` (its loss,
bytes and latency are what the user gets: the decoder-only effect). Rows:
    fp32           the model before torchao (reference for bytes and latency)
    int8 dyn       Int8DynamicActivationInt8WeightConfig() (int8 per-row weights, int8 dynamic activations)
    int4 wo        Int4WeightOnlyConfig(group_size=...) with every int4_packing_format 0.18 has; on a CPU
                   each one refuses (plain / preshuffled need the mslk GPU kernels, plain_int32 has no CPU
                   path, tile_packed_to_4d wants bfloat16, and given a bfloat16 model, CUDA): the row keeps
                   every message
    intx int4      IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(32)) on Linear and
                   Embedding: torchao's CPU / edge int4 weight-only path (what 0.18 offers on a CPU)
    8da4w          Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, PerGroup(32)): int8
                   dynamic activations + int4 weights, the ExecuTorch / CPU LLM recipe
    on the RNN     quantize_(..., filter_fn=selects the nn.LSTM / nn.GRU): what torchao says when asked to
                   quantize the recurrent layer itself (it has no recurrent support in 0.18)
Bytes: torch.save(model.state_dict()) (torchao's documented way to save a quantized model; tensor
subclasses pickled), real bytes on disk. Loss: mean NLL over the first --chars test characters, one stream
at batch 1, state carried. Latency: a streaming step at batch 1, 1 thread, eager, interleaved with
rnnslim's int8 C kernel (peer_common.interleaved_latency). Writes benchmarks/results/peers_torchao.json.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from peer_common import (MAIN_PYTHON, RESULTS, command_line, git_commit,  # noqa: E402
                         interleaved_latency, load_reference, load_text_ids, machine, nll, now, one_line,
                         rnnslim_reference, split, test_text, versions, write_result)
from torch_char_model import CharRNN, module_stepper, step_latency, stream_logits  # noqa: E402

PACKAGES = ("torch", "torchao", "numpy", "safetensors")
OUT = RESULTS / "peers_torchao.json"
INT4_GROUP = 32  # torchao's smallest documented group size (finest int4 grid), used by every int4 row


def tensor_kinds(model: nn.Module) -> dict[str, str]:
    """Parameter name -> tensor class ('Parameter' = still float; torchao's subclasses name their format)."""
    return {n: type(p).__name__ if type(p) is not nn.Parameter else "float" for n, p in model.named_parameters()}


def saved_bytes(model: nn.Module) -> int:
    """Bytes of torch.save(model.state_dict()) on disk (the file a torchao user ships)."""
    with tempfile.TemporaryDirectory(prefix="peers_torchao_") as d:
        path = Path(d) / "model.pt"
        torch.save(model.state_dict(), path)
        return path.stat().st_size


def variants(cell: str) -> list[dict]:
    """Every torchao configuration tried: name, api text, mode, bits, and a function quantizing a model."""
    import torchao.quantization as q
    from torchao.quantization.granularity import PerGroup
    from torchao.quantization.quantize_.workflows.int4.int4_packing_format import Int4PackingFormat

    def linear_or_embedding(mod: nn.Module, fqn: str) -> bool:
        return isinstance(mod, (nn.Linear, nn.Embedding))

    def recurrent(mod: nn.Module, fqn: str) -> bool:
        return isinstance(mod, (nn.LSTM, nn.GRU))

    def int4_any_packing(model: nn.Module) -> None:
        """Int4WeightOnlyConfig with each packing format in turn; raises with every format's message."""
        said = []
        for fmt in Int4PackingFormat:
            try:
                q.quantize_(model, q.Int4WeightOnlyConfig(group_size=INT4_GROUP, int4_packing_format=fmt))
                return
            except Exception as e:  # noqa: BLE001 - each format's refusal is part of the row
                said.append(f"{fmt.value}: {one_line(e)}")
        try:  # tile_packed_to_4d asks for bfloat16: give it a bfloat16 model
            q.quantize_(model.to(torch.bfloat16), q.Int4WeightOnlyConfig(
                group_size=INT4_GROUP, int4_packing_format=Int4PackingFormat.TILE_PACKED_TO_4D))
            return
        except Exception as e:  # noqa: BLE001
            said.append(f"tile_packed_to_4d on a bfloat16 model: {one_line(e)}")
        raise RuntimeError(" | ".join(said))

    rnn = {"lstm": "nn.LSTM", "gru": "nn.GRU"}[cell]
    return [
        {"variant": "PyTorch fp32 (the model given to torchao)", "api": "CharRNN, eager", "mode": "fp32",
         "bits": 32, "apply": lambda m: None},
        {"variant": "torchao int8 dynamic activation + int8 weight",
         "api": "quantize_(model, Int8DynamicActivationInt8WeightConfig())", "mode": "int8 dynamic activation",
         "bits": 8, "apply": lambda m: q.quantize_(m, q.Int8DynamicActivationInt8WeightConfig())},
        {"variant": "torchao int4 weight-only (Int4WeightOnlyConfig)",
         "api": f"quantize_(model, Int4WeightOnlyConfig(group_size={INT4_GROUP}, int4_packing_format=F)) "
                f"for F in {[f.value for f in Int4PackingFormat]}, "
                "then tile_packed_to_4d on model.to(torch.bfloat16)",
         "mode": "int4 weight-only", "bits": 4, "apply": int4_any_packing},
        {"variant": f"torchao intx int4 weight-only, group {INT4_GROUP} (Linear + Embedding)",
         "api": f"quantize_(model, IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup({INT4_GROUP}))"
                ", filter_fn=Linear or Embedding)", "mode": "int4 weight-only", "bits": 4,
         "apply": lambda m: q.quantize_(m, q.IntxWeightOnlyConfig(weight_dtype=torch.int4,
                                                                  granularity=PerGroup(INT4_GROUP)),
                                        filter_fn=linear_or_embedding)},
        {"variant": f"torchao int8 dynamic activation + int4 weight, group {INT4_GROUP} (8da4w)",
         "api": f"quantize_(model, Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, "
                f"weight_granularity=PerGroup({INT4_GROUP})))", "mode": "int8 dynamic activation, int4 weight",
         "bits": 4, "apply": lambda m: q.quantize_(m, q.Int8DynamicActivationIntxWeightConfig(
             weight_dtype=torch.int4, weight_granularity=PerGroup(INT4_GROUP)))},
        {"variant": f"torchao int8 dynamic activation + int8 weight on the {rnn} itself",
         "api": f"quantize_(model, Int8DynamicActivationInt8WeightConfig(), filter_fn=isinstance(m, {rnn}))",
         "mode": "int8 dynamic activation", "bits": 8,
         "apply": lambda m: q.quantize_(m, q.Int8DynamicActivationInt8WeightConfig(), filter_fn=recurrent)},
    ]


def outcome_of(kinds: dict[str, str], mode: str) -> tuple[str, str | None]:
    """ok when every rnn.* weight was converted; skips_recurrent when torchao left them float (silently)."""
    if mode == "fp32":
        return "ok", None
    rnn_float = [n for n, k in kinds.items() if n.startswith("rnn.weight") and k == "float"]
    converted = [f"{n} -> {k}" for n, k in kinds.items() if k != "float"]
    if not converted:
        return "skips_recurrent", "quantize_ returned without error and converted no tensor"
    if rnn_float:
        return "skips_recurrent", (f"no error from torchao; it converted {', '.join(converted)} and left the "
                                   f"{len(rnn_float)} recurrent weight matrices (rnn.weight_*) float")
    return "ok", None


def measure(item: dict, base: nn.Module, ids: np.ndarray) -> tuple[dict, nn.Module | None]:
    spec_keys = ("variant", "api", "mode", "bits")
    row = {"peer": "torchao", **{k: item[k] for k in spec_keys}}
    model = copy.deepcopy(base)
    t0 = time.perf_counter()
    try:
        item["apply"](model)
    except Exception as e:  # noqa: BLE001 - a refusal is a row
        row.update(outcome="refused", error=one_line(e) if "|" not in str(e) else str(e)[:900])
        return row, None
    row["quantize_seconds"] = round(time.perf_counter() - t0, 2)
    kinds = tensor_kinds(model)
    row["tensors"] = kinds
    row["outcome"], row["error"] = outcome_of(kinds, item["mode"])
    try:
        row.update(nll(stream_logits(model, ids[:-1]), ids[1:]))
    except Exception as e:  # noqa: BLE001
        row.update(outcome="does_not_run", error=one_line(e))
        return row, None
    row["bytes"] = saved_bytes(model)
    row["bytes_how"] = "torch.save(model.state_dict()) file (torchao tensor subclasses pickled), bytes on disk"
    if "intx" in item["api"].lower():
        row["note"] = ("IntxUnpackedToInt8Tensor keeps each int4 value in an int8 byte (unpacked) in the state "
                       "dict; eager CPU runs dequantize-then-float-matmul")
    elif item["mode"] != "fp32":
        row["note"] = "eager CPU run; only the Linear decoder's matmul is int8"
    return row, model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="charlstm-256x2")
    ap.add_argument("--chars", type=int, default=20000, help="first N test characters")
    ap.add_argument("--parity-chars", type=int, default=2000)
    ap.add_argument("--main-python", default=MAIN_PYTHON)
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--latency-rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t_start, load_start = time.perf_counter(), list(os.getloadavg())

    spec, w = load_reference(args.model)
    ref, ref_ids, ref_parity = rnnslim_reference(args.model, args.chars, args.parity_chars, args.no_latency,
                                                 args.main_python)
    ids = split(load_text_ids(spec["vocab"]), "test")[: args.chars + 1]
    if not np.array_equal(ids, ref_ids):
        raise SystemExit("the test prefix read here differs from rnnslim's (split or vocabulary mismatch)")
    base = CharRNN.from_reference(spec, w)
    k = len(ref_parity)
    parity = {"torch_fp32_max_abs_logit_diff": float(np.abs(stream_logits(base, ids[:k]) - ref_parity).max()),
              "chars": k, "how": "CharRNN (this venv's torch) vs rnnslim's fp32 logits (reference_outputs.py)"}
    print(f"parity: CharRNN fp32 vs rnnslim fp32 max |logit diff| {parity['torch_fp32_max_abs_logit_diff']:.2e}",
          flush=True)

    V = len(spec["vocab"])
    rows, timers = [], {}
    for item in variants(spec["cell"]):
        row, model = measure(item, base, ids)
        rows.append(row)
        if model is not None and not args.no_latency:
            row["latency"] = step_latency(module_stepper(model), V)
            timers[row["variant"]] = (lambda m=model: step_latency(module_stepper(m), V)["median_ms"])
        lat = row.get("latency", {}).get("median_ms")
        print(f"{row['variant'][:70]:70s} {row['outcome']:16s} loss {row.get('loss_nats', float('nan')):.4f} "
              f"{row.get('bytes', 0):>10,} B {lat if lat is None else round(lat, 4)} ms  {row.get('error') or ''}",
              flush=True)

    duel = None if args.no_latency else interleaved_latency(args.model, timers, args.latency_rounds, args.main_python)
    if duel:
        for row in rows:
            if row["variant"] in duel["peer_median_ms"]:
                row["latency"]["interleaved_median_ms"] = duel["peer_median_ms"][row["variant"]]
        print("interleaved: rnnslim int8 " + f"{duel['rnnslim_int8_median_ms']:.4f} ms; " + ", ".join(
            f"{v[:40]} {x:.1f}x" for v, x in duel["speedup_per_variant"].items()), flush=True)
    write_result(args.out, args.model, {
        "model": args.model, "test_chars": int(len(ids) - 1), "test_text": test_text(len(ids) - 1),
        "parity": parity, "rows": rows, "rnnslim": ref, "interleaved_latency": duel,
        "calibration": "none: every torchao config here is weight-only or dynamic (no calibration data)",
        "versions": versions(PACKAGES),
        "machine": {**machine(), "load_avg_start": load_start, "load_avg_end": list(os.getloadavg()),
                    "torch_threads": torch.get_num_threads()},
        "command": command_line(), "git_commit": git_commit(), "seconds": round(time.perf_counter() - t_start, 1),
        "date": now()})
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
