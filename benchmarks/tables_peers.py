"""BENCHMARKS.md section "Against the tools people use" (issue 21) from every benchmarks/results/peers_*.json.

Each peer script (benchmarks/peers/*_bench.py, run in its own venv by benchmarks/peers_bench.py) writes
peers_<peer>.json in the row schema of benchmarks/peers/peer_common.py; LiteRT's char-model rows predate
that schema and are mapped onto it in `_litert_row` (the one place that knows their keys). rnnslim's rows
come from reference_outputs.py as the peer runs called it (the richest of those records per model:
int8 C kernel, weight-only GPTQ int4/3/2, deploy and search recipes, and the prefix's noise band).
Every ratio against rnnslim is from the alternating rounds of that peer's own run. Targets and "where
the peer wins" are computed here from the JSON, never typed.
"""

from __future__ import annotations

from common import RESULTS
from table_parts import load_result, machine_line

CHAR_MODELS = ("charlstm-256x2", "charlstm-512x2", "chargru-512x2")
CLASSIFIERS = ("basicmotions-lstm32", "japanesevowels-lstm48", "japanesevowels-gru64")
LOW_BIT_MAX_SHARE = 0.5  # a skips_recurrent "4-bit" row over this share of the fp32 file kept its recurrent
# matrices float32 (~100 %; int8 storage of 4-bit values is 25 %), so it is not a <= 4-bit model
TARGET_SPEEDUP = 3.0  # issue 21: ">= 3x faster than the fastest peer runtime at batch 1 on this CPU"
FLOAT_MODES = ("float", "fp32")
USABLE = ("ok", "skips_recurrent")  # a model the user gets and can run (skips_recurrent: its RNN stayed float)
PEER_VERSION_KEYS = ("python", "numpy", "safetensors")  # not worth a column: every venv has them
LITERT_NAMES = {("layer", "float"): "fused {cell} layer, float", ("step", "float"): "step model, float",
                ("layer", "int8"): "fused {cell} layer, full-integer int8 (the microcontroller path)",
                ("layer", "16x8"): "fused {cell} layer, 16x8", ("layer", "dynamic"): "fused {cell} layer, dynamic",
                ("step", "int8"): "step model, full-integer int8", ("step", "16x8"): "step model, 16x8",
                ("step", "dynamic"): "step model, dynamic (XNNPACK)"}


# ---- reading: every peer's rows in one shape -----------------------------------------------------------

def _rounds_key(il: dict) -> str:
    return "peer_ms" if "peer_ms" in il["rounds"][0] else "litert_ms"


def _ratio(run: dict, variant: str, key: str | None = None) -> tuple[float, float, float] | None:
    """(median, lowest, highest per-round) peer ms / rnnslim int8 ms of `variant` in the run's own rounds."""
    il = run.get("interleaved_latency") or {}
    if not il.get("rounds"):
        return None
    key = key or _rounds_key(il)
    per = [r[key][variant] / r["rnnslim_int8_c_kernel_ms"] for r in il["rounds"] if variant in r.get(key, {})]
    if not per:
        return None
    peer_med = (il.get("peer_median_ms") or il.get("litert_median_ms") or {}) if key != "litert_invoke_only_ms" \
        else il["litert_invoke_only_median_ms"]
    return peer_med[variant] / il["rnnslim_int8_median_ms"], min(per), max(per)


def _litert_row(run: dict, r: dict, cell: str) -> dict:
    """A litert_bench.py char-model row in peer_common's schema."""
    err = r.get("error")
    outcome = ("crashed" if "crash" in err else "refused") if err else "ok"
    if r.get("streaming") is False and not err:
        outcome, err = "does_not_run", f"not streaming: {r.get('note', '')} ({r['tflite_bytes']:,} B)"
    arena = ((r.get("tflm") or {}).get("arena_bytes") or {}).get("total")
    inv = _ratio(run, r["variant"], "litert_invoke_only_ms") if outcome == "ok" else None
    return {"variant": LITERT_NAMES.get((r["api"], r["mode"]), r["variant"]).format(cell=cell), "peer": "LiteRT",
            "api": f"TFLite converter, {r['api']} model, {r['mode']}", "mode": r["mode"],
            "bits": 32 if r["mode"] == "float" else 8, "outcome": outcome, "error": err,
            "loss_nats": r.get("loss_nats"), "bytes": r.get("tflite_bytes") or r.get("bytes"), "bytes_how": ".tflite",
            "ram_bytes": arena, "ram_how": _tflm_ram(r), "latency_ms": (r.get("latency") or {}).get("median_ms"),
            "ratio": _ratio(run, r["variant"]) if outcome == "ok" else None,
            "note": f"invoke() alone: {_ratio_words(inv, 'LiteRT')}" if inv else r.get("note")}


