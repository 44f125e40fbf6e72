"""BENCHMARKS.md section: small classification sets (issue 25), from `benchmarks/small_classify.py`."""

from __future__ import annotations

from table_parts import load_result, machine_line

SETS = ("JapaneseVowels", "BasicMotions", "ItalyPowerDemand")


def _row(r: dict) -> str:
    chain = " -> ".join(f"{s['stage']} {s['test_accuracy']:.4f}" for s in r.get("stages", [])) or "-"
    verdict = "within 1 point" if r["within"] else f"**missed**: {r.get('reason', 'more than 1 point below float')}"
    change = r["change_points"] + 0.0  # -0.0 -> 0.0
    return (f"| {r['variant']} | {r['test_accuracy']:.4f} | {change:+.2f} | {r['artifact_bytes']:,} | "
            f"{chain} | {verdict} |")


def small_classify_section() -> list[str]:
    data = load_result("small_classify.json")
    if not data:
        return []
    out = ["## Small classification sets (issue 25)", "",
           f"Machine and command: {machine_line(data['provenance'])} (one script; the JSON was written by "
           "three invocations of it, one data set or two each, on the same machine). Test accuracy of a 2-layer "
           "64-unit LSTM trained by each row's command, then each variant compressed from it by `rnnslim compress`; "
           "`change` is in accuracy points against the float model; bytes are the artifact on disk. Checkpoint rule: "
           "highest validation accuracy, ties broken by lower validation loss, then the later step.", ""]
    for name in SETS:
        ds = data.get(name)
        if not ds:
            continue
        t = ds["training"]
        vn = t.get("valid_note")
        note = f" {vn[0].upper()}{vn[1:]}." if vn else ""
        out += [f"### {name}", "", f"`{ds['command']}`: kept step {t['best_step']} of {t['steps']} "
                f"(valid accuracy {t['best_valid']:.4f}).{note}", "",
                "| variant | test accuracy | change (points) | bytes | per stage | vs float |",
                "|---|---:|---:|---:|---|---|"]
        out += [_row(r) for r in ds["rows"]] + [""]
    return out
