"""BENCHMARKS.md section: users' own nn.Modules x techniques (benchmarks/user_models_matrix.py)."""

from __future__ import annotations

from table_parts import load_result, machine_line


def user_models_section() -> list[str]:
    data = load_result("user_models_matrix.json")
    if not data:
        return []
    r = data["result"]
    techs = r["techniques"]
    out = ["## Users' own models x techniques (issue 9)", "",
           f"Machine and command: {machine_line(data['provenance'])}. Models written as plain nn.Modules with torch's "
           "own LSTM / GRU (`tests/user_models.py`), trained briefly on synthetic tasks. Each cell: the technique "
           "one-shot (no fine-tuning; QAT: 50 steps of the user's own training loop; the half-width student: 50 "
           "distillation steps of the user's loop) through rnnslim's public verbs; max |y - y_ref| / max |y_ref| and "
           "the task loss "
           "on a held-out batch; bytes of `save_edited` (sparse / packed storage kept) as a share of the dense save. "
           "A refusal quotes the verb's error; no cell raised an unexpected exception unless it says so.", "",
           "| model (task loss, dense bytes) | " + " | ".join(techs) + " |", "|---|" + "---|" * len(techs)]
    for row in r["rows"]:
        cells = []
        for t in techs:
            c = row["cells"][t]
            if c["ok"] and c.get("note"):  # the verb ran and left the model as it was, saying why
                cells.append(f"unchanged: {c['note'][:90]}")
            elif c["ok"]:
                cells.append(f"{c['rel_max_diff']:.3f} / loss {c['task_loss']:.3f} / {c['bytes_vs_dense']:.0%}")
            else:
                cells.append(("refused" if c["kind"] == "refused" else "**bug**") + f": {c['error'][:90]}")
        out.append(f"| {row['model']} ({row['task_loss']:.3f}, {row['dense_bytes']:,} B) | " + " | ".join(cells) + " |")
    return out + [""]


def demo_section() -> list[str]:
    data = load_result("demo_time.json")
    if not data:
        return []
    d = data["demo"]
    return ["## The demo's wall time (issue 11)", "",
            f"`rnnslim demo` (train a 256x2 LSTM for 200 steps, prune_units + fine-tune + int8_integer, measure "
            f"against the baselines): **{d['wall_s']:.0f} s**, exit {d['exit_code']}, on {d['cpus']} CPUs with load "
            f"average {d['load_average_at_start']} at the start (`python benchmarks/demo_time.py`; "
            f"{machine_line(data['provenance'])}). The target is <= 5 minutes on 2 cores. On a machine kept busy by "
            "other work the same demo took 4 min 45 s (thread oversubscription), so it is worth running alone.", ""]