def _tflm_ram(r: dict) -> str:
    t = r.get("tflm") or {}
    if t.get("runs"):
        return "TFLite Micro arena"
    return f"TFLite Micro does not run it: {t['error']}" if t.get("error") else ""


def _common_row(run: dict, r: dict) -> dict:
    out = {k: r.get(k) for k in ("variant", "peer", "api", "mode", "bits", "outcome", "error", "loss_nats",
                                 "accuracy", "bytes", "bytes_how", "note", "hidden")}
    out["outcome"] = out["outcome"] or "ok"
    arena = ((r.get("tflm") or {}).get("arena_bytes") or {}).get("total")
    out.update({"ram_bytes": r.get("ram_bytes", arena), "ram_how": r.get("ram_how") or _tflm_ram(r),
                "latency_ms": (r.get("latency") or {}).get("median_ms"),
                "ratio": _ratio(run, r["variant"]) if out["outcome"] in USABLE else None})
    return out


def peer_rows(run: dict, model: str) -> list[dict]:
    """The run's rows in one shape; a row this table cannot read becomes a row saying so (the section
    still renders for every other peer)."""
    cell, out = "GRU" if "gru" in model else "LSTM", []
    for r in run.get("rows", []):
        try:
            out.append(_common_row(run, r) if "outcome" in r else _litert_row(run, r, cell))
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
            out.append({"variant": str(r.get("variant")), "peer": str(r.get("peer")), "api": r.get("api"),
                        "outcome": "unreadable", "error": f"tables_peers.py could not read this row: "
                                                          f"{type(e).__name__}: {e}", "ratio": None})
    return out


def load_runs() -> dict[str, dict[str, dict]]:
    """peer file stem -> model -> run, every benchmarks/results/peers_*.json."""
    return {p.stem.removeprefix("peers_"): load_result(p.name) or {} for p in sorted(RESULTS.glob("peers_*.json"))}


def reference(runs: dict[str, dict]) -> dict | None:
    """rnnslim's record for a model among the peers' runs: of those on the longest test prefix, the latest with
    the noise band (reference_outputs.py with its extras), else the one with the most rows."""
    refs = [r["rnnslim"] | {"_date": r.get("date", "")} for r in runs.values() if r.get("rnnslim")]
    return max(refs, key=lambda ref: (ref.get("test_chars") or 0, "noise_band" in ref,
                                      ref["_date"] if "noise_band" in ref else "", len(ref["rows"])), default=None)


def with_added_rows(model: str, ref: dict | None) -> dict | None:
    """ref with the rows reference_added_rows.py computed later for the same model and prefix (loss and
    bytes only), each marked `added` with its provenance; ref itself is not changed."""
    if not ref:
        return ref
    added = (load_result("reference_added_rows.json") or {}).get(model, {}).get(str(ref.get("test_chars")))
    if not added:
        return ref
    have = {r["variant"] for r in ref["rows"]}
    how = f"{added['date'][:10]}, commit {str(added.get('git_commit'))[:10]}, `{added['command']}`"
    return ref | {"rows": ref["rows"] + [r | {"added": how} for r in added["rows"] if r["variant"] not in have]}


def _reference_command(ref: dict) -> str:
    """reference_outputs.py's command, relative, without its temporary --out (peer_common's record of it
    drops the --model flag: put it back)."""
    cmd = ref.get("command", "").split(" --out ")[0].replace("/work/main/", "")
    return cmd if " --model " in cmd else cmd.replace("reference_outputs.py ", "reference_outputs.py --model ", 1)


# ---- cells ------------------------------------------------------------------------------------------------

def _ratio_words(ratio: tuple[float, float, float] | None, peer: str) -> str:
    if not ratio:
        return "-"
    median, lo, hi = ratio
    band = f"rounds {lo:.2f}-{hi:.2f}x"
    if lo <= 1 <= hi:
        return f"equal within the rounds' spread ({median:.2f}x; {band})"
    return f"rnnslim {median:.2f}x faster ({band})" if median > 1 else f"{peer} {1 / median:.2f}x faster ({band})"


