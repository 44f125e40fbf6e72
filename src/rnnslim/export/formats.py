"""`rnnslim export`: one entry point over the export formats, each checked after writing.

    c         standalone C99 library of a fully integer int8 model (c_source.py); checked
              bit for bit against IntegerRunner on `check_streams` random streams when a
              C compiler is present (whole sequences through NAME_run for a bidirectional
              model); `build` also compiles lib<NAME>.so beside it for C programs that link
              it (rnnslim.runtime compiles its own from the checked sources, never loads that)
    c-fp32    the same C API for a float model (c_float.py): the reference a port starts from
    onnx      one streaming step in ONNX, checked in ONNX Runtime (onnx.py)
    onnx-int8 the step with unfused recurrent matmuls quantized to int8 (onnx_int8.py): an int8
              GRU in ONNX Runtime, whose own quantizer leaves GRU nodes fp32
    torch     a torch.export program (.pt2) of one step (torch_export.py); loading a .pt2
              unpickles its sample inputs: load only files you made
    tflite    a directory with a full-integer int8 NAME.tflite that TensorFlow Lite Micro runs
              (tflite.py: the TFLite converter in a child process, calibrated on `calibration`,
              the task's data), checked against the integer int8 model on `check_streams` random
              streams (argmax agreement, max |logit difference|) with TFLite Micro's arena bytes in
              its tflite.json; needs the `tflite` extra

Every format writes atomically: a failed export leaves nothing at `out`.

A user's own nn.Module is captured first (rnnslim.capture: a parity-checked SequenceModel),
which needs its `example_inputs`, one example per forward argument:

    export_model(my_lm, "onnx", "lm.onnx", example_inputs=(x, None))
"""

from __future__ import annotations

from pathlib import Path

FORMATS = ("c", "c-fp32", "onnx", "onnx-int8", "torch", "tflite")


def _export_c(model, out: Path, name: str | None, build: bool, check_streams: int, fold_embedding: bool | None,
              sparse: str | bool) -> dict:
    """Write, check and build in a hidden sibling of `out`, renamed onto `out` only after the
    bit-exact check passed: a failed check, or a kill during it, leaves nothing at `out`."""
    from rnnslim.export.destination import export_directory
    from rnnslim.runtime.manifest import FORMAT

    with export_directory(out, FORMAT, model) as staging:  # re-checks `out` just before the rename
        result = _write_checked_c(model, staging, name, build, check_streams, fold_embedding, sparse)
    return _moved(result, staging, out)


def _moved(value, staging: Path, out: Path):
    """The facts (nested dicts) with paths in the staging folder renamed to `out`."""
    if isinstance(value, dict):
        return {k: _moved(v, staging, out) for k, v in value.items()}
    return value.replace(str(staging), str(out)) if isinstance(value, str) else value


def _write_checked_c(model, out: Path, name: str | None, build: bool, check_streams: int,
                     fold_embedding: bool | None, sparse: str | bool) -> dict:
    from rnnslim.export.c_check import check_on_host, random_streams
    from rnnslim.export.c_source import export_c
    from rnnslim.runtime.build import CompilerUnavailable, find_compiler

    try:
        facts = export_c(model, out, name=name, fold_embedding=fold_embedding, sparse=sparse)
    except ValueError as e:
        if "integer int8" not in str(e):
            raise
        raise ValueError(f"--format c exports fully integer int8 models ({e}); convert the model with a recipe "
                         "stage `int8_integer` first, or export the float model with --format c-fp32") from None
    result = {"format": "c", "out": str(out), **facts.to_dict()}
    try:
        find_compiler()
    except CompilerUnavailable as e:
        result["check"] = {"skipped": str(e)}
        return result
    if check_streams > 0:
        from rnnslim.quantize.int8.runner import IntegerRunner

        try:
            res = check_on_host(IntegerRunner(model, "portable", fold_embedding=False),
                                out, random_streams(facts.vocab, check_streams, 24, features=facts.features),
                                flags=("-O2", "-DRS_PORTABLE"))
        finally:
            for f in ("check_main.c", "check_main.exe"):
                (out / f).unlink(missing_ok=True)
        result["check"] = res.to_dict()
        if not res.ok:  # an export that does not compute what was measured is never renamed into place
            raise RuntimeError(f"the exported C differs from IntegerRunner on streams {res.mismatches[:10]}: "
                               "please report this as a bug (nothing was written)")
    if build:
        from rnnslim.runtime.exported import build_library

        result["library"] = str(build_library(out, into_export=True))
    return result


