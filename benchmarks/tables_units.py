"""BENCHMARKS.md paragraph "How prune_units adds up a unit's scores" from
benchmarks/results/prune_units_reduce.json (benchmarks/prune_units_reduce.py). Nothing is typed here."""

from __future__ import annotations

from table_parts import NOISE_BAND, change_cell, load_result, machine_line, noise_band


def unit_reduce_section() -> list[str]:
    d = load_result("prune_units_reduce.json")
    if not d:
        return []
    out = ["### How prune_units adds up a unit's scores: L1 or L2", "",
           "A hidden unit's score is the sum (`reduce: l1`) or the L2 norm (`reduce: l2`, the group norm "
           "Torch-Pruning uses) of |w| over every weight that goes with it (its gate rows, its recurrent column, "
           "the columns of the layers that read it). prune_units alone (magnitude, round_to 16, least-squares "
           "re-fit), one shot, no fine-tuning; whole valid / test split, batch 1, 1 thread; "
           f"`python benchmarks/prune_units_reduce.py` ({machine_line(d['provenance'])}). "
           "prune_units' default is l2 since this table (it was l1: the committed recipes pin `reduce: l1` "
           "so their results re-run as they were).", "",
           "| model | units kept per layer | valid l1 | valid l2 | test l1 | test l2 | test l2 - l1 |",
           "|---|---|---|---|---|---|---|"]
    for model, run in d.items():
        if model == "provenance":
            continue
        band = noise_band(model)
        rows = {(r["hidden"], r["reduce"]): r for r in run["rows"]}
        for hidden in sorted({h for h, _ in rows}, reverse=True):
            a, b = rows.get((hidden, "l1")), rows.get((hidden, "l2"))
            if not (a and b):
                continue
            out.append(f"| {model} | {hidden} | {a['valid_loss']:.4f} | {b['valid_loss']:.4f} | {a['test_loss']:.4f} | "
                       f"{b['test_loss']:.4f} | {change_cell(b['test_loss'] - a['test_loss'], a['test_loss'], band)} |")
    bands = ", ".join(f"{m} +-{noise_band(m):.4f}" for m in d if m != "provenance" and noise_band(m) is not None)
    out += ["", f"Noise bands of the test splits: {bands} nats; changes inside are marked ~ (equal); {NOISE_BAND}.", ""]
    return out


def refit_section() -> list[str]:
    d = load_result("refit_then_finetune.json")
    if not d:
        return []
    out = ["### prune_units' least-squares re-fit before a fine-tune", "",
           "The re-fit makes the one-shot cut far better; does it help when a fine-tune follows? prune_units "
           "(magnitude, reduce l2, round_to 16) with and without the re-fit, then the same finetune stage (lr 1e-3; "
           "labels with the model's dropout, or distillation alone from the uncut model with dropout off), whole "
           f"valid / test split, batch 1, 1 thread; `python benchmarks/refit_then_finetune.py` "
           f"({machine_line(d['provenance'])}). Since this table prune_units' `refit` defaults to `auto`: no re-fit "
           "when a later stage of the recipe trains the model. Wall seconds: one thread, but the runs shared their core "
           "with other work to different degrees (up to 3 processes per core), so they compare compute only roughly.", "",
           "| model | units | fine-tune | re-fit | valid after the cut | test after the cut | valid after the fine-tune "
           "| test after the fine-tune | fine-tune wall s |", "|---|---|---|---|---|---|---|---|---|"]
    for key, run in d.items():
        if key == "provenance":
            continue
        for r in run["rows"]:
            cut = next(v for k, v in r["losses"].items() if k.endswith("prune_units"))
            ft = next(v for k, v in r["losses"].items() if k.endswith("finetune"))
            wall = next((v for k, v in r["stage_seconds"].items() if k.endswith("finetune")), None)
            wall_cell = f"{wall:.0f}" if wall else "-"
            out.append(f"| {run['model']} | {run['hidden']} | {run['steps']:,} steps, {run['training']} | "
                       f"{'yes' if r['refit'] else 'no'} | {cut['valid']:.4f} | {cut['test']:.4f} | {ft['valid']:.4f} | "
                       f"{ft['test']:.4f} | {wall_cell} |")
    band = noise_band("charlstm-512x2")
    out += ["", f"Noise band of the charlstm-512x2 test split: +-{band:.4f} nats ({NOISE_BAND})." if band else "", ""]
    return out
