"""BENCHMARKS.md sections for deployment (issue 8): latency in one run, exported C on targets,
int8 ONNX. Called by make_tables.py; reads only committed JSON in benchmarks/results/."""

from __future__ import annotations

import json

from common import RESULTS
from table_parts import load_result as _load
from table_parts import machine_line as _machine
from table_parts import BEST_TORCH, BEST_TORCH_VARIANTS, STREAM_REF, ms_cell


def _ms(lat: dict | None) -> str:
    return ms_cell(lat, 4)


def _x(s: dict | None) -> str:
    return "-" if not s else f"{s['x']:.2f}x [{s['band'][0]:.2f}-{s['band'][1]:.2f}]"


def _speedup(ref: dict | None, row: dict) -> dict | None:
    """The row's speed-up over `ref` with the band from pairing their extreme medians (as deploy_bench)."""
    if not ref or not ref.get("latency") or not row.get("latency"):
        return None
    b, m = ref["latency"], row["latency"]
    return {"x": b["median_ms"] / m["median_ms"], "band": [min(b["medians_ms"]) / max(m["medians_ms"]),
                                                        max(b["medians_ms"]) / min(m["medians_ms"])]}


def _fastest(rows: list[dict], variants: tuple[str, ...]) -> dict | None:
    cands = [r for r in rows if r.get("variant") in variants and r.get("latency")]
    return min(cands, key=lambda r: r["latency"]["median_ms"]) if cands else None


def deploy_section(model: str) -> list[str]:
    data = _load(f"deploy_{model}.json")
    if not data:
        return []
    r = data["result"]
    refs = {k: v for k, v in r["references"].items() if k != "best torch"}  # best torch: BEST_TORCH, below
    torch_best = _fastest(r["rows"], BEST_TORCH_VARIANTS)
    torch_ao = _fastest(r["rows"], ("torch.ao dynamic int8 (deprecated)",))
    refs["best torch"] = torch_best["variant"] if torch_best else None
    out = [f"### {model}: streaming step, batch 1, 1 thread, every row in one run", "",
           f"Machine and command: {_machine(data['provenance'])}. Copy bandwidth {r['bandwidth_gb_s']:.1f} GB/s "
           f"from DRAM; {STREAM_REF} `x DRAM stream` uses the DRAM copy bandwidth; the weights of these models "
           "fit this CPU's caches, so `x cache stream` uses the copy bandwidth of a buffer of the model's size, "
           f"measured in the same run. Latency: median of {r['timing']['repeats']} medians of "
           f"{r['timing']['steps']} steps [fastest-slowest median]; speed-ups (> 1 = faster) with the band from "
           f"pairing the extreme medians. {BEST_TORCH} fp32 test loss {r['test_loss_fp32']:.4f}; rnnslim losses "
           "are the whole test split through the C kernel.", "",
           "| variant | test loss (change) | ms/step | bytes/step | x DRAM stream | x cache stream | vs ORT int8 dynamic | "
           "vs best torch | vs torch.ao int8 | vs dense int8 kernel |", "|---|---|---|---|---|---|---|---|---|---|"]
    for row in r["rows"]:
        if row.get("status"):
            out.append(f"| {row['variant']} | - | {row['status']} | | | | | | | |")
            continue
        loss = (f"{row['test_loss_nats']:.4f} ({row['test_loss_change_pct']:+.2f}%)"
                if row.get("test_loss_nats") is not None and row.get("test_loss_change_pct") is not None else "-")
        bps = f"{row['bytes_per_step']:,}" if row.get("bytes_per_step") else "-"
        xf = f"{row['x_floor']:.2f}" if row.get("x_floor") else "-"
        xc = f"{row['x_cache_floor']:.2f}" if row.get("x_cache_floor") else "-"
        sp = row.get("speedup", {})
        mine = row.get("kind") == "rnnslim"
        out.append(f"| {row['variant']} | {loss} | {_ms(row.get('latency'))} | {bps} | {xf} | {xc} | "
                   f"{_x(sp.get('ONNX Runtime int8 dynamic'))} | {_x(_speedup(torch_best, row) if mine else None)} | "
                   f"{_x(_speedup(torch_ao, row) if mine else None)} | {_x(sp.get('dense int8 C kernel'))} |")
    out += ["", f"References: {', '.join(f'{k} = {v}' for k, v in refs.items())}.", ""]
    return out