def _metric(row: dict, classifier: bool) -> float | None:
    return row.get("accuracy") if classifier else row.get("loss_nats", row.get("test_loss_nats"))


def _metric_cell(value: float | None, ref: float, classifier: bool) -> str:
    if value is None:
        return "-"
    if classifier:
        return f"{100 * value:.1f} % ({100 * (value - ref):+.1f} pt)"
    return f"{value:.4f} ({value - ref:+.4f})"


def _ours(ref: dict) -> tuple[dict, dict]:
    """(rnnslim fp32 row, rnnslim int8 C kernel row)."""
    rows = ref["rows"]
    return next(r for r in rows if "fp32" in r["variant"]), next(r for r in rows if "int8 fully integer" in r["variant"])


def _ram(row: dict) -> int | None:
    c = row.get("c_export")
    return c["scratch_bytes"] + c["state_bytes"] if c else None


def _current_ram(model: str, int8: dict) -> None:
    """Replace the int8 row's C scratch + state by benchmarks/results/kernel_ram.json's figure for `model`
    when that file has one: the chunked step (kernel_ram.py, bit-identical results) made the scratch far
    smaller after the peer runs recorded it; the old figure is kept in the row as c_export_recorded."""
    try:
        now = load_result("kernel_ram.json")["result"]["models"][model]
    except (OSError, KeyError, TypeError, ValueError):
        return
    c = int8.get("c_export")
    if c and now.get("scratch_bytes") is not None:
        new = c | {"scratch_bytes": now["scratch_bytes"], "state_bytes": now["state_bytes"]}
        if new != c:
            int8["c_export_recorded"], int8["c_export"] = dict(c), new


def _current_flash(model: str, int8: dict) -> None:
    """Replace the int8 row's C arrays bytes by benchmarks/results/kernel_flash.json's figure for `model` when
    that file has one: half sigmoid / tanh tables and VNNI-only row corrections (kernel_flash.py, bit-identical
    results) made the flash smaller after the peer runs recorded it; the recorded figure is kept as
    c_export_flash_recorded, and only a record whose old count equals it is applied (same shapes)."""
    try:
        now = load_result("kernel_flash.json")["result"]["models"][model]
    except (OSError, KeyError, TypeError, ValueError):
        return
    c = int8.get("c_export")
    if c and now.get("old_const_bytes") == c.get("const_bytes") and now["const_bytes"] != c["const_bytes"]:
        int8["c_export_flash_recorded"] = c["const_bytes"]
        int8["c_export"] = c | {"const_bytes": now["const_bytes"], "vnni_bytes": now.get("vnni_bytes", 0)}


def _rnnslim_line(r: dict, ref: dict, fp32: dict, int8: dict, classifier: bool) -> str:
    if r.get("outcome") == "not_run":
        return f"| {r['variant']} | rnnslim | not run: {r['error']} | | | | |"
    c = r.get("c_export")
    size = f"{r['artifact_bytes']:,} (C arrays {c['const_bytes']:,})" if c else f"{r['artifact_bytes']:,}"
    if r.get("c_export_flash_recorded"):
        vnni = f", + {c['vnni_bytes']:,} on an AVX-512 VNNI build" if c.get("vnni_bytes") else ""
        size = (f"{r['artifact_bytes']:,} (C arrays {c['const_bytes']:,}{vnni}: kernel_flash.json; "
                f"{r['c_export_flash_recorded']:,} when the peer ran)")
    ram = f"C scratch + state {_ram(r):,}" if c else "-"
    if r.get("c_export_recorded"):
        ram += f" (kernel_ram.json; {_ram({'c_export': r['c_export_recorded']}):,} when the peer ran)"
    lat, ref_lat = r.get("latency") or {}, int8.get("latency") or {}
    x = lat["median_ms"] / ref_lat["median_ms"] if lat and ref_lat else None
    runs_in = r.get("runs_in", "C kernel")
    if r.get("added"):
        return (f"| {r['variant']} (added after the peer runs) | rnnslim | "
                f"{_metric_cell(_metric(r, classifier), _metric(fp32, classifier), classifier)} | {size} | {ram} | - | "
                f"not timed: loss and bytes on the same prefix, {r['added']} |")
    ratio = "-" if x is None else "1.00x (each peer's ratio is against it in that peer's own rounds)" if r is int8 else (
        f"{x:.2f}x the int8 C kernel's time (runs in {runs_in}; same reference run)" if x >= 1 else
        f"{1 / x:.2f}x faster than the int8 C kernel ({runs_in}; same reference run)")
    name = f"**{r['variant']}**" if r is int8 else r["variant"]
    return (f"| {name} | rnnslim | {_metric_cell(_metric(r, classifier), _metric(fp32, classifier), classifier)} | "
            f"{size} | {ram} | {1000 * lat['median_ms']:.1f} | {ratio} |" if lat else
            f"| {name} | rnnslim | {_metric_cell(_metric(r, classifier), _metric(fp32, classifier), classifier)} | "
            f"{size} | {ram} | - | - |")


