"""The scaling a feature model's C export expects its caller to apply, from the task meta.

classify and forecast models are trained on standardised features (tasks/scaling.py: the
training split's mean and standard deviation per feature, kept in `task_meta["scaling"]`);
a forecaster's outputs are standardised targets too. The C library takes and returns those
standardised values, so the export states the statistics: in the manifest (`input_scaling`,
`output_scaling`: {"mean": [...], "std": [...]}, one value per feature / output), in the
header's comment, and as const float arrays the caller applies:

    x[f] = (raw[f] - NAME_input_mean[f]) / NAME_input_std[f]          before NAME_step / NAME_run
    y[j] = logits[j] * NAME_output_std[j] + NAME_output_mean[j]       a forecaster's outputs

(a forecaster's outputs are horizon-major, so output j is target j % K of K targets).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnslim.tasks.scaling import Standardizer


@dataclass(frozen=True)
class Scaling:
    mean: list[float]
    std: list[float]

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std}


def _standardizer(meta, n: int, what: str) -> Scaling:
    s = Standardizer.from_meta(meta, n, what)  # ValueError when it does not fit the model
    return Scaling([float(v) for v in s.mean], [float(v) for v in s.std])


def model_scaling(model, features: int, outputs: int) -> tuple[Scaling | None, Scaling | None]:
    """(input scaling, output scaling) a feature model's task meta records (None: none recorded)."""
    meta = getattr(model, "task_meta", None) or {}
    scaling = meta.get("scaling")
    if not features or not isinstance(scaling, dict):
        return None, None
    if "inputs" not in scaling:  # classify: {"mean", "std"} of the features
        return _standardizer(scaling, features, "input features"), None
    inputs = _standardizer(scaling["inputs"], features, "input columns")
    targets = scaling.get("targets")
    if not isinstance(targets, dict) or not targets.get("mean"):
        return inputs, None
    K = len(targets["mean"])
    if outputs % K:
        raise ValueError(f"the task meta scales {K} targets but the model has {outputs} outputs (not a multiple)")
    per_target = _standardizer(targets, K, "target columns")
    return inputs, Scaling(per_target.mean * (outputs // K), per_target.std * (outputs // K))


def _floats(values: list[float]) -> str:
    return ", ".join(float(np.float32(v)).hex() + "f" for v in values)


def scaling_arrays(name: str, inputs: Scaling | None, outputs: Scaling | None) -> tuple[str, str, int]:
    """(definitions for NAME.c, declarations for NAME.h, their bytes of flash)."""
    N = name.upper()
    defs, decls, nbytes = [], [], 0
    for which, s, size in (("input", inputs, f"{N}_FEATURES"), ("output", outputs, f"{N}_OUTPUTS")):
        if s is None:
            continue
        for stat in ("mean", "std"):
            values = getattr(s, stat)
            defs.append(f"const float {name}_{which}_{stat}[{size}] = {{ {_floats(values)} }};")
            decls.append(f"extern const float {name}_{which}_{stat}[{size}];")
            nbytes += 4 * len(values)
    return "\n".join(defs), "\n".join(decls), nbytes


def scaling_comment(name: str, inputs: Scaling | None, outputs: Scaling | None) -> list[str]:
    """The header's sentences on what the caller applies (none for a model without scaling)."""
    lines = []
    if inputs is not None:
        lines.append(f"Input: standardised features (the training split's statistics): x[f] = (raw[f] - "
                     f"{name}_input_mean[f]) / {name}_input_std[f], applied by the caller.")
    if outputs is not None:
        lines.append(f"Outputs: standardised targets: y[j] = logits[j] * {name}_output_std[j] + "
                     f"{name}_output_mean[j] (horizon-major: output j is target j % targets).")
    return lines


__all__ = ["Scaling", "model_scaling", "scaling_arrays", "scaling_comment"]
