"""Peer: ExecuTorch (torch.export -> XNNPACK delegate -> .pte, Python runtime) on rnnslim's char models (issue 21).

    /work/peers-executorch/bin/python benchmarks/peers/executorch_bench.py --model charlstm-256x2 [--chars 20000]
        [--main-python .venv/bin/python] [--no-latency] [--latency-rounds 3] [--variants fp32,int8,int8-decomposed]

Setup (its own venv; no rnnslim; torch pinned to the CPU wheel 2.13.0):
    python3.11 -m venv /work/peers-executorch
    /work/peers-executorch/bin/pip install torch==2.13.0 numpy safetensors -c /work/notes/torch-constraint.txt
    /work/peers-executorch/bin/pip install executorch==1.5.1 -c /work/notes/torch-constraint.txt
(exact versions: benchmarks/peers/requirements-executorch.txt; executorch 1.5.1 does not pin torch in its
metadata, needs torchao>=0.18,<0.19, and its prebuilt runtime loads and runs with torch 2.13.0).

The model is one streaming step, as a device runs it: a module taking ids (1, 1) int64 and the state
(LSTM h, c; GRU h; (layers, 1, H) float each) and returning logits (1, 1, V) and the new state, around the
same CharRNN (Embedding -> nn.LSTM / nn.GRU -> Linear, torch_char_model.py). The caller carries the state.
Each variant is exported with torch.export.export, lowered with to_edge_transform_and_lower(partitioner=
[XnnpackPartitioner()]), written with to_executorch() and run with executorch.runtime (XNNPACK threadpool
set to 1 thread). Variants:
    fp32             the float step program
    int8             pt2e static int8 as ExecuTorch documents it: XNNPACKQuantizer with
                     get_symmetric_quantization_config(is_per_channel=True), prepare_pt2e on the exported
                     module, calibration on peer_common.calibration_stream (8 x 1024 training characters, state
                     carried), convert_pt2e, export, lower. XNNPACKQuantizer annotates aten.linear and leaves
                     aten.lstm / aten.gru unannotated: the recurrent layer stays float (skips_recurrent)
    int8-decomposed  the same after decomposing the recurrent op into its gate ops first
                     (ep.run_decompositions(get_decompositions([aten.lstm.input, aten.gru.input]))), so that
                     the quantizer sees the gate matmuls as aten.linear: the most a user gets from ExecuTorch
Each row records the delegation (executorch.devtools.backend_debug.get_delegation_info: ops inside XNNPACK
subgraphs and ops left to the portable kernels), whether the recurrent matmuls were quantized (weight
dequantize_per_channel nodes per linear), .pte bytes, the loss (mean NLL of the first --chars test
characters, one stream at batch 1, state carried, through the .pte) and the step latency at batch 1, 1 thread,
interleaved with rnnslim's int8 C kernel. Writes benchmarks/results/peers_executorch.json.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from peer_common import (CALIBRATION_TEXT, MAIN_PYTHON, RESULTS, calibration_stream, command_line,  # noqa: E402
                         git_commit, interleaved_latency, load_reference, load_text_ids, machine, nll, now,
                         one_line, rnnslim_reference, split, test_text, versions, write_result)
from torch_char_model import CharRNN, step_latency  # noqa: E402

PACKAGES = ("torch", "executorch", "torchao", "numpy", "safetensors")
OUT = RESULTS / "peers_executorch.json"
API = "torch.export.export -> to_edge_transform_and_lower(partitioner=[XnnpackPartitioner()]) -> to_executorch"


class StepModule(nn.Module):
    """(ids (1, 1), *state) -> (logits (1, 1, V), *new state); state: LSTM (h, c), GRU (h,), (L, 1, H) each."""

    def __init__(self, model: CharRNN) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, *state: torch.Tensor):
        logits, new = self.model(ids, tuple(state) if len(state) == 2 else state[0])
        return (logits, *new) if isinstance(new, tuple) else (logits, new)


def zero_state(spec: dict) -> list[torch.Tensor]:
    shape = (spec["num_layers"], 1, spec["hidden_size"])
    return [torch.zeros(shape) for _ in range(2 if spec["cell"] == "lstm" else 1)]


def example_inputs(spec: dict) -> tuple:
    return (torch.zeros(1, 1, dtype=torch.long), *zero_state(spec))


def graph_ops(gm: torch.fx.GraphModule) -> dict[str, int]:
    return dict(collections.Counter(str(n.target).split(":")[0] for n in gm.graph.nodes if n.op == "call_function"))


def quantize_pt2e(step: nn.Module, spec: dict, calib: np.ndarray, decompose: bool) -> tuple[nn.Module, dict]:
    """pt2e static int8 with XNNPACKQuantizer, calibrated on the calibration stream (state carried)."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                         get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    ep = torch.export.export(step, example_inputs(spec))
    if decompose:
        from torch._decomp import get_decompositions
        ep = ep.run_decompositions(get_decompositions([torch.ops.aten.lstm.input, torch.ops.aten.gru.input]))
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(ep.module(), quantizer)
    state = zero_state(spec)
    with torch.no_grad():
        for t in calib:
            _, *state = prepared(torch.tensor([[int(t)]]), *state)
    converted = convert_pt2e(prepared)
    ops = graph_ops(converted)
    facts = {"converted_ops": ops, "linear_ops": ops.get("aten.linear.default", 0),
             "int8_weight_dequantize_ops": ops.get("quantized_decomposed.dequantize_per_channel.default", 0),
             "float_recurrent_ops": {k: v for k, v in ops.items() if k in ("aten.lstm.input", "aten.gru.input")}}
    return converted, facts