def _peer_line(r: dict, fp32: dict, classifier: bool) -> str:
    api = str(r.get("api") or "").replace("|", "/")
    said = f"{r['outcome']}: {str(r.get('error') or '').replace('|', '/')}"
    if r["outcome"] not in USABLE or _metric(r, classifier) is None:
        return f"| {r['variant']} | {api} | {said} | | | | |"
    ram = f"{r['ram_how']} {r['ram_bytes']:,}" if r.get("ram_bytes") else (r.get("ram_how") or "-").replace("|", "/")
    lat = f"{1000 * r['latency_ms']:.1f}" if r.get("latency_ms") else "-"
    note = f"; {r['note']}" if r.get("note") and r["peer"] == "LiteRT" and "invoke" in str(r["note"]) else ""
    size = f"{r['bytes']:,} ({r.get('bytes_how') or '?'})" if r.get("bytes") else "-"
    name = r["variant"] if r["outcome"] == "ok" else f"{r['variant']} (**{r['outcome']}**)"
    note += f"; {said}" if r["outcome"] != "ok" else ""
    if r.get("prefix_chars"):
        fp32 = r.get("own_fp32") or fp32
        note += (f"; measured on the first {r['prefix_chars']:,} test characters only (loss against rnnslim fp32 on "
                 "the same characters), so left out of the targets")
    return (f"| {name} | {api} | "
            f"{_metric_cell(_metric(r, classifier), _metric(fp32, classifier), classifier)} | {size} | {ram} | "
            f"{lat} | {_ratio_words(r['ratio'], r['peer'])}{note} |")


def _provenance(run: dict, ref: dict | None) -> dict:
    m = run.get("machine", {})
    load = [round(x, 2) for x in m.get("load_avg_start", m.get("load_avg", []))]
    return {"machine": {"cpu_model": m.get("cpu"), "logical_cpus": m.get("cores"),
                        "torch_version": (ref or {}).get("torch"), "onnxruntime_version": "not used",
                        "load_average": load},
            "date": run.get("date"), "git_commit": run.get("git_commit"), "command": run.get("command")}


def _versions(run: dict) -> str:
    v = run.get("versions", {})
    return ", ".join(f"{k} {x}" for k, x in v.items() if k not in PEER_VERSION_KEYS and x)


# ---- targets and wins ----------------------------------------------------------------------------------------

def _band(ref: dict, classifier: bool) -> tuple[float | None, str]:
    if classifier:
        n = ref.get("test_sequences")
        return (1 / n, f"one test sequence ({100 / n:.2f} pt)") if n else (None, "not known")
    nb = ref.get("noise_band")
    if not nb:
        return None, "not measured in this run (reference_outputs.py before the noise band)"
    return nb["noise_band"], f"{nb['noise_band']:.4f} nats/char ({nb['how']})"


def _better(a: float, b: float, classifier: bool) -> float:
    """How much better a is than b (positive: a better; float32 accuracies equal to 1e-6 are equal)."""
    gap = a - b if classifier else b - a
    return 0.0 if classifier and abs(gap) < 1e-6 else gap


def _deploy_bytes(int8: dict) -> tuple[int, str]:
    """rnnslim int8's smallest deployable file and which it is: the save_model artifact (IntegerRunner) or
    export_c's C arrays (the flash of a device build, the peer's .tflite counterpart). Both run the same
    integer model bit for bit; the C arrays are smaller where export_c folds the embedding into a per-token
    table of layer 0's input terms (V << E), larger where the per-row constants are not folded."""
    art, c = int8["artifact_bytes"], (int8.get("c_export") or {}).get("const_bytes")
    if c and c < art:
        return c, f"the C arrays; save_model artifact {art:,} B"
    return art, "save_model artifact" + (f"; C arrays {c:,} B" if c else "")


