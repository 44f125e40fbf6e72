"""The Pareto plot of a v3 / v4 search for BENCHMARKS.md (issue 23): loss change against artifact bytes,
on the split the search ranks on (validation) and on the one it reports (test), with the
hand-written recipes (the results JSON's "references") as labelled squares and the goal lines
(1/20 and 1/40 of the fp32 bytes, +2 % loss). Reads only the committed results JSON.

    python benchmarks/search_pareto_plot.py --model charlstm-512x2     # -> results/search_pareto_charlstm-512x2-v4.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS  # noqa: E402
from search_bench import SPACES  # noqa: E402  (the study versions)


def _front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(bytes, change) points no other point beats on both, by bytes."""
    out, best = [], float("inf")
    for b, c in sorted(points):
        if c < best:
            out.append((b, c))
            best = c
    return out


def plot(data: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    base = data["baseline"]
    trials = [t for t in data.get("full_fidelity_trials", []) if t.get("test_loss") is not None]
    refs = data.get("references") or []
    best = (data.get("best") or {}).get("trial")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharex=True)
    for ax, split, key, base_key in ((axes[0], "validation (ranks)", "valid_loss", "loss"),
                                     (axes[1], "test (reported)", "test_loss", "test_loss")):
        pts = [(t["bytes"], 100 * (t[key] / base[base_key] - 1)) for t in trials]
        inside = [p for p, t in zip(pts, trials) if t.get("within_budget")]
        late = [p for p, t in zip(pts, trials) if not t.get("within_budget")]
        if inside:
            ax.scatter(*zip(*inside), s=22, c="0.45", label="search trials (full fine-tune)")
        if late:
            ax.scatter(*zip(*late), s=22, facecolors="none", edgecolors="0.45", label="finished after the budget")
        front = _front(inside)
        if front:
            ax.plot(*zip(*front), "-o", c="C0", ms=5, label="Pareto front (within budget)")
        for p, t in zip(pts, trials):
            if t["trial"] == best:
                ax.scatter([p[0]], [p[1]], s=160, facecolors="none", edgecolors="C3", lw=1.5,
                           label=f"search's best (trial {best})")
        rk = "valid_change_pct" if key == "valid_loss" else "test_change_pct"
        rp = [(r["bytes"], r[rk], r["label"]) for r in refs if r.get(rk) is not None]
        if rp:
            ax.scatter([b for b, _, _ in rp], [c for _, c, _ in rp], marker="s", s=50, c="C1",
                       label="hand-written recipes")
            for b, c, lab in rp:
                ax.annotate(lab, (b, c), fontsize=6.5, xytext=(4, 3), textcoords="offset points")
        for n, ls in ((20, "--"), (40, ":")):
            ax.axvline(base["bytes"] / n, c="C3", lw=0.9, ls=ls, label=f"1/{n} of fp32 bytes")
        ax.axhline(2.0, c="C2", lw=0.9, ls="--", label="+2 % loss")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1e6:g} MB" if v >= 1e6 else f"{v / 1e3:g} kB"))
        ax.set_xlabel("artifact bytes on disk")
        ax.set_ylabel(f"{split}: loss change vs fp32 (%)")
        ax.set_ylim(top=min(ax.get_ylim()[1], 25))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"{data['model']}: search {data['study']} ({len(trials)} full-fidelity trials), no warm start",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="charlstm-512x2")
    ap.add_argument("--version", default="v4", choices=tuple(SPACES))
    args = ap.parse_args()
    data = json.loads((RESULTS / f"search_{args.model}-{args.version}.json").read_text())
    print(plot(data, RESULTS / f"search_pareto_{args.model}-{args.version}.png"))


if __name__ == "__main__":
    main()