def embedded_section() -> list[str]:
    files = sorted(RESULTS.glob("embedded_*.json"))
    if not files:
        return []
    out = ["### Exported C on targets: bit-exact checks and sizes", "",
           "Each row: `rnnslim export --format c`, compiled for the target, 100 random streams checked "
           "against IntegerRunner (the host kernel) by per-stream hashes of every logit and the final state. "
           "Cortex-M4 runs under `qemu-system-arm -M mps2-an386` with semihosting (4 MB code region), aarch64 "
           "under qemu-user. Sizes: the model object only (`size`, text = const arrays + code).", "",
           "| model | flash (const arrays) | RAM scratch + state | x86-64 | Cortex-M4 | aarch64 NEON | aarch64 portable "
           "| M4 text/data/bss | machine |", "|---|---|---|---|---|---|---|---|---|"]
    for f in files:
        data = json.loads(f.read_text())
        e = data["embedded"]
        m, t = e["manifest"], e["targets"]

        def verdict(name: str) -> str:
            tg = t.get(name) or {}
            chk = tg.get("check")
            if tg.get("model_fits_an386_code") is False:
                return "does not fit"
            if not chk:
                return tg.get("skipped", "-")
            return f"bit-exact ({chk['streams']}x{chk['steps']})" if chk["bit_exact"] else "**differs**"

        m4 = (t.get("cortex-m4") or {}).get("model_object_sizes") or {}
        m4s = f"{m4.get('text', 0):,}/{m4.get('data', 0):,}/{m4.get('bss', 0):,}" if m4 else "-"
        out.append(f"| {e['model']}{' (folded embedding)' if m.get('folded_embedding') else ''} | "
                   f"{m['const_bytes']:,} | {m['scratch_bytes']:,} + {m['state_bytes']:,} | {verdict('host')} | "
                   f"{verdict('cortex-m4')} | {verdict('aarch64')} | {verdict('aarch64-portable')} | {m4s} | "
                   f"{data['provenance'].get('date')}, commit {str(data['provenance'].get('git_commit'))[:10]} |")
    return out + [""]


def onnx_int8_section() -> list[str]:
    out = []
    for model in ("chargru-512x2", "charlstm-512x2"):
        data = _load(f"onnx_int8_{model}.json")
        if not data:
            continue
        r = data["result"]
        if not out:
            out = ["### int8 in ONNX Runtime with unfused recurrent matmuls (`--format onnx-int8`)", ""]
            if '"reduce_range": false' in json.dumps(data):
                out += ["These rows were measured with full-range 8-bit weights (`reduce_range` false, the default "
                        "then). Since issue 19 the export writes 7-bit weights by default: ORT's MatMulInteger "
                        "on AVX2-only x86 CPUs (no VNNI) saturates full-range u8 x s8 pair sums in int16 and "
                        "computes wrong logits there. Not re-measured yet.", ""]
        out += [f"{model}: machine and command: {_machine(data['provenance'])}. Test split, batch 1, state "
                "carried; latency median [spread], 1 thread, same run.", "",
                "| variant | test loss | bytes | ms/step |", "|---|---|---|---|"]
        for row in r["rows"]:
            loss = f"{row['test_loss_nats']:.5f}" if row.get("test_loss_nats") is not None else "-"
            out.append(f"| {row['variant']} | {loss} | {row.get('artifact_bytes', 0):,} | {_ms(row.get('latency'))} |")
        tg = r.get("targets") or {}
        if tg:
            out += ["", f"Targets: bytes {tg['bytes_ratio']:.1%} of fp32 (<= 27%: {'met' if tg['bytes_ok'] else 'missed'}), "
                        f"loss {100 * tg['loss_rel']:+.3f}% (<= +0.5%: {'met' if tg['loss_ok'] else 'missed'}), "
                        f"{tg['speedup_vs_ort_fp32']:.2f}x ORT fp32.", ""]
    return out


