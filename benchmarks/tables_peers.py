"""BENCHMARKS.md section "Against the tools people use" (issue 21) from benchmarks/results/peers_litert.json.

The JSON is written by benchmarks/peers/litert_bench.py in its own venv (no rnnslim import), so its
machine record is not rnnslim's provenance: `_provenance` maps it onto what the shared machine line
reads. Every number here comes from the JSON; the "where the peer wins" list is computed, not typed.
"""

from __future__ import annotations

from table_parts import load_result, machine_line

MODELS = ("charlstm-256x2", "chargru-512x2", "charlstm-512x2")
QUANTIZED = ("int8", "16x8", "dynamic")  # LiteRT modes compared with rnnslim's int8 (float rows are references)
TARGET_SPEEDUP = 3.0  # issue 21: ">= 3x faster than the fastest peer runtime at batch 1 on this CPU"
ROW_NAMES = {("layer", "int8"): "fused {cell} layer, full-integer int8 (the microcontroller path)",
             ("layer", "16x8"): "fused {cell} layer, 16x8", ("layer", "dynamic"): "fused {cell} layer, dynamic",
             ("step", "int8"): "step model, full-integer int8", ("step", "16x8"): "step model, 16x8",
             ("step", "dynamic"): "step model, dynamic (XNNPACK)"}


def _provenance(run: dict) -> dict:
    """The peer run's machine / versions in the shape machine_line reads (rnnslim's side ran torch)."""
    m = run.get("machine", {})
    load = [round(x, 2) for x in m.get("load_avg_start", [])]
    return {"machine": {"cpu_model": m.get("cpu"), "logical_cpus": m.get("cores"),
                        "torch_version": run["rnnslim"].get("torch"), "onnxruntime_version": "not used",
                        "load_average": load},
            "date": run.get("date"), "git_commit": run.get("git_commit"), "command": run.get("command")}


def _versions(run: dict) -> str:
    v = run.get("versions", {})
    return ", ".join(f"{k} {v[k]}" for k in ("ai-edge-litert", "tflite-micro", "tensorflow-cpu", "tf-keras") if k in v)


def _reference_command(run: dict) -> str:
    """reference_outputs.py's command, relative to the repository and without its temporary --out."""
    cmd = run["rnnslim"].get("command", "").replace("/work/main/", "")
    return cmd.split(" --out ")[0]


def _rnnslim_int8(run: dict) -> dict:
    return next(r for r in run["rnnslim"]["rows"] if "int8" in r["variant"])


def _rounds(run: dict, variant: str | None, key: str = "litert_ms") -> list[float]:
    """Per-round ms of one LiteRT variant (None: rnnslim's int8 C kernel) from the alternating rounds."""
    rounds = run["interleaved_latency"]["rounds"]
    return [r["rnnslim_int8_c_kernel_ms"] if variant is None else r[key][variant] for r in rounds]


def _ms(values: list[float], median: float) -> str:
    return f"{1000 * median:.1f} [{1000 * min(values):.1f}-{1000 * max(values):.1f}]"


def _ratio(run: dict, variant: str, key: str = "litert_ms") -> tuple[float, float, float]:
    """(median ratio as the JSON gives it, lowest and highest per-round ratio): peer ms / rnnslim ms."""
    il = run["interleaved_latency"]
    median = il["speedup_per_variant" if key == "litert_ms" else "speedup_vs_invoke_only"][variant]
    per_round = [p / r for p, r in zip(_rounds(run, variant, key), _rounds(run, None))]
    return median, min(per_round), max(per_round)


def _ratio_words(ratio: tuple[float, float, float]) -> str:
    median, lo, hi = ratio
    band = f"rounds {lo:.2f}-{hi:.2f}x"
    if lo <= 1 <= hi:
        return f"equal within the rounds' spread ({median:.2f}x; {band})"
    return (f"rnnslim {median:.2f}x faster ({band})" if median > 1
            else f"LiteRT {1 / median:.2f}x faster ({band})")