def targets(model: str, rows: list[dict], ref: dict, classifier: bool) -> list[str]:
    fp32, int8 = _ours(ref)
    band, band_text = _band(ref, classifier)
    quant = [r for r in rows if r["outcome"] in USABLE and r.get("mode") not in FLOAT_MODES
             and _metric(r, classifier) is not None]
    out = []
    if quant:
        # the best metric; among equals the smallest file (the strongest competitor at equal bytes)
        best = min(quant, key=lambda r: (round(-_better(_metric(r, classifier), 0, classifier), 6), r.get("bytes") or 0))
        gap = _better(_metric(int8, classifier), _metric(best, classifier), classifier)
        size, size_what = _deploy_bytes(int8)
        small = size <= (best.get("bytes") or 0)
        within = band is not None and gap >= -band
        verdict = "met" if small and within else "**MISSED**" if band is not None else "not checked"
        out.append(f"- Accuracy at equal or smaller bytes: {verdict}. Best peer row: {best['variant']} "
                   f"({best['peer']}), {_metric_cell(_metric(best, classifier), _metric(fp32, classifier), classifier)} "
                   f"at {best.get('bytes') or 0:,} B; rnnslim int8 "
                   f"{_metric_cell(_metric(int8, classifier), _metric(fp32, classifier), classifier)} at "
                   f"{size:,} B ({size_what}; {'no larger' if small else 'LARGER'}); noise band {band_text}.")
    timed = [r for r in rows if r.get("ratio")]
    if timed:
        fastest = min(timed, key=lambda r: r["ratio"][0])
        verdict = "met" if fastest["ratio"][1] >= TARGET_SPEEDUP else "**MISSED**"
        out.append(f"- Speed (>= {TARGET_SPEEDUP:.0f}x the fastest peer runtime): {verdict}: the fastest peer row "
                   f"is {fastest['variant']} ({fastest['peer']}): {_ratio_words(fastest['ratio'], fastest['peer'])}.")
    if not classifier:
        out += _low_bit_target(rows, ref, band)
    return out


def _low_bit_target(rows: list[dict], ref: dict, band: float | None) -> list[str]:
    """At <= 4 bits: for every peer row of <= 4-bit weights, rnnslim's best <= 4-bit row no larger than it
    has lower loss. A row its tool labels 4-bit that skipped the recurrent layer (outcome skips_recurrent)
    and whose file is over LOW_BIT_MAX_SHARE of the fp32 model's (torchao's configs that quantize Linear /
    Embedding only and leave the recurrent matrices float32) is not a <= 4-bit model: it is listed as not
    counted, with its size and the tool's message, rather than compared. A row that quantized the recurrent
    weights to 4 bits but stores them wider (Brevitas' QONNX) still counts."""
    low = [r for r in ref["rows"] if r.get("bits") and r["bits"] <= 4 and "test_loss_nats" in r]
    low += [r for r in ref["rows"] if r.get("kind") == "search" and "test_loss_nats" in r]
    labelled = [r for r in rows if r["outcome"] in USABLE and r.get("loss_nats") is not None and r.get("bytes")
                and (r.get("bits") or 32) <= 4]
    fp32_bytes = _ours(ref)[0]["artifact_bytes"]
    peers = [r for r in labelled if r["outcome"] != "skips_recurrent" or r["bytes"] <= LOW_BIT_MAX_SHARE * fp32_bytes]
    left = [f"{r['variant']} ({r['peer']}, {r['bytes']:,} B = {r['bytes'] / fp32_bytes:.0%} of the fp32 model's "
            f"{fp32_bytes:,} B{': ' + r['error'] if r['outcome'] == 'skips_recurrent' and r.get('error') else ''})"
            for r in labelled if r not in peers]
    not_counted = (" Not counted as <= 4-bit rows (labelled 4-bit by their tool, which left the recurrent "
                   f"matrices float: each file is over {LOW_BIT_MAX_SHARE:.0%} of the fp32 model's; their loss is in "
                   "\"Where the peer wins\"): " + "; ".join(left) + ".") if left else ""
    if not low or not peers:
        return ["- At <= 4 bits, lower loss than every peer row at equal bytes: not checked (no rnnslim "
                "<= 4-bit rows in this run)." if not low else "- At <= 4 bits: no peer row of <= 4-bit weights that "
                "runs (nothing to compare)." + not_counted]
    misses = []
    for p in peers:
        fit = [r for r in low if r["artifact_bytes"] <= p["bytes"]]
        if not fit:
            misses.append(f"{p['variant']} ({p['peer']}, {p['bytes']:,} B: smaller than every rnnslim <= 4-bit row)")
            continue
        ours = min(fit, key=lambda r: r["test_loss_nats"])
        if ours["test_loss_nats"] >= p["loss_nats"]:
            within = band is not None and ours["test_loss_nats"] - p["loss_nats"] <= band
            misses.append(f"{p['variant']} ({p['peer']}, {p['loss_nats']:.4f} at {p['bytes']:,} B vs "
                          f"{ours['variant']} {ours['test_loss_nats']:.4f} at {ours['artifact_bytes']:,} B"
                          f"{': equal within the noise band' if within else ''})")
    equal = sum("equal within the noise band" in m for m in misses)
    verdict = "met" if not misses else "**MISSED**"
    return [f"- At <= 4 bits, lower loss than every peer row of <= 4-bit weights, at equal or smaller bytes: "
            f"{verdict} (lower than {len(peers) - len(misses)} of {len(peers)} peer rows; equal within the noise "
            f"band: {equal}; worse: {len(misses) - equal})" + (": " + "; ".join(misses) if misses else "") + "."
            + not_counted]


