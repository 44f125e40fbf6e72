"""BENCHMARKS.md section: fuzz campaigns on model files and recipes (issue 10)."""

from __future__ import annotations

from table_parts import load_result, machine_line


def hardening_section() -> list[str]:
    models, recipes, data = load_result("fuzz_models.json"), load_result("fuzz_recipes.json"), load_result("fuzz_data.json")
    if not models and not recipes:
        return []
    out = ["## Hardening: fuzz campaigns (issue 10)", "",
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
    return out + ["", "Outcome classes: clear_error = one-line ModelFormatError / RecipeError naming the file and "
                  "field; ok_identical = loads with exactly the original tensors; ok (data) = a usable task "
                  "(valid data: missing values as NaN, other column orders, blank lines); a traceback, hang, memory-limit "
                  "hit or silently changed load would each be counted (0 here).", ""]