def _bytes_cell(row: dict, ours: dict) -> str:
    b, art, const = row["tflite_bytes"], ours["artifact_bytes"], ours["c_export"]["const_bytes"]
    return f"{b:,} ({100 * (b / art - 1):+.1f} % / {100 * (b / const - 1):+.1f} %)"


def _ram_cell(row: dict) -> str:
    t = row.get("tflm") or {}
    if t.get("runs"):
        return f"TFLM arena {t['arena_bytes']['total']:,}"
    return f"TFLM does not run it: {t.get('error', 'not tried')}".replace("|", "/")


def _peer_row(run: dict, row: dict, ours: dict, cell: str) -> str:
    name = ROW_NAMES[(row["api"], row["mode"])].format(cell=cell)
    if "error" in row:
        return f"| {name} | failed: {row['error']} | | | | |"
    if row.get("streaming") is False:
        return f"| {name} | not streaming: {row.get('note', '')} ({row['tflite_bytes']:,} B) | | | | |"
    v = row["variant"]
    il = run["interleaved_latency"]
    return (f"| {name} | {row['loss_nats']:.4f} ({row['loss_nats'] - ours['test_loss_nats']:+.4f}) | "
            f"{_bytes_cell(row, ours)} | {_ram_cell(row)} | {_ms(_rounds(run, v), il['litert_median_ms'][v])} | "
            f"{_ratio_words(_ratio(run, v))}; invoke() alone: "
            f"{_ratio_words(_ratio(run, v, 'litert_invoke_only_ms'))} |")


def _model_table(name: str, run: dict) -> list[str]:
    ours = _rnnslim_int8(run)
    fp32 = next(r for r in run["rnnslim"]["rows"] if "fp32" in r["variant"])
    cell = "GRU" if "gru" in name else "LSTM"
    ram = ours["c_export"]["scratch_bytes"] + ours["c_export"]["state_bytes"]
    il = run["interleaved_latency"]
    out = [f"### {name}", "", f"Machine and command: {machine_line(_provenance(run))}; {_versions(run)}. "
           f"`{_reference_command(run)}` gave rnnslim's rows. "
           f"fp32 reference on the same characters: rnnslim (torch) {fp32['test_loss_nats']:.4f} nats/char.", "",
           "| variant | loss nats/char (vs rnnslim) | bytes (vs rnnslim artifact / C arrays) | RAM bytes | "
           "us/step [rounds] | vs rnnslim |", "|---|---|---:|---|---:|---|",
           f"| **rnnslim int8 fully integer, C kernel** | {ours['test_loss_nats']:.4f} | "
           f"{ours['artifact_bytes']:,} (C arrays {ours['c_export']['const_bytes']:,}) | "
           f"scratch + state {ram:,} ({ours['c_export']['scratch_bytes']:,} + {ours['c_export']['state_bytes']:,}) | "
           f"{_ms(_rounds(run, None), il['rnnslim_int8_median_ms'])} | 1.00x |"]
    out += [_peer_row(run, r, ours, cell) for r in run["rows"] if r["mode"] in QUANTIZED]
    return out + [""]


