"""torch.export of one streaming step of a SequenceModel (float or weight-only quantized) to `.pt2`.

    facts = export_torch_program(model, "step.pt2")          # torch.export.export + torch.export.save
    prog = load_torch_program("step.pt2")                     # torch.export.load (see the warning below)
    y, state = prog.step(x, prog.init_state(1))               # x (1, B) ids | (1, B, F) features

The program is the step of rnnslim.export.onnx's graph contract with torch tensors:
`program(x, *state) -> (y, *state)`, state flattened as [h0, c0, h1, c1, ...] (LSTM) or
[h0, h1, ...], each (D, B, P|H). Batch is dynamic (torch.export.Dim); time is fixed to T = 1
(torch.export specialises the time dimension of nn.LSTM / nn.GRU, verified with torch 2.13), so
a sequence is run step by step (`TorchStepProgram.sequence`). The layout (StepLayout) is stored
in the archive as the extra file `rnnslim_step_layout.json`.

Weight-only quantized layers (rnnslim.quantize QuantRecurrent / QuantEmbedding / QuantLinear)
cannot be traced as they are: their dequantization cache keys on `data_ptr()` and version
counters, which torch.export's fake tensors do not have. Two ways out, chosen by `weights`:

    "float"   (default) each weight-only layer is replaced by the torch layer holding its
              dequantized weights (`float_weights_copy`): the program stores fp32 weights (the
              size of a float model) and runs exactly like the float model, numerically equal to
              the quantized model (the weights *are* the dequantized values).
    "stored"  the program keeps the quantized buffers (codes, scales, zero points, codebooks) and
              decodes them inside the graph on every call: the file stays small, each step pays
              the decode of every weight (slow for large models; measure before deploying).

Security: `torch.export.load` uses pickle. It unpickles the archive's sample inputs (with
`torch.load(weights_only=True)` first, then, if that fails, without the restriction) and every
weight or constant the archive marks as pickled (`torch.load(weights_only=False)` / `pickle.loads`).
A `.pt2` file from somewhere else can therefore run arbitrary code when loaded. The files written
here hold plain tensors only, and `load_torch_program` refuses archives with pickled entries or
sample inputs that the restricted unpickler rejects (`inspect_pt2`); that check covers the pickle
paths of torch 2.13's loader, but it is no guarantee: only load `.pt2` files you made yourself.
"""

from __future__ import annotations

import copy
import io
import json
import shutil
import tempfile
import types
import warnings
import zipfile
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from rnnslim.export.destination import LAYOUT_FILE
from rnnslim.export.onnx import StepGraph, StepLayout, example_inputs, flatten_state, step_layout, unflatten_state
from rnnslim.utils.threads import torch_threads

TORCH_PARITY_TOL = 1e-5
WEIGHT_MODES = ("float", "stored")


class TorchExportError(RuntimeError):
    """The exported program does not compute what the model computes, or could not be made."""


class UnsafeArchiveError(ValueError):
    """A .pt2 archive holds entries that torch.export.load would unpickle without restriction."""


# --- weight-only layers ----------------------------------------------------------------------
def _weight_only_types():
    from rnnslim.quantize.lowbit import QuantEmbedding, QuantLinear, QuantRecurrent
    from rnnslim.quantize.qtensor import QTensor

    return QuantRecurrent, QuantEmbedding, QuantLinear, QTensor


def _set_module(root: nn.Module, path: str, mod: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, mod)


