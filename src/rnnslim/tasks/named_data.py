"""Data sets by name: the ones aeon ships inside its package (no download), for the
classification and forecasting tasks.

    rnnslim train --task classify --data BasicMotions ...     # aeon/datasets/data/BasicMotions/
    rnnslim train --task forecast --data Airline ...          # aeon/datasets/data/Airline/Airline.csv

A --data value that is neither a file nor a folder and has no path separator or suffix is
looked up there; an unknown name lists the names aeon ships (nothing is downloaded:
rnnslim runs offline). aeon is the optional extra `pip install "rnnslim[aeon]"`.
"""

from __future__ import annotations

from pathlib import Path


def aeon_data_root() -> Path | None:
    """aeon's shipped data folder, or None when aeon is not installed."""
    try:
        import aeon.datasets
    except ImportError:
        return None
    root = Path(aeon.datasets.__file__).resolve().parent / "data"
    return root if root.is_dir() else None


def looks_like_name(data: str | Path) -> bool:
    s = str(data)
    return bool(s) and "/" not in s and "\\" not in s and not Path(s).suffix and not Path(s).exists()


def _shipped(root: Path, kind: str) -> list[str]:
    if kind == "classify":
        return sorted(d.name for d in root.iterdir() if d.is_dir() and any("_TRAIN." in f.name for f in d.iterdir()))
    return sorted(d.name for d in root.iterdir() if d.is_dir() and (d / f"{d.name}.csv").is_file())


def resolve_named(name: str, kind: str) -> Path:
    """The folder (classify) or CSV file (forecast) of data set `name` as aeon ships it."""
    root = aeon_data_root()
    if root is None:
        raise FileNotFoundError(f"{name!r} is not a file or folder here; data sets by name are the ones aeon ships "
                                "with its package: pip install \"rnnslim[aeon]\"")
    names = _shipped(root, kind)
    match = next((n for n in names if n.lower() == name.lower()), None)
    if match is None:
        raise FileNotFoundError(f"aeon {_version()} does not ship a {'classification' if kind == 'classify' else 'forecasting'} "
                                f"data set named {name!r} (rnnslim never downloads); it ships: {', '.join(names)}. "
                                "Give a path to your own files otherwise")
    return root / match if kind == "classify" else root / match / f"{match}.csv"


def _version() -> str:
    try:
        import aeon

        return aeon.__version__
    except Exception:
        return "?"