def _wins(runs: dict[str, dict]) -> list[str]:
    """Where a LiteRT row beats rnnslim's int8 in a column, computed from the JSON."""
    speed = {m: r["interleaved_latency"] for m, r in runs.items()}
    fastest = ", ".join(f"{m} {il['speedup_vs_fastest_litert']:.2f}x vs its {il['fastest_litert_variant']}"
                        for m, il in speed.items())
    invoke = ", ".join(f"{m} {_ratio_words(_ratio(runs[m], il['fastest_litert_variant'], 'litert_invoke_only_ms'))}"
                       for m, il in speed.items())
    met = all(il["speedup_vs_fastest_litert"] >= TARGET_SPEEDUP for il in speed.values())
    out = [f"- Speed: the issue's target \"rnnslim int8 >= {TARGET_SPEEDUP:.0f}x faster than the fastest peer "
           f"runtime\" is {'met' if met else '**MISSED**'}: {fastest}. Against that variant's invoke() alone "
           f"(rnnslim's figure includes a Python / ctypes call per step, LiteRT's full figure its set_tensor / "
           f"get_tensor): {invoke}."]
    for m, run in runs.items():
        ours = _rnnslim_int8(run)
        ram = ours["c_export"]["scratch_bytes"] + ours["c_export"]["state_bytes"]
        for r in (r for r in run["rows"] if r["mode"] in QUANTIZED and "loss_nats" in r):
            arena = ((r.get("tflm") or {}).get("arena_bytes") or {}).get("total")
            if arena and arena < ram:
                out.append(f"- RAM, {m}: TFLite Micro's arena for the {r['variant']} is {arena:,} B, "
                           f"{ram / arena:.1f}x smaller than rnnslim's scratch + state {ram:,} B (arena measured "
                           "on this 64-bit host; a 32-bit MCU's is smaller still).")
            smaller = [f"{100 * (1 - r['tflite_bytes'] / b):.1f} % smaller than rnnslim's {what} ({b:,} B)"
                       for what, b in (("artifact", ours["artifact_bytes"]),
                                       ("C arrays", ours["c_export"]["const_bytes"])) if r["tflite_bytes"] < b]
            if smaller:
                out.append(f"- Bytes, {m}: the {r['variant']} .tflite ({r['tflite_bytes']:,} B) is "
                           + " and ".join(smaller) + ".")
            if r["loss_nats"] < ours["test_loss_nats"]:
                diff = ours["test_loss_nats"] - r["loss_nats"]
                out.append(f"- Loss, {m}: the {r['variant']} has {diff:.5f} nats/char "
                           f"({100 * diff / ours['test_loss_nats']:.3f} %) "
                           f"lower loss ({r['loss_nats']:.5f} vs {ours['test_loss_nats']:.5f}; "
                           f"{'float activations' if r['mode'] == 'dynamic' else 'int16 activations'}).")
    return out


def peers_section() -> list[str]:
    data = load_result("peers_litert.json")
    if not data:
        return []
    runs = {m: data[m] for m in MODELS if m in data}
    first = next(iter(runs.values()))
    out = ["## Against the tools people use (issue 21: LiteRT / TFLite Micro so far)", "",
           f"The same trained weights built in Keras (tf_keras; fp32 logits within "
           f"{max(r['parity']['keras_fp32_max_abs_logit_diff'] for r in runs.values()):.1e} of rnnslim's), "
           f"converted by the TFLite converter ({first['calibration']} as the representative set) and run by LiteRT "
           "(`benchmarks/peers/litert_bench.py`, its own venv; what each variant is: `benchmarks/peers/README.md`). "
           f"Loss: {first['test_text']}. Bytes: the .tflite file; rnnslim's artifact (save_model: manifest + "
           "safetensors) and the C arrays export_c writes (flash); the percentages are the peer's size against "
           "those two. RAM: rnnslim's C scratch + state; TFLite Micro's arena (RecordingMicroAllocator on this "
           "64-bit host) where TFLite Micro runs the .tflite, its one-line refusal where not; LiteRT's desktop "
           "interpreter RAM is not measured. Latency: a streaming step at batch 1, 1 thread, in three alternating "
           "rounds (rnnslim's int8 C kernel through IntegerRunner, which includes a Python / ctypes call, then "
           "every LiteRT variant with set_tensor / invoke / get_tensor and default delegates); the median over "
           "the rounds [fastest-slowest round]; `vs rnnslim` is the peer's time over rnnslim's (the JSON's "
           "median ratio, the per-round ratios in brackets; a range containing 1 reads equal), and the same "
           "against LiteRT's invoke() alone. A failed variant is a row with its message. LiteRT's float rows are "
           "in the JSON, not here.", ""]
    for name, run in runs.items():
        out += _model_table(name, run)
    out += ["### Where the peer wins", ""] + _wins(runs) + [
        "", "Not yet compared (issue 21 open): AIMET, Brevitas, torchao, Torch-Pruning, ExecuTorch; the "
        "JapaneseVowels / BasicMotions classifiers; rnnslim's int4 and below; an rnnslim `.tflite` export "
        "(`rnnslim export --format tflite`).", ""]
    return out