def kernel_memory_section() -> list[str]:
    data = _load("kernel_memory.json")
    if not data:
        return []
    out = ["### Memory the C kernel holds at run time", "",
           f"Machine and command: {_machine(data['provenance'])}. Byte counts of what the host kernel holds "
           "(`IntegerProgram.resident_bytes`): int8 matrices, per-row constants, lookup tables, the folded embedding "
           "table built at load (layer 0's W_ih times every embedding row, V x G*H int32), scratch and state. "
           "The folded table trades this RAM for fewer bytes read per step; the host kernel builds it by default "
           "when it is no larger than 4 bytes x layer 0's W_ih (vocabulary <= embedding width) and under 64 MiB, "
           "so the latency tables above use it.", "",
           "| model (dense int8) | artifact on disk | folded embedding | held at run time | of which folded table | "
           "bytes read per step |", "|---|---:|---|---:|---:|---:|"]
    for name, m in data["result"].items():
        for r in m["rows"]:
            out.append(f"| {name} | {m['artifact_bytes']:,} | {'yes' if r['folded_embedding'] else 'no'} | "
                       f"{r['resident_bytes']:,} | {r['folded_table_bytes']:,} | {r['bytes_per_step']:,} |")
    return out + [""]


def kernel_flash_section() -> list[str]:
    """benchmarks/kernel_flash.py: the exported C's flash with half tables and VNNI-only corrections, and what the
    mirrored lookup costs, on the peer-table models."""
    data = _load("kernel_flash.json")
    if not data:
        return []
    res = data["result"]
    out = ["### Flash of the exported C: half tables, VNNI-only row corrections", "",
           f"Machine and command: {_machine(data['provenance'])}. `const_bytes` of `export_c` now (what a Cortex-M4, "
           f"AArch64 or portable build holds) against commit {res['old_commit']}'s exporter on the same model: the "
           "sigmoid and tanh tables keep their lower 513 of 1,025 entries (the upper half mirrors them exactly), and "
           "the VNNI row corrections (4 B per matrix row) are defined only in AVX-512 VNNI builds (`vnni_bytes`). "
           "Time: thread CPU time of 64 tokens (char models) or one test sequence (classifiers) at batch 1, "
           f"median of {res['rounds']} rotated rounds [range]; old / new = the commit's kernel over today's, "
           "per round (>1: today's is faster). The host kernel (IntegerRunner) keeps whole tables; the export-style "
           "build mirrors every lookup, as the exported C does. All three are bit-identical (checked in the run).", "",
           "| model | flash before | flash now (+ AVX-512 VNNI) | native: old / host | native: old / export-style | "
           "portable: old / host | portable: old / export-style |", "|---|---:|---:|---|---|---|---|"]

    def ratio(v: dict, key: str) -> str:
        r = v.get(key)
        return f"{r['median']:.3f} [{r['band'][0]:.3f}-{r['band'][1]:.3f}]" if r else "-"

    for name, m in res["models"].items():
        nat, por = m.get("native", {}), m.get("portable", {})
        out.append(f"| {name} | {m['old_const_bytes']:,} | {m['const_bytes']:,} (+ {m['vnni_bytes']:,}) | "
                   f"{ratio(nat, 'old_over_new')} | {ratio(nat, 'old_over_half')} | {ratio(por, 'old_over_new')} | "
                   f"{ratio(por, 'old_over_half')} |")
    return out + [""]

