"""The accuracy-vs-size plot: test metric against artifact bytes, one point per row."""

from __future__ import annotations

from pathlib import Path


def plot_accuracy_vs_size(data: dict, path: str | Path) -> str | None:
    """Write the PNG for report data `data` (report.json's content).

    Returns None on success, or why no plot was written (matplotlib is an optional extra).
    """
    try:
        # the object-oriented API with the Agg canvas: no pyplot, no global backend switch
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return "matplotlib is not installed (pip install 'rnnslim[plot]'), so no plot was drawn"

    metric = data["primary_metric"]
    rows = data["rows"]
    sizes = [r["measurements"]["artifact_bytes"] for r in rows]
    scale, unit = (1e6, "MB") if max(sizes) >= 1e6 else (1e3, "kB")
    fig = Figure(figsize=(7.5, 4.8), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for split, style in (("test", dict(marker="o", linestyle="-")), ("valid", dict(marker="s", linestyle="--",
                                                                                     markerfacecolor="none"))):
        pts = [(r["measurements"]["artifact_bytes"], r["measurements"].get("metrics", {}).get(split, {}).get(metric),
                r["label"]) for r in rows]
        pts = [p for p in pts if p[1] is not None]
        if not pts:
            continue
        xs, ys = [p[0] / scale for p in pts], [p[1] for p in pts]
        ax.plot(xs, ys, label=split, alpha=0.85, **style)  # stage order: the path the recipe takes
        if split == "test":
            ax.plot(xs[:1], ys[:1], marker="*", markersize=14, linestyle="none", color="black", label="input (test)")
            for k, (x, y, label) in enumerate(zip(xs, ys, [p[2] for p in pts])):
                # alternate above/below so labels of neighbouring points (e.g. cast after quantize) stay apart
                ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 6 if k % 2 == 0 else -13), fontsize=8)
    if min(sizes) > 0 and max(sizes) / min(sizes) > 8:
        ax.set_xscale("log")
    better = "higher" if data.get("higher_is_better") else "lower"
    ax.set_xlabel(f"artifact size on disk ({unit})")
    ax.set_ylabel(f"{metric} ({better} is better)")
    ax.set_title(f"{data['recipe']['name']}: {metric} vs size")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(str(path))
    return None