def _matched(r: dict, rows: list[dict]) -> dict | None:
    """rnnslim's row of the same peer run made the same way (a peer JSON may carry rnnslim rows at the same
    settings, e.g. prune_units at the same units and fine-tuning budget): same mode, bits, hidden sizes and
    the same last clause of the variant ("one-shot", "fine-tuned 200 steps")."""
    tail = r["variant"].split(", ")[-1]
    return next((x for x in rows if x.get("peer") == "rnnslim" and x.get("source") == r.get("source")
                 and x.get("mode") == r.get("mode") and x.get("bits") == r.get("bits")
                 and x.get("hidden") == r.get("hidden") and x["variant"].split(", ")[-1] == tail), None)


def _same_bits(r: dict, ref: dict) -> dict | None:
    """rnnslim's row at the same weight width as a <= 4-bit peer row (GPTQ int4 / int3 / int2), if any: of
    several (int4 g64 and per-row), the lowest loss among those no larger than the peer's file, else the
    smallest."""
    bits = r.get("bits")
    if not bits or bits > 4:
        return None
    same = [x for x in ref["rows"] if x.get("bits") == bits and "test_loss_nats" in x]
    fit = [x for x in same if r.get("bytes") and x["artifact_bytes"] <= r["bytes"]]
    if fit:
        return min(fit, key=lambda x: x["test_loss_nats"])
    return min(same, key=lambda x: x["artifact_bytes"], default=None)


