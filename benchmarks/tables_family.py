"""BENCHMARKS.md sections for the rest of the compression family (issue 12): transform-domain
(DCT) vs time-domain sparsity, early exit, runtime (delta) sparsity. Called by make_tables.py;
reads only committed JSON in benchmarks/results/."""

from __future__ import annotations

from table_parts import load_result as _load
from table_parts import machine_line as _machine
from table_parts import ms_cell, noise_sentence


def dct_section(model: str) -> list[str]:
    data = _load(f"dct_vs_magnitude_{model}.json")
    if not data:
        return []
    rows = data["rows"]
    dense = rows["dense"]
    main = [r for r in rows.values() if r.get("kind") in ("dct", "magnitude")]
    fractions = sorted({r["fraction"] for r in main})
    families = list(dict.fromkeys(r["family"] for r in main))
    by = {(r["family"], r["fraction"]): r for r in rows.values() if r.get("family")}
    out = [f"### {model}: DCT-domain vs time-domain sparsity at equal bytes (one shot)", "",
           f"Machine and command: {_machine(data['provenance'])}.", "",
           f"{data['eval']}. Budget: a fraction of the {data['denominator']['what']} "
           f"({data['denominator']['bytes']:,} bytes); dense fp32 test loss {dense['test_loss']:.4f}, artifact "
           f"{dense['artifact_bytes']:,} bytes. DCT rows keep the highest-energy coefficients (orthonormal DCT-II of "
           "rows or 2-D blocks, per-layer or global ranking) stored sparse at 8 or 16 bits and rebuilt at load; "
           "magnitude rows are the existing unstructured pruning with sparse storage (fp32 values, or int8 codes). "
           "A cell shows the test loss, and the fraction really used when a method cannot fill the budget "
           "(8-bit coefficients of every weight are 25 % of fp32).", "",
           "| method | " + " | ".join(f"{f:.0%} of fp32 bytes" for f in fractions) + " |",
           "|---|" + "---:|" * len(fractions)]
    for fam in families:
        cells = []
        for f in fractions:
            r = by.get((fam, f))
            if r is None:
                cells.append("-")
                continue
            used = r["target_fraction"]
            cells.append(f"{r['test_loss']:.4f}" + (f" (at {used:.1%})" if abs(used - f) > 0.01 else ""))
        out.append(f"| {fam} | " + " | ".join(cells) + " |")
    bytes_line = []
    for f in fractions:
        b = [r["artifact_bytes"] for r in main if r["fraction"] == f and abs(r["target_fraction"] - f) <= 0.01]
        if b:
            bytes_line.append(f"{f:.0%}: {min(b):,}-{max(b):,}")
    circ = [r for r in rows.values() if str(r.get("method", "")).startswith("block-circulant")]
    out += ["", "Artifact bytes on disk at each budget (whole model, all rows within the range): "
            + "; ".join(bytes_line) + "."]
    if circ:
        out += ["", "Block-circulant matrices (every target matrix the nearest block-circulant one, k numbers per "
                "k x k block; one shot): " + "; ".join(f"{r['method']}: {r['test_loss']:.4f} at "
                                                       f"{r['target_fraction']:.1%} of fp32 bytes" for r in circ) + "."]
    def best_of(kind: str, f: float) -> dict | None:
        cands = [by[(fam, f)] for fam in families if (fam, f) in by and by[(fam, f)]["kind"] == kind]
        return min(cands, key=lambda r: r["test_loss"], default=None)

    best = {f: best_of("dct", f) for f in fractions}
    mag = {f: best_of("magnitude", f) for f in fractions}
    wins = [f"{f:.0%}: best DCT {best[f]['test_loss']:.4f} ({best[f]['family']}) vs best magnitude "
            f"{mag[f]['test_loss']:.4f} ({mag[f]['family']})" for f in fractions if best[f] and mag[f]]
    out += ["", "Which wins where: " + "; ".join(wins) + f". {noise_sentence(model, marked=False)}", ""]
    return out