def as_rnnslim_model(model, example_inputs: tuple | None):
    """`model` when it is rnnslim's SequenceModel; a user's own nn.Module captured with `example_inputs`."""
    from rnnslim.models.sequence import SequenceModel

    if isinstance(model, SequenceModel):
        return model
    if example_inputs is None:
        raise ValueError(f"{type(model).__name__} is your own module, not an rnnslim model: give example_inputs (one "
                         "example per forward argument, e.g. (x, None)) so that export captures it first, or capture "
                         "it yourself (from rnnslim.capture import capture; seq = capture(model, example_inputs))")
    from rnnslim.capture import capture
    from rnnslim.quantize.anchor import DtypeAnchored

    quantized = [path for path, m in model.named_modules() if isinstance(m, DtypeAnchored)]
    if quantized:
        raise ValueError(f"{type(model).__name__} already holds rnnslim's quantized layers ({', '.join(quantized[:3])}"
                         f"{', ...' if len(quantized) > 3 else ''}), which capture does not read: capture the float "
                         "module, then quantize the captured model (e.g. quantize_int8_(seq, Int8Config(mode="
                         "'integer'), calibration=...)) and export that")
    return capture(model, example_inputs)


def export_model(model, fmt: str, out: str | Path, name: str | None = None, build: bool = False,
                 check_streams: int = 100, fold_embedding: bool | None = None, sparse: str | bool = "auto",
                 force: bool = False, example_inputs: tuple | None = None, calibration=None) -> dict:
    """Export `model` in format `fmt` to `out`; returns the facts (sizes, checks) as a dict.

    `out` is checked before anything is computed (destination.py): a new path or an earlier rnnslim
    export; an existing file that rnnslim did not write only with `force` (single-file formats);
    never the input model, a model directory, a symlink or a special file (ExportDestinationError).
    `model` may be a user's own nn.Module: it is captured first with `example_inputs` (see the
    module docstring; a module that cannot be captured exactly raises CaptureError, a ValueError).
    `calibration` (tflite): model inputs (T, B) / (T, B, F) or a Task whose calibration batches
    the converter's representative data set is made of (default: the model's recorded task)."""
    from rnnslim.export.destination import check_destination

    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    check_destination(out, fmt, model, force)
    model = as_rnnslim_model(model, example_inputs)
    out = Path(out)
    if fmt == "c":
        return _export_c(model, out, name, build, check_streams, fold_embedding, sparse)
    if fmt == "c-fp32":
        from rnnslim.export.c_float import export_c_float

        return {"format": "c-fp32", "out": str(out), **export_c_float(model, out, name=name).to_dict()}
    if fmt == "onnx":
        from rnnslim.export.onnx import export_step_onnx

        return {"format": "onnx", **export_step_onnx(model, out, force=force).to_dict()}
    if fmt == "onnx-int8":
        from rnnslim.export.onnx_int8 import export_int8_onnx

        return {"format": "onnx-int8", **export_int8_onnx(model, out, force=force)}
    if fmt == "torch":
        from rnnslim.export.torch_export import export_torch_program

        return {"format": "torch", **export_torch_program(model, out, force=force)}
    if fmt == "tflite":
        from rnnslim.export.tflite import export_tflite

        return export_tflite(model, out, name=name, calibration=calibration, check_streams=check_streams)
    raise AssertionError(fmt)  # every name in FORMATS is handled above