def wins(model: str, rows: list[dict], ref: dict, classifier: bool) -> list[str]:
    """Where a peer's row beats rnnslim in a column: rnnslim's row made the same way in the same run where
    there is one (_matched), else (quantized peer rows) rnnslim's row of the same weight width at <= 4 bits
    (_same_bits) or its int8; RAM and speed always against the int8 C kernel."""
    _, int8 = _ours(ref)
    ram, out = _ram(int8), []
    band, _ = _band(ref, classifier)
    for r in (r for r in rows if r["outcome"] in USABLE and r.get("peer") != "rnnslim"):
        who = f"{model}, {r['variant']} ({r['peer']}{'' if r['outcome'] == 'ok' else ', ' + r['outcome']})"
        twin = _matched(r, rows)
        if twin is not None:
            gap = _better(_metric(r, classifier) or 0, _metric(twin, classifier) or 0, classifier)
            if _metric(r, classifier) is not None and _metric(twin, classifier) is not None and gap > 0:
                noise = " (within the noise band: equal)" if band is not None and gap <= band else ""
                unit = f"{100 * gap:.1f} pt" if classifier else f"{gap:.5f} nats/char"
                out.append(f"- {'Accuracy' if classifier else 'Loss'}, {who}: {unit} better than {twin['variant']} "
                           f"in the same run ({_metric(r, classifier):.4f} vs {_metric(twin, classifier):.4f}){noise}.")
            continue
        if r.get("mode") in FLOAT_MODES:
            continue
        if r.get("ram_bytes") and ram and r["ram_bytes"] < ram:
            out.append(f"- RAM, {who}: {r['ram_how']} {r['ram_bytes']:,} B, {ram / r['ram_bytes']:.1f}x smaller than "
                       f"rnnslim's C scratch + state {ram:,} B.")
        ours = _same_bits(r, ref) or int8  # a 4-bit peer row against rnnslim's 4-bit row, else its int8
        name = "int8" if ours is int8 else ours["variant"].removeprefix("rnnslim ")
        smaller = [f"{100 * (1 - r['bytes'] / b):.1f} % smaller than rnnslim {name}'s {what} ({b:,} B)"
                   for what, b in (("artifact", ours["artifact_bytes"]),
                                   ("C arrays", (ours.get("c_export") or {}).get("const_bytes")))
                   if b and r.get("bytes") and r["bytes"] < b]
        m, theirs = _metric(r, classifier), _metric(ours, classifier)
        if smaller:
            worse = (m is not None and theirs is not None and _better(theirs, m, classifier) > (band or 0))
            at = (f", at a {'lower accuracy' if classifier else 'higher loss'} ({m:.4f} vs rnnslim {name}'s "
                  f"{theirs:.4f}, beyond the noise band)") if worse else ""
            out.append(f"- Bytes, {who}: {r['bytes']:,} B, " + " and ".join(smaller) + at + ".")
        if m is not None and theirs is not None and _better(m, theirs, classifier) > 0:
            gap = _better(m, theirs, classifier)
            unit = f"{100 * gap:.1f} pt higher accuracy" if classifier else f"{gap:.5f} nats/char lower loss"
            noise = " (within the noise band: equal)" if band is not None and gap <= band else ""
            sizes = f" at {r['bytes']:,} B vs {ours['artifact_bytes']:,} B" if r.get("bytes") else ""
            out.append(f"- {'Accuracy' if classifier else 'Loss'}, {who}: {unit} than rnnslim {name}{sizes}{noise}.")
        if r.get("ratio") and r["ratio"][0] < 1:
            out.append(f"- Speed, {who}: {_ratio_words(r['ratio'], r['peer'])}.")
    return out


# ---- the section ---------------------------------------------------------------------------------------------

def model_table(model: str, by_peer: dict[str, dict]) -> tuple[list[str], list[str], list[str]]:
    """(table lines, target lines, win lines) of one model."""
    ref = with_added_rows(model, reference(by_peer))
    if ref is None:
        return [], [], []
    classifier = ref.get("kind") == "classifier"
    fp32, int8 = _ours(ref)
    _current_ram(model, int8)
    _current_flash(model, int8)
    rows = [_on_prefix(r | {"source": peer}, run, ref, classifier)
            for peer, run in by_peer.items() for r in peer_rows(run, model)]
    comparable = [r for r in rows if "prefix_chars" not in r]  # shorter-prefix runs: checked below against
    # rnnslim's rows of their own run (the same characters), each under its own label
    theirs = [r for r in comparable if r.get("peer") != "rnnslim"]  # a peer JSON's own rnnslim rows are not a peer
    what = f" ({ref['what']})" if classifier else ""
    out = [f"### {model}{what}", ""]
    for peer, run in by_peer.items():
        out.append(f"- {peer}: {machine_line(_provenance(run, ref))}; {_versions(run) or 'versions not recorded'}.")
    test = next((run.get("test_text") for run in by_peer.values() if run.get("test_text")
                 and run.get("test_chars") == ref.get("test_chars")),
                next((run.get("test_text") for run in by_peer.values() if run.get("test_text")), ""))
    metric = "accuracy (vs rnnslim fp32)" if classifier else "loss nats/char (vs rnnslim fp32)"
    unit = "us/sequence" if classifier else "us/step"
    out += [f"- rnnslim's rows: `{_reference_command(ref)}`; fp32 (torch) "
            f"{_metric_cell(_metric(fp32, classifier), _metric(fp32, classifier), classifier).split(' (')[0]}. "
            f"Test data: {test}.", "",
            f"| variant | API | {metric} | bytes | RAM bytes | {unit} | time vs rnnslim int8 |",
            "|---|---|---|---:|---|---:|---|"]
    out += [_rnnslim_line(r, ref, fp32, int8, classifier) for r in ref["rows"] if r is not fp32]
    out += [_peer_line(r, fp32, classifier) for r in rows]
    tgt, win = targets(model, theirs, ref, classifier), wins(model, comparable, ref, classifier)
    for peer, run in by_peer.items():  # a shorter-prefix run against rnnslim's rows of that same run
        own, mine = with_added_rows(model, run.get("rnnslim")), [r for r in rows if r.get("source") == peer
                                                                  and "prefix_chars" in r]
        if not mine or not own or not own.get("rows"):
            continue
        label = f"on the first {mine[0]['prefix_chars']:,} test characters ({peer}'s run, against rnnslim's rows of that run)"
        prefix_rows = [{k: v for k, v in r.items() if k not in ("prefix_chars", "own_fp32")} for r in mine]
        tgt += [f"- {label}:"] + ["  " + line for line in targets(model, prefix_rows, own, classifier)]
        short = f"first {mine[0]['prefix_chars']:,} test characters, {peer}'s run"
        win += [line.replace(f", {model}, ", f", {model} ({short}), ", 1)
                for line in wins(model, prefix_rows, own, classifier)]
    return out + [""], tgt, win