def float_weights_copy(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """(copy of `model` with every weight-only quantized layer replaced by the torch layer holding its
    dequantized weights, the paths replaced). A tied decoder ends up with its own copy of the weights.

    Raises TypeError for a QuantRecurrent with activation fake quantization (QAT with activations):
    the float torch layer cannot reproduce it (use torch export with weights="stored")."""
    QuantRecurrent, QuantEmbedding, QuantLinear, _ = _weight_only_types()
    m = copy.deepcopy(model)
    done = []
    for path, mod in list(m.named_modules()):
        if isinstance(mod, QuantRecurrent):
            if mod.act is not None:
                raise TypeError(f"{path}: weight-only layer with activation fake quantization has no float twin; "
                                "export it with weights='stored'")
            new: nn.Module = mod.to_float()
        elif isinstance(mod, QuantEmbedding):
            new = nn.Embedding(mod.num_embeddings, mod.embedding_dim, padding_idx=mod.padding_idx)
            new.weight.data.copy_(mod.qweights["weight"].dequantize())
        elif isinstance(mod, QuantLinear):
            new = nn.Linear(mod.in_features, mod.out_features, bias=mod.bias is not None)
            new.weight.data.copy_(mod.qweights["weight"].dequantize())
            if mod.bias is not None:
                new.bias.data.copy_(mod.bias.detach().float())
        else:
            continue
        _set_module(m, path, new.train(mod.training))
        done.append(path)
    return m, done


def _decode_in_graph(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """Copy whose QTensors decode their buffers on every call (no cache): traceable, and the
    exported program keeps the quantized buffers. Per-instance override; the class is untouched."""
    _, _, _, QTensor = _weight_only_types()
    m = copy.deepcopy(model)
    done = []

    def decode(self) -> Tensor:
        return self.fmt.decode(dict(self.named_buffers(recurse=False)), self.shape)

    for path, mod in m.named_modules():
        if isinstance(mod, QTensor):
            mod.dequantize = types.MethodType(decode, mod)
            done.append(path)
    return m, done


# --- the step program ---------------------------------------------------------------------------
def _as_torch(a) -> Tensor:
    return a if isinstance(a, Tensor) else torch.from_numpy(np.asarray(a))


class TorchStepProgram:
    """A loaded `.pt2` step program: `step(x, state) -> (y, state)` with torch tensors."""

    def __init__(self, program, layout: StepLayout, path: Path | None = None) -> None:
        self.program = program
        self.layout = layout
        self.path = path
        self.module = program.module()

    def init_state(self, batch: int = 1) -> list[Tensor]:
        return [torch.zeros(d, batch, n) for _, d, n in self.layout.states]

    @torch.no_grad()
    def run(self, inputs: list) -> list[Tensor]:
        return list(self.module(*(_as_torch(a) for a in inputs)))

    def step(self, x, state: list) -> tuple[Tensor, list[Tensor]]:
        out = self.run([x, *state])
        return out[0], out[1:]

    def sequence(self, x) -> Tensor:
        """Whole input x (T, B[, F]) from a zero state, one step at a time, combined like the model's readout."""
        x = _as_torch(x)
        state, ys = self.init_state(x.shape[1]), []
        for t in range(x.shape[0]):
            y, state = self.step(x[t : t + 1], state)
            ys.append(y)
        if self.layout.readout == "all":
            return torch.cat(ys, 0)
        return ys[-1] if self.layout.readout == "last" else torch.stack(ys).mean(0)


def _layout_json(layout: StepLayout) -> str:
    d = asdict(layout)
    d["states"] = [list(s) for s in layout.states]
    return json.dumps(d)


def _graph_ops(program) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in program.graph.nodes:
        if node.op == "call_function":
            name = str(node.target)
            counts[name] = counts.get(name, 0) + 1
    return counts


def export_torch_program(model: nn.Module, path: str | Path, *, weights: str = "float", tol: float = TORCH_PARITY_TOL,
                         check_steps: int = 100, strict: bool = False, force: bool = False) -> dict:
    """Export one streaming step of a SequenceModel (float, or with weight-only quantized layers) with
    torch.export.export (non-strict by default) and write it with torch.export.save to `path` (.pt2).

    weights: "float" or "stored" (see the module docstring). The saved file is loaded back (through
    the archive check of `load_torch_program`) and compared with `model` over `check_steps` streaming
    steps at batch 1 from a random state plus one call at batch 3; raises TorchExportError when the
    largest |program - model| exceeds `tol`. Returns facts: path, format, bytes, weights,
    dequantized_layers / in_graph_decoded, op_types (aten ops of the graph), parity_max_abs_diff,
    parity {...}, layout, torch version. Raises ExportDestinationError (before any work) when `path`
    is not a place an export may write (destination.py: a file not written by rnnslim needs `force`)."""
    from rnnslim.export.destination import check_destination, place_file

    if not (hasattr(model, "spec") and hasattr(model, "rnn")):
        raise TypeError(f"export_torch_program needs a SequenceModel (spec + rnn stack), got {type(model).__name__}")
    if weights not in WEIGHT_MODES:
        raise ValueError(f"weights must be one of {WEIGHT_MODES}, got {weights!r}")
    path = check_destination(path, "torch", model, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    layout = replace(step_layout(model), static_time=True)  # T = 1
    if weights == "float":
        m, changed = float_weights_copy(model)
    else:
        m, changed = _decode_in_graph(model)
    m.eval()
    lstm = layout.cell == "lstm"
    ex = example_inputs(layout, T=1, B=2)  # B = 2: torch.export specialises dimensions of size 1
    args = tuple(torch.from_numpy(a) for a in ex)
    batch = torch.export.Dim("batch", min=1)
    shapes = ({1: batch}, tuple({1: batch} for _ in layout.states))  # forward(x, *flat)
    # written beside `path` under its final name (the archive's folder is named after the file),
    # then moved into place: a failed export never leaves a broken file at `path`
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp = tmpdir / path.name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nn.RNNBase re-assigns _flat_weights while tracing (known)
            try:
                program = torch.export.export(StepGraph(m, lstm).eval(), args, dynamic_shapes=shapes, strict=strict)
            except Exception as e:
                first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
                raise TorchExportError(f"torch.export failed ({weights} weights): {type(e).__name__}: {first}") from e
            torch.export.save(program, str(tmp), extra_files={LAYOUT_FILE: _layout_json(layout)})
        report = inspect_pt2(tmp)
        if not report["safe"]:
            raise TorchExportError(f"torch.export.save wrote pickled entries: {report['unsafe']}")
        loaded = load_torch_program(tmp)
        parity = torch_program_parity(model, loaded, steps=check_steps)
        if not parity["max_abs_diff"] <= tol:
            raise TorchExportError(f"exported program differs from the model: max |program - model| = "
                                   f"{parity['max_abs_diff']:.3g} > {tol:g}")
        place_file(tmp, path, "torch", model, force)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    d = json.loads(_layout_json(layout))
    return {"path": str(path), "format": "torch-pt2", "bytes": path.stat().st_size, "weights": weights,
            "dequantized_layers": changed if weights == "float" else [],
            "in_graph_decoded": changed if weights == "stored" else [], "op_types": _graph_ops(program),
            "parity_max_abs_diff": parity["max_abs_diff"], "parity": parity, "layout": d,
            "torch": torch.__version__, "pickled_entries": 0}


# --- loading ------------------------------------------------------------------------------------
def inspect_pt2(path: str | Path) -> dict:
    """What torch.export.load would unpickle in a .pt2 archive, read without unpickling anything
    but the sample inputs, which are tried with the restricted `torch.load(weights_only=True)`.

    Returns {"safe": bool, "unsafe": [reasons], "files": n}. Unsafe: payload entries marked
    use_pickle, torchbind / opaque constants, legacy pickled weight or constant files, sample inputs
    the restricted unpickler rejects, or an archive that is not a torch.export .pt2."""
    unsafe: list[str] = []
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        configs = [n for n in names if n.endswith(("_weights_config.json", "_constants_config.json"))]
        if not any("/models/" in n or n.startswith("models/") for n in names) or not configs:
            unsafe.append("not a torch.export .pt2 archive (no models/ or payload configs)")
        for n in configs:
            for fqn, meta in json.loads(z.read(n)).get("config", {}).items():
                if meta.get("use_pickle"):
                    unsafe.append(f"{n}: {fqn} is pickled")
                if str(meta.get("path_name", "")).startswith(("custom_obj", "opaque_obj")):
                    unsafe.append(f"{n}: {fqn} is a pickled object constant")
        for n in names:
            if ("/data/weights/" in n or "/data/constants/" in n or n.startswith("data/")) and n.endswith(".pt"):
                unsafe.append(f"{n}: legacy pickled payload")
            if "sample_inputs" in n:
                data = z.read(n)
                if data:
                    try:
                        torch.load(io.BytesIO(data), weights_only=True)
                    except Exception as e:
                        unsafe.append(f"{n}: sample inputs need unrestricted unpickling ({type(e).__name__})")
    return {"safe": not unsafe, "unsafe": unsafe, "files": len(names)}


def load_torch_program(path: str | Path, *, check: bool = True) -> TorchStepProgram:
    """Load a `.pt2` written by export_torch_program (torch.export.load) as a TorchStepProgram.

    WARNING: torch.export.load unpickles (see the module docstring): loading a .pt2 can run code
    from the file. Only load files you made. With check=True (default) the archive is first read
    without unpickling (`inspect_pt2`) and refused (UnsafeArchiveError) when torch.export.load would
    unpickle anything beyond plain sample-input tensors; this narrows the risk, it does not make
    untrusted files safe."""
    path = Path(path)
    if check:
        report = inspect_pt2(path)
        if not report["safe"]:
            raise UnsafeArchiveError(f"{path}: refusing to load: " + "; ".join(report["unsafe"][:5]))
    extra = {LAYOUT_FILE: ""}
    program = torch.export.load(str(path), extra_files=extra)
    if not extra[LAYOUT_FILE]:
        raise ValueError(f"{path}: no {LAYOUT_FILE} in the archive; it was not written by export_torch_program")
    d = json.loads(extra[LAYOUT_FILE])
    d["states"] = [tuple(s) for s in d["states"]]
    return TorchStepProgram(program, StepLayout(**d), path)


# --- parity ---------------------------------------------------------------------------------------
@torch.no_grad()
def torch_program_parity(model: nn.Module, program: TorchStepProgram | str | Path, steps: int = 100,
                         seed: int = 0) -> dict:
    """Max |program - model| over logits and state for `steps` streaming steps at batch 1 (random inputs,
    each side carrying its own state from the same random state) and one call at batch 3."""
    prog = program if isinstance(program, TorchStepProgram) else load_torch_program(program)
    layout = prog.layout
    ref = copy.deepcopy(model).eval()
    lstm = layout.cell == "lstm"
    g = np.random.default_rng(seed + 1)
    first = [torch.from_numpy(a) for a in example_inputs(layout, seed=seed)[1:]]
    t_state, p_state = first, first
    worst_y = worst_s = 0.0
    with torch_threads(1):  # batch-1 steps: one thread is fastest (and steadier on a shared machine)
        for _ in range(steps):
            x = torch.from_numpy(example_inputs(layout, seed=int(g.integers(1 << 30)))[0])
            y_t, st = ref(x, unflatten_state(list(t_state), lstm))
            t_state = flatten_state(st)
            y_p, p_state = prog.step(x, p_state)
            worst_y = max(worst_y, float((y_t - y_p).abs().max()))
            worst_s = max([worst_s, *(float((a - b).abs().max()) for a, b in zip(t_state, p_state))])
        batch = [torch.from_numpy(a) for a in example_inputs(layout, T=1, B=3, seed=seed + 2)]
        y_t, st = ref(batch[0], unflatten_state(batch[1:], lstm))
        out = prog.run(batch)
    worst_b = max(float((a - b).abs().max()) for a, b in zip([y_t, *flatten_state(st)], out))
    return {"steps": steps, "logits_max_abs_diff": worst_y, "state_max_abs_diff": worst_s,
            "batch3_max_abs_diff": worst_b, "max_abs_diff": max(worst_y, worst_s, worst_b)}