def _exit_rows(name: str, data: dict) -> list[tuple[str, bool]]:
    """(table row, meets the goal: >= 40 % of layer-steps skipped at <= 1 point below the base model)."""
    out = []
    for cell in ("lstm", "gru"):
        part = data.get(cell)
        if not part:
            continue
        base = part["base"]["test_accuracy"]
        for exits, variant in part["variants"].items():
            t = variant.get("timing") or {}
            for mode, timing_key, label in (("whole", "whole_batch", "whole sequence, batched"),
                                            ("whole", "whole_b1", "whole sequence, batch 1"),
                                            ("stream", "stream_b1", "streaming, batch 1")):
                r = variant.get(mode)
                if not r:
                    continue
                tm = t.get(timing_key) or {}
                test = r["test"]
                change = 100 * (test["accuracy"] - base)
                speed = f"{tm['full_s'] * 1e3:.1f} -> {tm['early_s'] * 1e3:.1f} ms ({tm['speedup']:.2f}x)" if tm else "-"
                out.append((f"| {name} | {cell} {part['model']['layers']}x{part['model']['hidden']} | {base:.1%} | "
                            f"{exits} | {label} | {r['threshold']:.3f} | {variant['full_test_accuracy']:.1%} | "
                            f"{test['accuracy']:.1%} | {change:+.1f} pt | {test['layer_steps_fraction']:.1%} | "
                            f"{test['macs_fraction']:.1%} | {speed} | {'yes' if r['valid_bound_met'] else 'no'} |",
                            change >= -1.0 and test["skipped"] >= 0.4))
    return out


