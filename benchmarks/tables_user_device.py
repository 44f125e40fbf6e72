"""BENCHMARKS.md section "Your model to the device" (benchmarks/your_model_to_device.py, issue 20)."""

from __future__ import annotations

from common import ROOT
from table_parts import load_result, machine_line

TARGETS = ("host", "cortex-m4", "aarch64")


def _mark(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _refusal(cell: dict, full: bool = False) -> str | None:
    """A failed cell's text; a cell not run because an earlier one refused says only that
    (`full`: the whole reason, shown once per row), paths relative to the repository."""
    text = cell.get("cell")
    if text is None:
        return None
    text = text.replace(str(ROOT) + "/", "").replace("|", "/")
    if not full and text.startswith("not run: ") and " refused: " in text:
        return f"not run ({text[len('not run: '):].split(' refused: ')[0]} refused)"
    return text if full else text[:160]


def _parity(c: dict) -> str:
    return _refusal(c, full=True) or f"{c['rel_max_error']:.1e} ({_mark(c['within'])})"


def _int8(c: dict) -> str:
    if _refusal(c):
        return _refusal(c)
    if "change_rel" in c:
        band = 2 * c["noise"]["paired_block_se_nats"]
        return (f"loss {c['float']:.4f} -> {c['integer']:.4f} nats ({100 * c['change_rel']:+.2f} %; 2 s.e. "
                f"{band:.4f}; {_mark(c['within'])})")
    return (f"{100 * c['float']:.2f} % -> {100 * c['integer']:.2f} % ({c['change_points']:+.2f} pt; "
            f"{c['predictions_changed']} of {c['n']:,} changed, 1 item = {c['noise']['one_item_points']:.3g} pt; "
            f"{_mark(c['within'])}){_user_loop(c.get('user_loop'))}")


def _user_loop(loop: dict | None) -> str:
    """The same accuracy through the user's own loop (rnnslim.capture.evaluate)."""
    if loop is None:
        return ""
    if "accuracy" not in loop:
        return f"; evaluate(): {_refusal(loop)}"
    same = "same" if loop["same_as_integer_runner"] else "**differs**"
    return f"; user's loop (evaluate) {100 * loop['accuracy']:.2f} %, {same}"


def _c_exact(c: dict) -> str:
    if _refusal(c):
        return _refusal(c)
    parts = []
    for t in TARGETS:
        r = c["targets"].get(t, {})
        if "bit_exact" in r:
            parts.append(f"{t} {'yes' if r['bit_exact'] else '**NO**'} ({r['streams']}x{r['steps']})")
        else:
            parts.append(f"{t}: {str(r.get('error') or r.get('skipped'))[:80]}")
    return ", ".join(parts)


def _flash_ram(c: dict) -> str:
    if _refusal(c):
        return _refusal(c)
    flash = c["m4_object_flash_bytes"]
    flash_s = f"{flash / 1024:,.1f} KiB" if flash is not None else "? (no arm-none-eabi-gcc)"
    return (f"flash {flash_s} (const {c['manifest_flash_bytes'] / 1024:,.1f}) / RAM "
            f"{c['manifest_ram_bytes'] / 1024:,.1f} KiB")


LABELS = {"ort_int8_unfused": "onnx-int8 unfused", "ort_dynamic_int8_fused": "fused, quantize_dynamic",
          "ort_dynamic_int8_window": "user's module, quantize_dynamic"}


def _latency(c: dict) -> str:
    if _refusal(c):
        return _refusal(c)
    if "baselines" not in c:
        return "(old format: rerun the benchmark)"
    best, base = c["best_ort"], c["baselines"]
    lo, hi = c["noise_band"]
    verdict = "equal within noise" if c["equal_within_noise"] else f"{c['speedup_c_over_ort']:.1f}x [{lo:.1f}-{hi:.1f}]"
    others = [f"{LABELS.get(k, k)} {1000 * v['median_ms']:.1f} us" for k, v in base.items() if k != best]
    fp32 = "; its GRU stays fp32" if best == "ort_dynamic_int8_window" or (
        best == "ort_dynamic_int8_fused" and c.get("fused_gru_stays_fp32")) else ""
    return (f"{c['kind']}: C {1000 * c['c_kernel_median_ms']:.1f} us vs ORT int8 {1000 * base[best]['median_ms']:.1f} "
            f"us ({LABELS.get(best, best)}{fp32}): {verdict}" + (f"; also {', '.join(others)}" if others else ""))


def user_device_section() -> list[str]:
    data = load_result("your_model_to_device.json")
    if not data:
        return []
    res = data["result"]
    out = ["## Your model to the device (issue 20)", "",
           f"Machine and command: {machine_line(data['provenance'])}; 1 thread. Models written as users write them "
           "(`benchmarks/foreign_models.py`: plain nn.Modules on torch's LSTM / GRU, a Keras Sequential, a torch "
           "model exported to ONNX), trained briefly on real data here (`benchmarks/foreign_data.py`), then "
           "captured (`rnnslim.capture.capture`) or imported (`import_keras`, `import_onnx`), made fully integer "
           "int8 (`quantize_int8_`, Int8Mode.INTEGER, calibrated on training batches) and exported to C.", "",
           "Columns: **float parity** max |y - y_user| / max |y_user| against the user's own module (Keras model, "
           "ONNX Runtime session) on held-out inputs, target <= 1e-5 (0 = bit-identical: a captured model runs torch's own "
           "LSTM / GRU kernels on the user's weights); **int8 integer** the test metric of the "
           "integer model as it runs on the device (IntegerRunner, bit-identical to the C) vs the user's float "
           "model: accuracy (target: at most 1 point lower; for captured classifiers also through the user's own "
           "loop with `rnnslim.capture.evaluate`, torch's integer reference) or LM test loss over the test split as one stream, "
           "batch 1, state carried (target: at most +1 %; 2 s.e. of the paired per-block difference is its noise); "
           "**C bit-exact** hashes of every output and state of random streams (streams x steps) vs IntegerRunner: "
           "host x86-64 -O3 -march=native, Cortex-M4F under qemu-system-arm mps2-an386 (portable C), AArch64 "
           "under qemu-aarch64 (NEON); **M4 flash / RAM** the model object built for the Cortex-M4 "
           "(arm-none-eabi-size text + data) / the manifest's scratch + state bytes (+ the workspace of one "
           "64-step window for the whole-sequence models: the bidirectional tagger and the CRNN, whose 100-step sequences need about 2.3 KiB more); **latency** the C kernel (IntegerRunner) against ONNX "
           "Runtime int8 of the same model in the same run: a streaming step at batch 1 against the faster of "
           "two ORT int8 graphs (rnnslim's onnx-int8 export: unfused recurrence, every MatMul int8; and ORT's "
           "quantize_dynamic of the fused step graph: LSTM -> DynamicQuantizeLSTM, a GRU node stays fp32; both "
           "7-bit weights, reduce_range=True, safe on AVX2-only CPUs) or one 64-character window "
           "for the bidirectional tagger (ORT: the user's module exported whole-window and quantize_dynamic'd: "
           "its GRU node stays fp32, ORT has no int8 GRU); median of 5 x 200 steps (windows: 5 x 50), two "
           "alternating rounds; the bracket is the ratio band the rounds' spreads allow, and a band "
           "containing 1 reads \"equal\". A failed cell quotes rnnslim's one-line reason (\"refused: ...\"), "
           "or says what it was not run for.", "",
           "| model | data | via | float parity | int8 integer vs float | C bit-exact | M4 flash / RAM | "
           "latency, C kernel vs ORT int8 |", "|---|---|---|---|---|---|---|---|"]
    for row in res["rows"]:
        cells = row.get("cells", {})
        if not cells:
            out.append(f"| {row['key']} | | | {row.get('error', '?')} | | | | |")
            continue
        get = lambda k: cells.get(k, {"cell": "not run"})  # noqa: E731
        out.append(f"| {row['model']} | {row['data']} | {row['via']} | {_parity(get('parity'))} | "
                   f"{_int8(get('int8'))} | {_c_exact(get('c_export'))} | {_flash_ram(get('flash_ram'))} | "
                   f"{_latency(get('latency'))} |")
    trained = [f"{r['key']}: {_training(r.get('training', {}))}" for r in res["rows"] if r.get("training")]
    fresh = [r["key"] for r in res["rows"] if r.get("training") and not r["training"].get("cached")]
    out += ["", "Training (the user's loop; weights cached in benchmarks/runs/your_model_to_device/): "
            + "; ".join(trained) + f". Whole run {res['seconds']:.0f} s, "
            + (f"training {', '.join(fresh)} in it and loading the others from the cache." if fresh
               else "every model's weights loaded from the cache."), ""]
    return out


def _training(t: dict) -> str:
    what = t.get("steps") and f"{t['steps']} steps" or t.get("epochs") and f"{t['epochs']} epochs" or "?"
    return f"{what} of {t.get('batch', '?')}, {t.get('optimizer', '?')}, {t.get('seconds', '?')} s"