def lower(module: nn.Module, spec: dict) -> tuple[bytes, dict]:
    """The .pte bytes and the XNNPACK delegation (ops delegated / left portable) of a step module."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.devtools.backend_debug import get_delegation_info
    from executorch.exir import to_edge_transform_and_lower

    edge = to_edge_transform_and_lower(torch.export.export(module, example_inputs(spec)),
                                       partitioner=[XnnpackPartitioner()])
    info = get_delegation_info(edge.exported_program().graph_module)
    by_op = {op: (b.delegated, b.non_delegated) for op, b in info.delegation_by_operator.items()}
    delegation = {"xnnpack_subgraphs": info.num_delegated_subgraphs,
                  "delegated_nodes": info.num_delegated_nodes, "portable_nodes": info.num_non_delegated_nodes,
                  "ops_delegated": {op: d for op, (d, _) in by_op.items() if d and op != "getitem"},
                  "ops_portable": {op: n for op, (_, n) in by_op.items() if n and op != "getitem"}}
    return edge.to_executorch().buffer, delegation


class PteStream:
    """The .pte's forward method through executorch.runtime, one character per call, the state carried."""

    def __init__(self, pte: bytes, spec: dict) -> None:
        from executorch.runtime import Runtime

        self.method = Runtime.get().load_program(pte).load_method("forward")
        self.spec = spec
        self.reset()

    def reset(self) -> None:
        self.state = zero_state(self.spec)

    def step(self, tok: torch.Tensor) -> torch.Tensor:
        logits, *self.state = self.method.execute([tok.reshape(1, 1), *self.state])
        return logits

    def logits(self, x: np.ndarray) -> np.ndarray:
        self.reset()
        ids = torch.as_tensor(x, dtype=torch.long)
        return np.stack([self.step(ids[i]).reshape(-1).numpy().copy() for i in range(len(ids))])


def variant_rows(spec: dict) -> dict[str, dict]:
    cell = spec["cell"].upper()
    q = ("XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True)); "
         "prepare_pt2e / calibrate / convert_pt2e")
    return {
        "fp32": {"variant": f"ExecuTorch XNNPACK fp32 {cell} step program", "api": API, "mode": "fp32", "bits": 32},
        "int8": {"variant": f"ExecuTorch XNNPACK int8 (pt2e XNNPACKQuantizer) {cell} step program",
                 "api": f"{q}; then {API}", "mode": "int8 static", "bits": 8},
        "int8-decomposed": {
            "variant": f"ExecuTorch XNNPACK int8 (pt2e XNNPACKQuantizer, {cell} decomposed first) step program",
            "api": f"ep.run_decompositions(get_decompositions([aten.lstm.input, aten.gru.input])); {q}; then {API}",
            "mode": "int8 static", "bits": 8},
    }