def early_exit_section() -> list[str]:
    files = [("JapaneseVowels", _load("early_exit_japanesevowels.json")), ("BasicMotions", _load("early_exit_basicmotions.json"))]
    files = [(n, d) for n, d in files if d]
    if not files:
        return []
    out = ["### Early exit on UEA classification (aeon's shipped JapaneseVowels and BasicMotions)", ""]
    for name, d in files:
        out.append(f"- {name}: {_machine(d['provenance'])}.")
    out += ["", "A 3-layer classifier is trained, a linear exit head is added after each layer (`heads`: backbone "
            "frozen, heads trained; `joint`: all trained together, 200 steps), and the confidence threshold is "
            "calibrated on the validation part of the train split as the cheapest one whose validation accuracy is "
            "at most 1 point below the full model's. Test split numbers; layer-steps executed counts the recurrent "
            "layer-steps really run (streaming also stops reading a sequence once confident); time = median of 5 "
            "repeats over the whole test split on 1 thread, full model and early exit in the same run.", "",
            "Accuracy change is against the base model before any exit was added (joint training changes the "
            "backbone too; `full` = the model with exits, run to the last layer).", "",
            "| data | model | base acc. | exits | mode | threshold | full acc. | early-exit acc. | change vs base | "
            "layer-steps run | MACs run | time full -> early exit | <= 1 pt on valid |",
            "|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    rows = [r for name, d in files for r in _exit_rows(name, d)]
    out += [r for r, _ in rows]
    met = [r for r, ok in rows if ok]
    where = "all of them whole-sequence rows" if met and all("whole sequence" in r for r in met) else "see the rows"
    sizes = "; ".join(f"{name}: {d['lstm']['splits']['test']} test sequences (one sequence = "
                      f"{100 / d['lstm']['splits']['test']:.2f} points)" for name, d in files if d.get("lstm"))
    out += ["", f"Goal (>= 40 % of the layer-steps skipped at <= 1 point below the base model on test): met by "
            f"{len(met)} of {len(rows)} rows ({where}). Test sizes: {sizes}.", ""]
    return out


def _thr(t) -> str:
    if isinstance(t, dict):
        return "/".join(str(v) for _, v in sorted(t.items(), key=lambda kv: int(kv[0])))
    return "dense int8" if t is None else f"{t}/{t}"


def _key(t) -> str:
    import json

    return "dense_before" if t is None else (json.dumps({str(k): v for k, v in t.items()}) if isinstance(t, dict) else str(t))


def delta_section() -> list[str]:
    data = _load("delta_charlstm-512x2.json")
    if not data:
        return []
    q = data["quality"]
    rows = q["rows"]
    base = rows[0]["loss_nats"]
    nat, port = data.get("latency_native", {}), data.get("latency_portable", {})
    out = ["### Runtime (delta) sparsity in the integer C kernel", "",
           f"charlstm-512x2, int8_integer then `delta` thresholds per layer (in int8 code units; a column of W_hh, "
           f"and of W_ih above layer 0, is skipped when its input changed by less). Machine and command: "
           f"{_machine(data['provenance'])}. Whole test split streamed through the C kernel ({q['test_chars']:,} "
           "characters); MACs counted by the kernel; step time: median of 5 x 200 steps [fastest-slowest median], "
           "batch 1, 1 thread, the dense kernel in the same run; `native` = this CPU's AVX512-VNNI path, `portable` "
           "= the plain-C build (-O2). Load average was high during timing: latency is indicative.", "",
           "| thresholds L0/L1 | test nats/char | vs int8 | delta-matrix MACs skipped | step MACs run | native ms | "
           "portable ms |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        t = r["threshold"]
        d = r.get("delta") or {}
        out.append(f"| {_thr(t)} | {r['loss_nats']:.4f} | {100 * (r['loss_nats'] - base) / base:+.2f}% | "
                   f"{d.get('skipped_fraction', 0):.1%} | {d.get('step_macs_fraction', 1):.1%} | "
                   f"{ms_cell(nat.get(_key(t)), 4)} | {ms_cell(port.get(_key(t)), 3)} |")
    c = data["chosen"]
    out += ["", f"Chosen at <= +1 % loss: thresholds {_thr(c['threshold'])}, {c['loss_nats']:.4f} "
            f"({100 * (c['loss_nats'] - base) / base:+.2f}%), {c['skipped_fraction']:.1%} of the delta-matrix MACs skipped. "
            "On this CPU's VNNI path the delta step is slower than the dense one at every threshold (a transmitted "
            "column costs about 2-3x a dense MAC there); the portable build gains.", ""]
    for name in ("Airline", "solar"):
        f = _load(f"delta_forecast_{name}.json")
        if not f:
            continue
        fc = f["forecast"]
        frows = fc["rows"]
        dense = frows[0]["mse"]
        out += [f"Forecasting, aeon's {name}: {fc['model']}, window {fc['window']}, horizon {fc['horizon']}, trained "
                f"{fc['training']['steps']} steps here ({fc['training']['wall_s']:.0f} s), int8_integer; test MSE in "
                f"scaled units over {frows[0]['windows']} windows (too few for small changes to mean anything); "
                f"float model {fc['float_test']['mse']:.4f}. {_machine(f['provenance'])}.", "",
                "| threshold | test MSE | vs int8 | delta-matrix MACs skipped |", "|---|---:|---:|---:|"]
        for r in frows:
            d = r.get("delta") or {}
            out.append(f"| {'dense int8' if r['threshold'] is None else r['threshold']} | {r['mse']:.4f} | "
                       f"{100 * (r['mse'] - dense) / dense:+.1f}% | {d.get('skipped_fraction', 0):.1%} |")
        out.append("")
    return out


def small_models_section(model: str = "charlstm-512x2") -> list[str]:
    """Issue 12: every way to reach <= 1.1 M parameters from `model`, one fine-tuning budget."""
    data = _load(f"small_1p1m_{model}.json")
    if not data:
        return []
    from table_parts import noise_band, stage_chain

    ref = next((r for r in data["rows"] if r.get("reference")), None)
    band = noise_band(model)
    out = [f"### {model} at <= 1.1 M parameters: structured pruning, low-rank, LSTMP, distilled students", "",
           f"Machine and command: {_machine(data['provenance'])}.", "",
           "Every compressed row gets the same fine-tuning after its cut: 1,500 steps, AdamW lr 1e-3, batch 32 x 64 "
           "characters, dropout 0.1, distillation from the uncompressed 512x2 (loss = 0.5 KD + 0.5 CE, T = 2), best "
           "validation checkpoint kept (the recipes are in benchmarks/recipes/small-*.yaml). The dense 256x2 row is the reference model trained from scratch "
           "(not fine-tuned here). Test loss: whole test split, batch 1. Step latency is not shown: these runs "
           "were measured while other jobs loaded the 2 cores (load average 5-12) and the uncompressed model's own "
           "step varied 2.5x between runs. Compute: this CPU, 1 thread, shared (wall times are upper bounds). "
           f"{noise_sentence(model)}", "",
           "| recipe | stages | params | artifact bytes | test nats/char | vs dense 256x2 | compute |",
           "|---|---|---:|---:|---:|---:|---|"]
    rows = sorted(data["rows"], key=lambda r: r["test_loss_nats"])
    for r in rows:
        comp = r.get("compute") or {}
        cs = "; ".join(f"{c['stage']} {c['run_s']:.0f} s" + (f", {c['train_steps']} steps" if c.get("train_steps") else "")
                       for c in comp.get("stages", [])) or "trained elsewhere (../shared/models)"
        ch = r["test_loss_nats"] - ref["test_loss_nats"] if ref else 0.0
        mark = "~ " if band is not None and r is not ref and abs(ch) < band else ""
        out.append(f"| {r['recipe']} | {stage_chain(r) if r.get('pipeline_report') else '-'} | {r['params']:,} | "
                   f"{r['artifact_bytes']:,} | {r['test_loss_nats']:.4f} | "
                   + ("reference | " if r is ref else f"{mark}{ch:+.4f} ({100 * ch / ref['test_loss_nats']:+.2f}%) | ")
                   + f"{cs} |")
    best = next((r for r in rows if r is not ref), None)
    if best and ref:
        ok = best["test_loss_nats"] < ref["test_loss_nats"]
        out += ["", f"Goal (the best compressed row below the dense 256x2's {ref['test_loss_nats']:.4f}): best is "
                f"{best['recipe']} at {best['test_loss_nats']:.4f}: {'met' if ok else '**missed**'} with this "
                "fine-tuning budget."]
    return out + [""]
