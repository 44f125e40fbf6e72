"""Command line: thin over the library (parse, call, print).

    rnnslim train    --task charlm --data FILE --out runs/m
    rnnslim eval     MODEL --data FILE --split test [--json]
    rnnslim measure  MODEL [--data FILE] [--json]
    rnnslim compress MODEL --recipe FILE --out DIR [--json]
    rnnslim report   RUN_DIR [--html] [--measurement measure.json]
    rnnslim export   MODEL --format c|c-fp32|onnx|onnx-int8|torch|tflite --out PATH [--data FILE] [--json]
    rnnslim import   FILE.keras|FILE.h5|FILE.onnx -o DIR [--task NAME] [--drop-softmax] [--json]
    rnnslim search   MODEL --data FILE --budget bytes=1/20,loss=+2% --trials N --out DIR [--json]
    rnnslim demo

MODEL is a model JSON (with its .safetensors beside it) or a directory rnnslim wrote.
--device cpu | cuda | cuda:N | mps wherever a command trains or measures. `train` and
`compress` also run on several processes (DDP; rank 0 alone writes and prints):
    torchrun --standalone --nproc_per_node 2 -m rnnslim.cli train --out runs/m ...
`--json` prints exactly one JSON object on stdout; progress and logs go to stderr.

Errors: every failure ends as one line `error: ...` on stderr and exit status 2 (with
--json, also {"error": ..., "type": ...} on stdout). RNNSLIM_DEBUG=1 re-raises
unexpected exceptions with their traceback.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Make trained LSTM/GRU models smaller and faster, and measure it honestly.")

ModelArg = Annotated[Path, typer.Argument(help="model JSON (NAME.json + NAME.safetensors) or a model/run directory")]
DataOpt = Annotated[Optional[str], typer.Option("--data", help="task data (charlm: a UTF-8 text file; default: built-in corpus)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")]
DeviceOpt = Annotated[str, typer.Option(help="cpu | cuda | cuda:N | mps (under torchrun: cuda = cuda:LOCAL_RANK)")]


MAX_ERROR_CHARS = 2000
_JSON_MODE = {"on": False}  # set by _guarded from the command's --json


def _one_line(msg: str) -> str:
    text = "; ".join(part.strip() for part in str(msg).splitlines() if part.strip()) or "failed"
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 30] + "... [message truncated]"


def _err(msg: str, code: int = 2, kind: str = "UsageError") -> None:
    line = _one_line(msg)
    if _JSON_MODE["on"]:
        sys.stdout.write(json.dumps({"error": line, "type": kind}) + "\n")
        sys.stdout.flush()
    typer.echo(f"error: {line}", err=True)
    raise typer.Exit(code)


def _err_lines(msg: str, code: int = 2, kind: str = "RecipeError") -> None:
    """Like _err, but a message of several lines (a recipe's problems, one per line) keeps its lines."""
    text = str(msg).strip() or "failed"
    if _JSON_MODE["on"]:
        sys.stdout.write(json.dumps({"error": text, "type": kind}) + "\n")
        sys.stdout.flush()
    typer.echo(f"error: {text}", err=True)
    raise typer.Exit(code)


def _debug() -> bool:
    return os.environ.get("RNNSLIM_DEBUG", "").strip() not in ("", "0", "false", "no")


def _guarded(fn):
    """Every exception of a command becomes one `error: ...` line and exit 2 (traceback with RNNSLIM_DEBUG=1)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from rnnslim.utils.progress import progress_scope

        _JSON_MODE["on"] = bool(kwargs.get("as_json", False))
        try:
            with progress_scope(not _JSON_MODE["on"]):  # --json: no bars at all (they go to stderr anyway)
                return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            _err("interrupted", 130, "KeyboardInterrupt")
        except BrokenPipeError:  # `rnnslim stages | head`: the reader left; nothing to report
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - swallow the interpreter's final flush
            raise typer.Exit(0) from None
        except MemoryError:
            _err("out of memory (try smaller batch_size / seq_len / calibration batches)", 2, "MemoryError")
        except Exception as e:  # noqa: BLE001 - the one place that turns errors into a line
            if _debug() or type(e).__module__.split(".")[0] in ("click", "typer"):
                raise
            msg = str(e) or type(e).__name__
            if isinstance(e, (KeyError,)) and e.args:
                msg = str(e.args[0])
            if isinstance(e, RecursionError):
                msg = "input nested too deeply"
            known = isinstance(e, (ValueError, OSError, ImportError, TypeError, KeyError, RuntimeError))
            if not known or isinstance(e, (TypeError, KeyError, AttributeError)):
                msg += " (unexpected; set RNNSLIM_DEBUG=1 for the traceback)"
            _err(f"{type(e).__name__}: {msg}" if not isinstance(e, ValueError) else msg, 2, type(e).__name__)
        finally:
            _JSON_MODE["on"] = False

    return wrapper


def _emit(obj: dict, as_json: bool, human: str | None = None) -> None:
    if as_json:
        sys.stdout.write(json.dumps(obj, default=str) + "\n")
    else:
        typer.echo(human if human is not None else json.dumps(obj, indent=1, default=str))


def _load(model_path: Path, device: str | None = None):
    from rnnslim.io.errors import ModelFormatError
    from rnnslim.io.format import load_model

    try:
        if device is None:
            return load_model(model_path)
        return load_model(model_path, map_location=str(_device(device)))
    except ModelFormatError as e:
        _err(str(e))


def _device(name: str):
    """--device as a torch.device; one clear line when it is not there (no CUDA, ...)."""
    from rnnslim.utils.device import resolve_device

    try:
        return resolve_device(name)
    except ValueError as e:
        _err(f"--device: {e}")


DATA_KINDS = {"charlm": "a UTF-8 text corpus (.txt)", "wordlm": "a UTF-8 text corpus (.txt)",
              "classify": "a UEA/UCR .ts/.tsv file, a long-format CSV, a folder or a data set name aeon ships",
              "forecast": "a CSV file with a header, one row per time step"}


def _task_for(model, data: str | None, task: str | None = None, **options):
    from rnnslim.tasks import make_task, task_for_model

    try:
        if task:
            t = make_task(task, data, getattr(model, "task_meta", None) or {}, **options)
            t.check_model(model)
            return t
        return task_for_model(model, data=data, **options)
    except UnicodeDecodeError as e:  # a ValueError that names neither the file nor what was expected
        name = task or (getattr(model, "task_meta", None) or {}).get("task")
        wants = DATA_KINDS.get(name, "the task's data file") if name else "a text corpus or a data file"
        bad = bytes(e.object[e.start:e.start + 1]).hex()
        _err(f"--data {data}: not UTF-8 text (a binary file? it holds byte 0x{bad} where UTF-8 text cannot); "
             f"--data takes {wants}" + (f" for the {name} task" if name else ""))
    except (ValueError, FileNotFoundError, ImportError) as e:
        _err(str(e))


@app.command()
@_guarded
def eval(  # noqa: A001 - the verb users type
    model_path: ModelArg,
    data: DataOpt = None,
    split: Annotated[str, typer.Option(help="train | valid | test")] = "test",
    task: Annotated[Optional[str], typer.Option(help="task name (default: from the model file)")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="evaluate only the first N steps")] = None,
    device: DeviceOpt = "cpu",
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a model's task metric on a data split."""
    model = _load(model_path, device)
    t = _task_for(model, data, task)
    try:
        metrics = t.evaluate(model, split, max_steps=max_steps)
    except ValueError as e:
        _err(str(e))
    out = {"model": str(model_path), "task": t.name, "split": split, **metrics}
    human = "  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in out.items())
    _emit(out, as_json, human)


@app.command()
@_guarded
def train(
    out: Annotated[Path, typer.Option(help="run directory: model/ (best) and checkpoints/ go here")],
    task: Annotated[str, typer.Option(help="charlm | wordlm | classify | forecast")] = "charlm",
    data: DataOpt = None,
    cell: Annotated[str, typer.Option(help="lstm | gru | rnn_tanh | rnn_relu")] = "lstm",
    hidden: Annotated[int, typer.Option(help="hidden units per layer")] = 128,
    layers: Annotated[int, typer.Option(help="recurrent layers")] = 2,
    dropout: float = 0.0,
    tie_weights: bool = False,
    epochs: int = 1,
    max_steps: Annotated[Optional[int], typer.Option(help="stop after N optimizer steps")] = None,
    batch_size: int = 32,
    seq_len: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    device: DeviceOpt = "cpu",
    init: Annotated[Optional[Path], typer.Option(help="start from this model (fine-tuning) instead of a fresh one")] = None,
    resume: Annotated[bool, typer.Option(help="continue an interrupted run in --out")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Train (or fine-tune with --init) a reference model; resumable."""
    import torch

    from rnnslim.models.sequence import SequenceModel
    from rnnslim.tasks import make_task
    from rnnslim.train import TrainConfig, TrainingDiverged
    from rnnslim.train import train as run_train

    _check_train_options(lr, dropout, {"--epochs": (epochs, 10_000), "--max-steps": (max_steps, 10**7),
                                       "--batch-size": (batch_size, 4096), "--seq-len": (seq_len, 100_000),
                                       "--hidden": (hidden, 65_536), "--layers": (layers, 64)})
    _device(device)
    if init is not None:
        model = _load(init)
        t = _task_for(model, data, task)
    else:
        try:
            t = make_task(task, data=data)
        except (ValueError, FileNotFoundError, ImportError) as e:
            _err(str(e))
        torch.manual_seed(seed)
        model = SequenceModel(t.model_spec(cell=cell, hidden_size=hidden, num_layers=layers, dropout=dropout,
                                           tie_weights=tie_weights))
        model.task_meta = t.meta()
    try:
        cfg = TrainConfig(epochs=epochs, max_steps=max_steps, batch_size=batch_size, seq_len=seq_len, lr=lr, seed=seed,
                          device=device)
        result = run_train(model, t, cfg, checkpoint_dir=out / "checkpoints", resume=resume)
    except TrainingDiverged as e:
        _err(f"training diverged: {e}", 2, "TrainingDiverged")
    except ValueError as e:
        _err(str(e))
    _save_trained(model, result, cfg, t, out, as_json)


def _check_train_options(lr: float, dropout: float, counts: dict[str, tuple[int | None, int]]) -> None:
    """Exit with a clear message on a learning rate, dropout or count ({option: (value, cap)}) out of range."""
    import math

    if not math.isfinite(lr) or not 0 < lr <= 10:
        _err(f"--lr must be a finite number in (0, 10], got {lr}")
    if not math.isfinite(dropout) or not 0 <= dropout < 1:
        _err(f"--dropout must be in [0, 1), got {dropout}")
    for opt, (value, cap) in counts.items():
        if value is not None and not 1 <= value <= cap:
            _err(f"{opt} must be between 1 and {cap}, got {value}")


def _save_trained(model, result, cfg, task, out: Path, as_json: bool) -> None:
    """Rank 0 (the only process outside torchrun) keeps the best weights, saves and reports."""
    from rnnslim.io.format import save_model
    from rnnslim.train import load_best
    from rnnslim.utils.distributed import process_rank

    if process_rank() != 0:  # under torchrun: rank 0 saves and reports
        return
    load_best(model, result)
    model.to("cpu")
    model.history = list(getattr(model, "history", [])) + [{"op": "train", "config": cfg.model_dump(mode="json"),
                                                            "steps": result.steps, "best_valid": result.best_metric}]
    save_model(model, out / "model")
    _emit({"model": str(out / "model"), "steps": result.steps, "best_valid": result.best_metric,
           "best_step": result.best_step, "valid_note": result.valid_note, "history": result.history}, as_json,
          f"trained {result.steps} steps; best valid {task.primary_metric} = {result.best_metric:.4f} "
          f"(step {result.best_step}); model: {out / 'model'}"
          + (f"\nnote: {result.valid_note}" if result.valid_note else ""))


@app.command()
@_guarded
def measure(
    model_path: ModelArg,
    data: DataOpt = None,
    baseline: Annotated[Optional[Path], typer.Option(help="the uncompressed model for the baseline rows")] = None,
    threads: Annotated[str, typer.Option(help="comma-separated thread counts")] = "1,2",
    split: str = "test",
    quick: Annotated[bool, typer.Option(help="fewer timing steps and a shorter evaluation")] = False,
    no_baselines: Annotated[bool, typer.Option("--no-baselines", help="skip the baseline rows")] = False,
    device: Annotated[str, typer.Option(help="cpu | cuda | cuda:N: where the model is timed (on CUDA also as a "
                                               "CUDA graph, against cuDNN's nn.LSTM/GRU)")] = "cpu",
    as_json: JsonOpt = False,
) -> None:
    """Size, MACs, metric, latency and throughput, with the baselines measured in the same run.
    Without --data the metric uses the data the model remembers; when that is unknown it is left out
    (a note says why), the rest is measured."""
    from rnnslim.measure import measure as run_measure
    from rnnslim.measure.quality import remembered_task

    model = _load(model_path, device)
    t, note = (_task_for(model, data), None) if data is not None else remembered_task(model)
    if note:  # an unknown corpus: measure all the rest; a bad --data stays an error (_task_for)
        note = f"quality left out ({note}); add --data FILE (the data the model was trained on) to measure it"
        typer.echo(f"note: {note}", err=True)
    if baseline is None and not no_baselines:  # a compress run directory remembers its input model
        remembered = Path(model_path) / "stages" / "00-input" / "model"
        if (remembered / "model.json").exists():
            typer.echo(f"baseline: the run's input model ({remembered}); --baseline PATH to choose another", err=True)
            baseline = remembered
    base = _load(baseline, device) if baseline else None
    try:
        thread_counts = tuple(int(x) for x in threads.split(",") if x.strip())
    except ValueError:
        _err(f"--threads must be comma-separated integers, got {threads!r}")
    report = run_measure(model, task=t, split=split, baseline=base, threads=thread_counts, quick=quick,
                         include_baselines=not no_baselines, artifact_path=_artifact_path(model_path), quality_note=note)
    _emit(report.to_dict(), as_json, report.table())


def _artifact_path(model_path: Path) -> Path | None:
    from rnnslim.io.format import resolve_model_path

    try:
        return resolve_model_path(model_path)[0]
    except Exception:
        return None


@app.command()
@_guarded
def compress(
    model_path: ModelArg,
    recipe: Annotated[str, typer.Option(help="a built-in recipe's name (`rnnslim recipes`: deploy-int8, ...) or a recipe YAML file (`rnnslim stages` lists the stage kinds)")],
    out: Annotated[Path, typer.Option(help="output directory (stages, final model/, report.md)")],
    data: DataOpt = None,
    resume: Annotated[bool, typer.Option(help="reuse finished stages of an earlier run in --out")] = True,
    device: DeviceOpt = "cpu",
    as_json: JsonOpt = False,
) -> None:
    """Run a compression recipe on a model; writes each stage, the final model and a report.

    Prints the results table and the report's path (the whole report is in OUT/report.md)."""
    from rnnslim.pipeline.recipe import RecipeError, find_recipe, load_recipe
    from rnnslim.pipeline.runner import run_pipeline

    _device(device)
    model = _load(model_path)
    try:
        recipe_file = find_recipe(recipe)
        rec = load_recipe(recipe_file)
    except RecipeError as e:
        _err_lines(str(e))
    if data is not None or rec.task is None:
        t = _task_for(model, data, rec.task.name if rec.task else None)
    else:  # the recipe's task section; its data path is relative to the recipe file
        from rnnslim.pipeline.tasks import build_task

        try:
            t = build_task(rec.task, model, recipe_file.resolve().parent)
        except (ValueError, FileNotFoundError, ImportError) as e:
            _err(f"{recipe_file}: task: {e}")
    try:
        result = run_pipeline(model, rec, t, out, resume=resume, device=device)
    except ValueError as e:
        _err(str(e).replace("(resume=False)", "(--no-resume)"), 2, type(e).__name__)
    if result is None:  # under torchrun, a rank other than 0: rank 0 wrote and reports
        return
    _emit(result.summary(), as_json, _compress_table(out))


def _compress_table(out: Path) -> str | None:
    """compress's screen output: the report's results table and where the report is."""
    from rnnslim.report.markdown import results_table
    from rnnslim.report.names import REPORT_JSON, REPORT_MD

    report_json = out / REPORT_JSON
    if not report_json.is_file():
        return None
    table = results_table(json.loads(report_json.read_text(encoding="utf-8")))
    return f"{table}\n\nreport: {out / REPORT_MD} (`rnnslim report {out} --html` writes report.html)"


@app.command()
@_guarded
def report(
    run_dir: Annotated[Path, typer.Argument(help="an `rnnslim compress` output directory (holds report.json)")],
    html: Annotated[bool, typer.Option("--html", help="write RUN_DIR/report.html (one self-contained page) and print its path")] = False,
    measurement: Annotated[Optional[Path], typer.Option(help="`rnnslim measure --json` output whose baselines join the size and latency charts (default: RUN_DIR/measure.json when there)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a compress run's report (report.md), or with --html write report.html from its report.json."""
    from rnnslim.report.html import write_html_report
    from rnnslim.report.names import REPORT_JSON, REPORT_MD

    if not (run_dir / REPORT_JSON).is_file():
        _err(f"{run_dir} holds no {REPORT_JSON}: not a finished `rnnslim compress` output directory")
    if measurement is not None and not measurement.is_file():
        _err(f"--measurement {measurement}: no such file")
    out = {"markdown": str(run_dir / REPORT_MD), "html": None}
    if html:
        out["html"] = str(write_html_report(run_dir, measurement=measurement))
    md = run_dir / REPORT_MD
    _emit(out, as_json, f"wrote {out['html']}" if html else (md.read_text() if md.is_file() else None))


@app.command()
@_guarded
def export(
    model_path: ModelArg,
    out: Annotated[Path, typer.Option(help="output: a directory (c, c-fp32, tflite) or a file (.onnx, .pt2)")],
    fmt: Annotated[str, typer.Option("--format", help="c (fully integer int8 model -> C99 library) | c-fp32 | onnx | onnx-int8 | torch (.pt2) | tflite (full-integer int8 .tflite for TensorFlow Lite Micro)")] = "c",
    name: Annotated[Optional[str], typer.Option(help="C identifier prefix (default: from the model name); tflite: the file NAME.tflite (default: model)")] = None,
    build: Annotated[bool, typer.Option(help="c: also compile lib<NAME>.so beside the sources, for C programs that link it")] = False,
    check: Annotated[int, typer.Option(help="c: random streams checked bit for bit against the kernel (0: skip); tflite: random streams compared with the integer int8 model (at least 1)")] = 100,
    data: Annotated[Optional[str], typer.Option("--data", help="tflite: the task's data, whose training batches calibrate the int8 conversion (default: the model's task's default data)")] = None,
    task: Annotated[Optional[str], typer.Option(help="tflite: task name for --data (default: from the model file)")] = None,
    fold_embedding: Annotated[Optional[bool], typer.Option("--fold-embedding/--no-fold-embedding", help="c: a V x 4H int32 table of layer-0 input terms instead of embedding + W_ih (default: when it takes less flash)")] = None,
    force: Annotated[bool, typer.Option(help="onnx, onnx-int8, torch: replace an existing file that rnnslim did not write (never the input model)")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Export a model to run elsewhere: a standalone C library (microcontrollers, servers), ONNX, or a
    full-integer int8 .tflite for TensorFlow Lite Micro (--format tflite --data FILE: calibration data).

    --out must be a new path or an earlier rnnslim export of the same kind (a C or tflite export
    directory holds rnnslim-export.json); it is never the input model, a model directory or a symlink."""
    from rnnslim.export.formats import export_model

    model = _load(model_path)
    calibration = _task_for(model, data, task) if fmt == "tflite" and (data or task) else None
    try:
        facts = export_model(model, fmt, out, name=name, build=build, check_streams=check,
                             fold_embedding=fold_embedding, force=force, calibration=calibration)
    except (ValueError, TypeError, ImportError, FileExistsError) as e:
        _err(str(e))
    human = None
    if fmt == "c":
        chk = facts.get("check", {})
        verdict = ("bit-exact on %d streams" % chk["streams"]) if chk.get("bit_exact") else chk.get("skipped", "not checked")
        human = (f"wrote {out}/{facts['name']}.{{c,h}} + rnnslim_core.h: flash {facts['const_bytes']:,} bytes (const "
                 f"arrays), RAM {facts['ram_bytes']:,} bytes (scratch {facts['scratch_bytes']:,} + state "
                 f"{facts['state_bytes']:,}); {verdict} against the int8 kernel")
        if facts.get("tokenizer"):  # a char / word LM: its vocabulary, for text <-> ids on the device
            human += (f"\n+ {facts['name']}_vocab.{{c,h}} ({facts['name']}_encode: text -> ids, "
                      f"{facts['name']}_token_text: id -> text; {facts['vocab_table_bytes']:,} bytes of flash) and "
                      "vocab.json (the same mapping for other languages)")
    if fmt == "tflite":
        chk, arena = facts["check"], (facts.get("tflite_micro") or {}).get("arena_bytes") or {}
        human = (f"wrote {out}/{facts['file']}: {facts['tflite_bytes']:,} bytes, full-integer int8 "
                 f"({', '.join(facts['ops'])}); TFLite Micro arena {arena.get('total', 'not measured')} bytes; "
                 f"vs rnnslim int8 on {chk['streams']} streams: argmax agreement {chk['argmax_agreement']:.3f}, "
                 f"max |logit diff| {chk['max_abs_logit_diff']:.3g} (details: {out}/tflite.json)")
    _emit(facts, as_json, human)


@app.command("import")
@_guarded
def import_(
    source: Annotated[Path, typer.Argument(metavar="FILE", help="a Keras model (.keras / .h5) or an ONNX model (.onnx)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="model directory to write (new, empty, or an earlier rnnslim model directory)")],
    task: Annotated[Optional[str], typer.Option(help="the rnnslim task the model serves (charlm, wordlm, classify, forecast), recorded so later commands need only --data")] = None,
    drop_softmax: Annotated[bool, typer.Option("--drop-softmax", help="leave a final softmax / log_softmax out of the model (default: kept as its output activation)")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Import a recurrent model trained elsewhere (Keras, ONNX) as an rnnslim model directory.

    Checked against Keras / ONNX Runtime on random inputs (max relative error 1e-5).
    Layers rnnslim cannot represent are refused by name."""
    from rnnslim.interop.save import check_import_destination, import_file, save_imported
    from rnnslim.tasks import task_names

    if not source.is_file():
        _err(f"{source}: no such file")
    if task is not None and task not in task_names():
        _err(f"--task {task!r}: unknown task; expected one of: {', '.join(task_names())}")
    try:
        check_import_destination(out, source)  # before the (slow) import
        model = import_file(source, drop_softmax=drop_softmax)
        path = save_imported(model, source, out, task=task)
    except (ValueError, ImportError, FileExistsError) as e:
        _err(str(e))
    spec = model.spec
    facts = {"model": str(path), "source": str(source), "parity_max_rel_error": getattr(model, "import_parity", None),
             "spec": spec.model_dump(mode="json")}
    layers = ", ".join(f"{s.hidden_size}{'x2' if s.bidirectional else ''}" for s in spec.layers)
    _emit(facts, as_json, f"imported {source} -> {path}: {spec.input_kind.value} {spec.input_size} -> {spec.cell.value} "
          f"[{layers}] -> {spec.readout.value} -> {spec.output_size} outputs; max relative error vs the original "
          f"{facts['parity_max_rel_error']:.2g}")


@app.command()
@_guarded
def stages(
    kind: Annotated[Optional[str], typer.Argument(help="one stage kind: its fields with types, defaults and help")] = None,
) -> None:
    """List the stage kinds a recipe can use (with a KIND: its fields, types, defaults and help)."""
    import difflib

    from rnnslim.pipeline.stage import get_stage, stage_kinds

    kinds = stage_kinds()
    if kind is None:
        for k in kinds:
            cls, _ = get_stage(k)
            doc = (cls.__doc__ or "").strip().splitlines()
            typer.echo(f"{k:18s} {doc[0] if doc else ''}")
        typer.echo("\n`rnnslim stages KIND` shows a stage's fields; `rnnslim recipes` lists the built-in recipes.")
        return
    if kind not in kinds:
        near = difflib.get_close_matches(kind, kinds, n=3)
        _err(f"unknown stage kind {kind!r}" + (f"; did you mean {', '.join(near)}?" if near else
                                               f"; kinds: {', '.join(kinds)}"))
    cls, _ = get_stage(kind)
    typer.echo(f"{kind}: {(cls.__doc__ or '').strip()}")
    for name, f in cls.model_fields.items():
        if name == "kind":
            continue
        ann = f.annotation.__name__ if isinstance(f.annotation, type) else str(f.annotation).replace("typing.", "")
        default = "required" if f.is_required() else f"default {f.get_default(call_default_factory=True)!r}"
        typer.echo(f"  {name:22s} {ann:28s} {default}" + (f"  {f.description}" if f.description else ""))


@app.command()
@_guarded
def recipes() -> None:
    """List the built-in recipes and what each costs and buys (use one: `rnnslim compress MODEL --recipe NAME`)."""
    from rich.console import Console
    from rich.table import Table

    from rnnslim.recipes import builtin_recipes, recipe_description

    found = builtin_recipes()
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False, padding=(0, 2, 1, 0))
    table.add_column("recipe", no_wrap=True)
    table.add_column("what it does, and what it cost and bought on a reference model (BENCHMARKS.md)",
                     overflow="fold")
    for name, path in found.items():
        table.add_row(name, recipe_description(path.read_text(encoding="utf-8")))
    console = Console(soft_wrap=False, highlight=False)  # wraps to the terminal's width (COLUMNS when piped)
    console.print(table)
    example = "deploy-int8" if "deploy-int8" in found else next(iter(found), "NAME")
    console.print(f"Use one by name: rnnslim compress MODEL --recipe {example} --out DIR. A path to your own "
                  f"YAML works too: copy a built-in from the installed package (rnnslim/recipes/{example}.yaml)",
                  markup=False)  # package-relative: the same text on every machine


@app.command()
@_guarded
def search(
    model_path: ModelArg,
    out: Annotated[Path, typer.Option(help="search directory: journal, trials/, results.json, best.yaml, pareto.png")],
    data: DataOpt = None,
    budget: Annotated[str, typer.Option(help="caps, e.g. bytes=1/20,latency_ms=0.5,loss=+2% (bytes: N, NkB, 1/N)")] = "",
    trials: Annotated[int, typer.Option(help="trials the study should finish (over all workers)")] = 20,
    storage: Annotated[Optional[str], typer.Option(help="journal file path or database URL (postgresql://...); default OUT/journal.log")] = None,
    study_name: Annotated[str, typer.Option(help="study to start or join")] = "rnnslim-search",
    workers: Annotated[int, typer.Option(help="worker processes on this machine")] = 1,
    n_trials: Annotated[Optional[int], typer.Option(help="at most this many trials run by this command")] = None,
    space: Annotated[Optional[Path], typer.Option(help="search space YAML (rnnslim.search.SearchSpace fields)")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="largest fine-tune of a trial (space.finetune.max_steps)")] = None,
    eval_tokens: Annotated[int, typer.Option(help="validation subset of the proxy rungs (tokens)")] = 5000,
    sampler: Annotated[str, typer.Option(help="tpe | nsga2")] = "tpe",
    prefer: Annotated[Optional[str], typer.Option(help="what the best trial minimizes among feasible ones: loss | bytes | latency_ms")] = None,
    latency: Annotated[bool, typer.Option(help="measure step latency (the third objective)")] = True,
    seed: Annotated[Optional[int], typer.Option(help="sampler seed")] = None,
    threads: Annotated[int, typer.Option(help="torch threads of every trial (training, evaluation, timing)")] = 1,
    warm_start: Annotated[Optional[Path], typer.Option(help="YAML list of parameter sets a new study tries first, "
                                                             "e.g. [{width_l0: 384, bits_rnn: 4}]")] = None,
    startup_trials: Annotated[Optional[int], typer.Option(
        help="TPE's random trials before it models the space (default: min(10, trials / 3))")] = None,
    size_floor: Annotated[Optional[float], typer.Option(
        help="prune before training a trial predicted under this fraction of the bytes cap, e.g. 0.4 "
             "(with --prefer bytes: keeps the search where the loss cap can still hold)")] = None,
    promotion: Annotated[str, typer.Option(
        help="pooled (default): a trial goes on to a longer fine-tune when it is among the best of all trials; "
             "by_family: of its recovery family (sparse or dense x fine-tune or QAT; docs/search.md)")] = "pooled",
    reference: Annotated[Optional[list[Path]], typer.Option(
        help="a `rnnslim compress` run directory (or its report.json) drawn beside the trials in pareto.png "
             "and report.html, e.g. your hand-written recipe's run; repeat for several")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Search compression recipes under a budget (Optuna: the search extra); writes the Pareto front, best.yaml and report.html."""
    import yaml

    from rnnslim.search.run import default_log, search as run_search
    from rnnslim.search.space import FinetuneSpace, SearchSpace

    try:
        import optuna  # noqa: F401
    except ImportError:
        _err("rnnslim search needs Optuna: pip install 'rnnslim[search]'")
    opts: dict = {}
    if space is not None:
        try:
            opts["space"] = SearchSpace.model_validate(yaml.safe_load(space.read_text(encoding="utf-8")) or {})
        except (OSError, yaml.YAMLError, ValueError) as e:
            _err(f"--space {space}: {e}")
    if max_steps is not None:
        base = opts.get("space", SearchSpace())
        opts["space"] = base.model_copy(update={"finetune": FinetuneSpace(**{**base.finetune.model_dump(),
                                                                            "max_steps": max_steps})})
    if sampler not in ("tpe", "nsga2"):
        _err(f"--sampler must be tpe or nsga2, got {sampler!r}")
    if warm_start is not None:
        opts["enqueue"] = _warm_start_points(warm_start)
    if startup_trials is not None:
        if startup_trials < 1:
            _err(f"--startup-trials must be >= 1, got {startup_trials}")
        opts["startup_trials"] = startup_trials
    if size_floor is not None:
        if not 0 < size_floor < 1:
            _err(f"--size-floor must be between 0 and 1 (a fraction of the bytes cap), got {size_floor}")
        if "bytes" not in budget:
            _err("--size-floor is a fraction of the bytes cap: give --budget bytes=... too")
        opts["size_floor"] = size_floor
    if promotion not in ("by_family", "pooled"):
        _err(f"--promotion must be by_family or pooled, got {promotion!r}")
    opts["promotion"] = promotion
    if reference:
        from rnnslim.search.references import ReferenceError, load_reference

        try:
            opts["references"] = [load_reference(p) for p in reference]
        except ReferenceError as e:
            _err(f"--reference: {e}")
    _load(model_path)  # a clear error for a bad model path before any worker starts
    res = run_search(str(model_path), data=data, budget=budget, trials=trials, out=out, storage=storage,
                     workers=workers, n_trials=n_trials, study_name=study_name, eval_tokens=eval_tokens,
                     sampler=sampler, prefer=prefer, latency=latency, seed=seed,
                     log=None if as_json else default_log, progress=not as_json, threads=threads, **opts)
    summary = {k: res.get(k) for k in ("study", "budget", "caps", "baseline", "states", "complete_by_fidelity",
                                       "pareto_front", "best", "verdict", "skipped_dimensions")}
    summary["results"] = str(out / "results.json")
    summary["report_html"] = str(out / "report.html")
    human = (f"{res.get('verdict') or 'no verdict (no trial finished)'}\n"
             f"Pareto front (trials): {res.get('pareto_front')}\nresults: {out / 'results.json'}\n"
             f"report: {out / 'report.html'}")
    _emit(summary, as_json, human)


def _warm_start_points(path: Path) -> list[dict]:
    """--warm-start FILE: a YAML list of {parameter: value} mappings (names as in results.json)."""
    import yaml

    try:
        points = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        _err(f"--warm-start {path}: {e}")
    ok = isinstance(points, list) and all(isinstance(p, dict) and p and all(
        isinstance(k, str) and isinstance(v, (int, float, str, bool)) for k, v in p.items()) for p in points)
    if not ok:
        _err(f"--warm-start {path}: expected a YAML list of parameter mappings, e.g. "
             "[{width_l0: 384, finetune_steps: 2000}], with numbers, strings or booleans as values")
    return points


@app.command()
@_guarded
def demo(
    out: Annotated[Path, typer.Option(help="where the demo writes its model, run and report")] = Path("rnnslim-demo"),
    quick: Annotated[bool, typer.Option(help="a smaller, faster demo (used by the tests)")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Train a small model on the built-in corpus, compress it with a recipe, print a table, write a report."""
    from rnnslim.demo import run_demo

    summary = run_demo(out, quick=quick, log=lambda m: typer.echo(m, err=True))
    _emit(summary, as_json, summary.get("table"))


def _version(value: bool) -> None:
    if value:
        from rnnslim import __version__

        typer.echo(f"rnnslim {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="print the version and exit")] = False) -> None:
    """Make trained LSTM/GRU models smaller and faster, and measure it honestly."""


def main() -> None:
    app()


if __name__ == "__main__":
    main()