def _on_prefix(r: dict, run: dict, ref: dict, classifier: bool) -> dict:
    """A row of a run measured on a shorter test prefix than rnnslim's reference gets `prefix_chars` and that
    run's own rnnslim fp32 row (`own_fp32`): its loss is compared with that, and its targets and wins are
    checked against that run's rnnslim rows (model_table), not the longer prefix's."""
    n, want = run.get("test_chars"), ref.get("test_chars")
    if classifier or not n or not want or n == want:
        return r
    own = run.get("rnnslim")
    return r | {"prefix_chars": n, "own_fp32": _ours(own)[0] if own and own.get("rows") else None}


def peers_section() -> list[str]:
    runs = load_runs()
    models = {m for by_model in runs.values() for m in by_model}
    order = [m for m in CHAR_MODELS + CLASSIFIERS if m in models] + sorted(models - set(CHAR_MODELS + CLASSIFIERS))
    if not order:
        return []
    peers = sorted(runs)
    out = ["## Against the tools people use (issue 21)", "",
           f"rnnslim next to {', '.join(peers)} on the same trained weights and the same test data, each peer in its "
           "own venv (`benchmarks/peers_bench.py` runs them all; scripts, venvs and what each peer made of LSTM / "
           "GRU: `benchmarks/peers/README.md`). Char models: loss on the first 20,000 test characters, one stream "
           "at batch 1, state carried; classifiers: accuracy on the aeon test set. Bytes: the artifact each tool "
           "gives a user to deploy (what it is in brackets); rnnslim's save_model artifact and, for integer models, "
           "the C arrays export_c writes (flash; the targets count rnnslim int8 at the smaller of the two, both run "
           "the same integer model bit for bit). RAM: rnnslim's C scratch + state; TFLite Micro's arena "
           "(RecordingMicroAllocator on this 64-bit host) where it runs the model. Latency: a streaming step "
           "(char models) or one whole sequence (classifiers) at batch 1, 1 thread; `time vs rnnslim int8` is "
           "the peer's time over rnnslim's int8 C kernel in the alternating rounds of that peer's own run (the "
           "median ratio, the per-round range; a range containing 1 reads equal). rnnslim's other rows are timed "
           "in the reference run itself (C kernel for integer models, torch otherwise) against its int8 row; a row "
           "marked \"added after the peer runs\" (`benchmarks/peers/reference_added_rows.py`) has loss and bytes "
           "on the same prefix and no time. A "
           "peer that refused, crashed, skipped the recurrent layer or was not installed is a row with its "
           "message.", ""]
    targets_out, wins_out = [], []
    for model in order:
        try:
            table, tgt, win = model_table(model, {p: runs[p][model] for p in peers if model in runs[p]})
        except (KeyError, TypeError, ValueError, ZeroDivisionError, StopIteration) as e:  # one bad JSON must
            # not stop BENCHMARKS.md: the section says which model could not be rendered and why
            table, tgt, win = [f"### {model}", "", f"tables_peers.py could not render this model: "
                               f"{type(e).__name__}: {e}", ""], [], []
        out += table
        targets_out += [f"**{model}**", ""] + (tgt or ["- no peer rows yet."]) + [""]
        wins_out += win
    out += ["### The issue's targets, per model", ""] + targets_out
    out += ["### Where the peer wins", ""] + (wins_out or ["- nowhere in these runs."]) + [""]
    return out