def build(name: str, base: CharRNN, spec: dict, calib: np.ndarray, row: dict) -> bytes:
    step = StepModule(base).eval()
    module = step
    if name != "fp32":
        module, facts = quantize_pt2e(step, spec, calib, decompose=name == "int8-decomposed")
        row["quantization"] = facts
        if facts["float_recurrent_ops"]:
            row["outcome"] = "skips_recurrent"
            row["error"] = (f"no error from ExecuTorch; XNNPACKQuantizer left {facts['float_recurrent_ops']} "
                            f"unannotated (float): int8 weights on {facts['int8_weight_dequantize_ops']} of "
                            f"{facts['linear_ops']} linear ops (the decoder)")
        elif facts["int8_weight_dequantize_ops"] < facts["linear_ops"]:
            row["outcome"] = "skips_recurrent"
            row["error"] = (f"int8 weights on {facts['int8_weight_dequantize_ops']} of {facts['linear_ops']} "
                            "linear ops")
    t0 = time.perf_counter()
    pte, row["delegation"] = lower(module, spec)
    row["lower_seconds"] = round(time.perf_counter() - t0, 1)
    return pte


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="charlstm-256x2")
    ap.add_argument("--chars", type=int, default=20000, help="first N test characters")
    ap.add_argument("--parity-chars", type=int, default=2000)
    ap.add_argument("--main-python", default=MAIN_PYTHON)
    ap.add_argument("--variants", default="fp32,int8,int8-decomposed")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--latency-rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from executorch.extension.pybindings import portable_lib
    portable_lib._unsafe_reset_threadpool(1)  # XNNPACK's threadpool: 1 thread, like every row of the table
    t_start, load_start = time.perf_counter(), list(os.getloadavg())

    spec, w = load_reference(args.model)
    ref, ref_ids, ref_parity = rnnslim_reference(args.model, args.chars, args.parity_chars, args.no_latency,
                                                 args.main_python)
    ids_all = load_text_ids(spec["vocab"])
    ids = split(ids_all, "test")[: args.chars + 1]
    if not np.array_equal(ids, ref_ids):
        raise SystemExit("the test prefix read here differs from rnnslim's (split or vocabulary mismatch)")
    calib = calibration_stream(split(ids_all, "train"))
    base = CharRNN.from_reference(spec, w)
    V, k = len(spec["vocab"]), min(len(ref_parity), len(ids) - 1)
    rows, timers, parity = [], {}, {"chars": k, "how": "the .pte through executorch.runtime vs rnnslim's fp32 "
                                                       "logits (reference_outputs.py), first chars, one stream"}
    specs = variant_rows(spec)
    for name in args.variants.split(","):
        row = {"peer": "ExecuTorch", **specs[name], "outcome": "ok", "error": None}
        rows.append(row)
        try:
            pte = build(name, base, spec, calib, row)
        except Exception as e:  # noqa: BLE001 - a failure is a row
            row.update(outcome="refused", error=one_line(e))
            print(f"{row['variant'][:72]:72s} refused: {row['error']}", flush=True)
            continue
        with tempfile.TemporaryDirectory(prefix="peers_et_") as d:
            path = Path(d) / "model.pte"
            path.write_bytes(pte)
            row["bytes"], row["bytes_how"] = path.stat().st_size, ".pte file (XNNPACK delegate blobs inside), on disk"
        try:
            stream = PteStream(pte, spec)
            logits = stream.logits(ids[:-1])
        except Exception as e:  # noqa: BLE001
            row.update(outcome="does_not_run", error=one_line(e))
            continue
        row.update(nll(logits, ids[1:]))
        parity[f"{name}_max_abs_logit_diff"] = float(np.abs(logits[:k] - ref_parity[:k]).max())
        parity[f"{name}_argmax_agreement"] = float(np.mean(logits[:k].argmax(1) == ref_parity[:k].argmax(1)))
        if not args.no_latency:
            row["latency"] = step_latency(PteStream(pte, spec).step, V)
            row["latency"]["how"] += "; method.execute per step (executorch.runtime, XNNPACK threadpool 1 thread)"
            timers[row["variant"]] = (lambda p=pte: step_latency(PteStream(p, spec).step, V)["median_ms"])
        lat = row.get("latency", {}).get("median_ms")
        print(f"{row['variant'][:72]:72s} {row['outcome']:16s} loss {row['loss_nats']:.4f} {row['bytes']:>10,} B "
              f"{lat if lat is None else round(lat, 4)} ms  delegated {row['delegation']['ops_delegated']} "
              f"portable {row['delegation']['ops_portable']} {row['error'] or ''}", flush=True)

    duel = None if args.no_latency else interleaved_latency(args.model, timers, args.latency_rounds, args.main_python)
    if duel:
        for row in rows:
            if row["variant"] in duel["peer_median_ms"]:
                row["latency"]["interleaved_median_ms"] = duel["peer_median_ms"][row["variant"]]
        print(f"interleaved: rnnslim int8 {duel['rnnslim_int8_median_ms']:.4f} ms; " + ", ".join(
            f"{v[:50]} {x:.1f}x" for v, x in duel["speedup_per_variant"].items()), flush=True)
    write_result(args.out, args.model, {
        "model": args.model, "test_chars": int(len(ids) - 1), "test_text": test_text(len(ids) - 1),
        "parity": parity, "rows": rows, "rnnslim": ref, "interleaved_latency": duel, "calibration": CALIBRATION_TEXT,
        "versions": versions(PACKAGES),
        "machine": {**machine(), "load_avg_start": load_start, "load_avg_end": list(os.getloadavg()),
                    "torch_threads": torch.get_num_threads(),
                    "xnnpack_threads": portable_lib._threadpool_get_thread_count()},
        "command": command_line(), "git_commit": git_commit(), "seconds": round(time.perf_counter() - t_start, 1),
        "date": now()})
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
