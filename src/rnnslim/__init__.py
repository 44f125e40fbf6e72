"""rnnslim: make trained recurrent models (LSTM, GRU, RNN) smaller and faster.

One verb per family, each taking any config of its family (rnnslim.verbs) and returning an
EditResult (what changed, stored bytes before / after, warnings; rnnslim.results):

    rnnslim.prune_(model, rnnslim.StructuredPruning(ratio=0.5), example_inputs=(x,))
    rnnslim.quantize_(model, rnnslim.Int8Config(mode="static"), calibration=[x1, x2])
    rnnslim.factorize_(model, rnnslim.LowRank(energy=0.9))
    rnnslim.distill_(student, rnnslim.Distillation(), teacher=teacher, task=task)

Public API re-exports only, imported on first use: importing rnnslim does no work, never
touches a GPU and does not import torch (rnnslim.runtime runs exported models without it).
"""

import importlib as _importlib

__version__ = "0.1.0"

# `rnnslim.search` is the function rnnslim.search.run.search, not the package of the same name.
# Importing a subpackage binds its name on the parent, once, when it is first imported: the
# package (light: its names load lazily) is imported here, before any user code can, and the
# name unbound, so __getattr__ below resolves it to the function and no later
# `import rnnslim.search.x` rebinds it. Import the package's names with
# `from rnnslim.search.x import y` (`import rnnslim.search.x as m` walks attributes and meets
# the function). By name, like every export here: this facade sits above the layers it re-exports.
_importlib.import_module("rnnslim.search")
del search  # noqa: F821

_EXPORTS = {
    "load_model": "rnnslim.io.format",
    "save_model": "rnnslim.io.format",
    "ModelSpec": "rnnslim.models.sequence",
    "SequenceModel": "rnnslim.models.sequence",
    "CellType": "rnnslim.recurrent.gates",
    "gate_count": "rnnslim.recurrent.gates",
    "gate_names": "rnnslim.recurrent.gates",
    "unit_rows": "rnnslim.recurrent.gates",
    "LayerSpec": "rnnslim.recurrent.stack",
    "RecurrentStack": "rnnslim.recurrent.stack",
    "TrainConfig": "rnnslim.train",  # the fine-tuning inside GradualPruning, GroupLassoPruning, Distillation
    # one verb per family (rnnslim.verbs), one result type (rnnslim.results)
    "prune_": "rnnslim.verbs",
    "quantize_": "rnnslim.verbs",
    "factorize_": "rnnslim.verbs",
    "distill_": "rnnslim.verbs",
    "EditResult": "rnnslim.results",
    # pruning configs: prune_(model, config, example_inputs=..., calibration=..., task=..., data=...)
    "StructuredPruning": "rnnslim.prune",
    "UnstructuredPruning": "rnnslim.prune",
    "NMPruning": "rnnslim.prune",
    "BlockPruning": "rnnslim.prune",
    "LayerRemoval": "rnnslim.prune",
    "VocabPruning": "rnnslim.prune",
    "GradualPruning": "rnnslim.prune",
    "AGPSchedule": "rnnslim.prune",
    "GroupLassoPruning": "rnnslim.prune",
    "OBSPruning": "rnnslim.reconstruct",
    # quantization configs: quantize_(model, config, calibration=...)
    "WeightOnly": "rnnslim.quantize.api",
    "Ternary": "rnnslim.quantize.api",
    "KMeans": "rnnslim.quantize.api",
    "HalfPrecision": "rnnslim.quantize.api",
    "QAT": "rnnslim.quantize.api",
    "ActQuantConfig": "rnnslim.quantize.actquant",
    "Int8Config": "rnnslim.quantize.int8",
    "GPTQ": "rnnslim.reconstruct",
    "MixedPrecision": "rnnslim.quantize.mixed",
    "set_delta_threshold_": "rnnslim.quantize.int8.delta",  # delta networks on the integer C kernel
    # factorization configs (low rank, transform domain): factorize_(model, config, calibration=...);
    # lowrank_ / to_lstmp_ / lowrank_linears_ / dct_sparsify_ / block_circulant_ are the same
    # dispatch limited to one config each
    "LowRank": "rnnslim.lowrank",
    "ToLSTMP": "rnnslim.lowrank",
    "LowRankLinears": "rnnslim.lowrank",
    "lowrank_": "rnnslim.lowrank",
    "to_lstmp_": "rnnslim.lowrank",
    "lowrank_linears_": "rnnslim.lowrank",  # nn.Linear layers of any module (a user's decoder, head)
    "DCTSparsity": "rnnslim.transform",  # weights stored as sparse DCT coefficients
    "BlockCirculant": "rnnslim.transform",
    "dct_sparsify_": "rnnslim.transform",
    "block_circulant_": "rnnslim.transform",
    # distillation: distill_(student, Distillation(...), teacher=..., task=...)
    "Distillation": "rnnslim.students",
    "make_student": "rnnslim.students",
    "StudentSpec": "rnnslim.students",
    # saving edited user models
    "save_edited": "rnnslim.io.edited",
    "load_edited": "rnnslim.prune.structured.history",  # rnnslim.io.edited with the pruning replay
    # early exit: heads after each recurrent layer of a classifier, a calibrated confidence threshold
    "EarlyExit": "rnnslim.early_exit",
    "add_exits_": "rnnslim.early_exit",
    "calibrate_exits_": "rnnslim.early_exit",
    "exit_predict": "rnnslim.early_exit",
    "search": "rnnslim.search.run",  # budget-driven recipe search (a function; needs rnnslim[search])
    # your own model to the device: `from rnnslim.capture import capture, user_view, evaluate` (a subpackage:
    # a top-level function of the same name would be replaced by the package once it is imported)
    "CaptureError": "rnnslim.capture.errors",
    "CaptureInfo": "rnnslim.models.capture_info",
    # Keras / ONNX files in: import_keras(path) / import_onnx(path) -> SequenceModel
    "import_keras": "rnnslim.interop.keras",
    "import_onnx": "rnnslim.interop.onnx_import",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(_importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rnnslim' has no attribute {name!r}")


def __dir__() -> list:
    """The public API (and the submodules already imported), not this module's helpers."""
    return sorted(set(__all__) | {"__version__"} | {k for k in globals() if not k.startswith("_")})
