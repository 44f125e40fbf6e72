"""BENCHMARKS.md section: fuzz campaigns on model files, recipes and data (issue 10); export targets,
runtime manifests and search journals / budgets (issue 19)."""

from __future__ import annotations

from table_parts import load_result, machine_line


def hardening_section() -> list[str]:
    models, recipes, data = load_result("fuzz_models.json"), load_result("fuzz_recipes.json"), load_result("fuzz_data.json")
    if not models and not recipes:
        return []
    out = ["## Hardening: fuzz campaigns (issues 10, 19)", "",
           "| campaign | cases | outcome | limits | machine and command |", "|---|---|---|---|---|"]
    if models:
        m = models["fuzz_models"]
        classes = ", ".join(f"{k} {v}" for k, v in m["classes"].items())
        out.append(f"| malformed model files (`benchmarks/fuzz_models.py`) | {m['cases']} | {classes}; problems: "
                   f"{len(m['problems'])} | {m['timeout_s']} s per case, address space +2 GiB; slowest "
                   f"{m['slowest_case_s']:.2f} s, peak child RSS {m['peak_child_rss_kb'] / 1024:.0f} MiB | "
                   f"{machine_line(models['provenance'])} |")
    if recipes:
        r = recipes["fuzz_recipes"]
        classes = ", ".join(f"{k} {v}" for k, v in r["load_recipe"].items())
        cli = r["cli_sample"]
        out.append(f"| malformed recipes (`benchmarks/fuzz_recipes.py`) | {r['cases']} | load_recipe: {classes} "
                   f"(accepted = valid recipes); `rnnslim compress` sample: {cli['clear_error']}/{cli['cases']} "
                   f"clear errors (exit 2, one line) | {cli['timeout_s']} s per CLI case | "
                   f"{machine_line(recipes['provenance'])} |")
    if data:
        d = data["fuzz_data"]
        classes = ", ".join(f"{k} {v}" for k, v in d["classes"].items())
        out.append(f"| malformed data files (`benchmarks/fuzz_data.py`: corpora, classify and forecast CSVs) | "
                   f"{d['cases']} | {classes}; problems: {len(d['problems'])} | {d['timeout_s']} s per case, "
                   f"address space +2 GiB; slowest {d['slowest_case_s']:.2f} s | {machine_line(data['provenance'])} |")
    out += _issue19_rows()
    return out + ["", "Outcome classes: clear_error = one-line ModelFormatError / RecipeError naming the file and "
                  "field; ok_identical = loads with exactly the original tensors; ok (data) = a usable task "
                  "(valid data: missing values as NaN, other column orders, blank lines); a traceback, hang, memory-limit "
                  "hit or silently changed load would each be counted (0 here). Issue 19's campaigns: each row's classes "
                  "are its script's own (docstring); `problems` counts every case in a class that its goal forbids "
                  "(traceback, crash, hang, planted code run, file outside the output destroyed, user file changed, "
                  "silent change). Two classes are limits, stated rather than hidden: `rehashed_runs` (runtime) = a C "
                  "source rewritten together with its sha256 in the manifest is compiled and run: the hashes catch "
                  "damage and unrecorded edits, not who wrote the export (that would need signing); "
                  "`opened_flipped` (search) = a bit flip inside a JSON value opens as another valid journal "
                  "(Optuna journals carry no checksum).", ""]


# (result file, label): the issue-19 campaigns share one JSON shape: cases, classes, problems, timeout_s
ISSUE19_CAMPAIGNS = (
    ("fuzz_export_targets", "export destinations and names (`benchmarks/fuzz_export_targets.py`: `--out` onto files, "
                            "symlinks, model directories, the input, read-only places; hostile `--name`)"),
    ("fuzz_runtime", "runtime manifests and planted libraries (`benchmarks/fuzz_runtime.py`)"),
    ("fuzz_search", "search journals and budgets (`benchmarks/fuzz_search.py`)"),
)


def _issue19_rows() -> list[str]:
    rows = []
    for name, label in ISSUE19_CAMPAIGNS:
        data = load_result(f"{name}.json")
        if not data:
            continue
        r = data[name]
        classes = ", ".join(f"{k} {v}" for k, v in r["classes"].items())
        slowest = f"; slowest {r['slowest_case_s']:.2f} s" if r.get("slowest_case_s") is not None else ""
        rows.append(f"| {label} | {r['cases']} | {classes}; problems: {len(r['problems'])} | "
                    f"{r['timeout_s']} s per case{slowest} | {machine_line(data['provenance'])} |")
    return rows
