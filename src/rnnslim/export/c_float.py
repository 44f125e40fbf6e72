"""Standalone C99 source of a float model, the fp32 reference variant of `export_c`.

    out/
      rnnslim_float_core.h  the float step (static functions; needs only <math.h> expf / tanhf)
      NAME.h                API: NAME_init / NAME_reset / NAME_step (token models)
                            or NAME_step_features (feature models)
      NAME.c                weights as const float arrays (exact hex literals), static scratch
      model.json            manifest: format "rnnslim-c-fp32", sizes, flash / RAM bytes, sha256s

Scope: a SequenceModel with float weights; embedding input (token ids) or feature input
(InputKind LINEAR: a Linear projection, or IDENTITY); unidirectional LSTM / GRU / RNN (tanh
or relu) layers held as torch.nn.LSTM / GRU / RNN in model.rnn.layers; the decoder Linear
applied at every step (readout "all"; for readout "last" the logits after a sequence's
final step are the model's output). Refused with a ValueError: bidirectional layers, LSTM
proj_size, readout "mean", quantized layers (export those with `export_c`).

Pruned weights are exported as their effective values: rnnslim applies masks in place
(prune/masks.py: the parameters hold exact zeros), and a tensor reparametrized by
torch.nn.utils.prune (`W_orig`, `W_mask`) is exported as W_orig * W_mask. Matrices are
stored dense (transposed, see rnnslim_float_core.h), so pruning saves no flash here.

The outputs equal SequenceModel.forward in eval mode (state carried from step to step) to
float32 rounding: the sums run in another order than torch's matrix kernels, and expf /
tanhf are the C library's, not torch's vectorized ones (tests/export check max |diff|).
Build with any C99 compiler and libm, e.g.

    cc -std=c99 -O2 -ffp-contract=off -c NAME.c
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rnnslim.export.c_names import model_c_name
from rnnslim.export.c_scaling import model_scaling
from rnnslim.export.c_vocab import model_vocabulary, vocab_files
from rnnslim.export.c_source import CExport, _Arrays, write_export
from rnnslim.export.destination import check_destination
from rnnslim.recurrent.gates import CellType, cell_of_module, gate_count

FORMAT_FP32 = "rnnslim-c-fp32"
FLOAT_CORE = Path(__file__).with_name("rnnslim_float_core.h")
_CELL_ID = {CellType.LSTM: "RSF_LSTM", CellType.GRU: "RSF_GRU", CellType.RNN_TANH: "RSF_RNN_TANH",
            CellType.RNN_RELU: "RSF_RNN_RELU"}
_INPUT_ID = {"embedding": "RSF_IN_EMBEDDING", "linear": "RSF_IN_LINEAR", "identity": "RSF_IN_IDENTITY"}
SUPPORTED = ("a SequenceModel with float weights: embedding or feature input (linear / identity), "
             "unidirectional LSTM (no proj_size) / GRU / RNN layers, decoder at every step (readout all or last)")


@dataclass
class CFloatExport(CExport):
    """What `export_c_float` wrote (also the manifest, model.json). `vocab` is the token
    vocabulary (0 for feature models); `inputs` is the vocabulary or the feature count."""

    input_kind: str = "embedding"
    inputs: int = 0
    embed: int = 0  # width fed to the first recurrent layer


@dataclass
class _FloatLayer:
    input: int
    hidden: int
    w_ih: np.ndarray  # (G*H, I) float32
    w_hh: np.ndarray  # (G*H, H)
    b_ih: np.ndarray | None
    b_hh: np.ndarray | None


def effective_weight(module: nn.Module, name: str) -> torch.Tensor | None:
    """The value `module` computes with for parameter `name`: W_orig * W_mask when
    torch.nn.utils.prune reparametrized it, else the tensor itself (rnnslim's masks are
    applied in place, so a pruned parameter already holds its zeros)."""
    orig, mask = getattr(module, name + "_orig", None), getattr(module, name + "_mask", None)
    if isinstance(orig, torch.Tensor) and isinstance(mask, torch.Tensor):
        return orig.detach() * mask.detach().to(orig.dtype)
    t = getattr(module, name, None)
    return t.detach() if isinstance(t, torch.Tensor) else None


def _f32(t: torch.Tensor | None, what: str) -> np.ndarray | None:
    if t is None:
        return None
    if not t.is_floating_point():
        raise ValueError(f"{what} is {t.dtype}, not a float tensor: export_c_float exports float models "
                         f"(integer int8 models: export_c)")
    a = t.detach().cpu().to(torch.float32).numpy()
    if not np.isfinite(a).all():
        raise ValueError(f"{what} has non-finite values; cannot export")
    return np.ascontiguousarray(a)


def _float_layers(model) -> tuple[CellType, list[_FloatLayer]]:
    stack = model.rnn
    cell = CellType(stack.cell)
    out: list[_FloatLayer] = []
    in_size = int(stack.input_size)
    G = gate_count(cell)
    for k, mod in enumerate(stack.layers):
        where = f"rnn.layers.{k}"
        if type(mod) not in (nn.LSTM, nn.GRU, nn.RNN):
            raise ValueError(f"{where} is a {type(mod).__name__}, not a float torch.nn.LSTM / GRU / RNN; "
                             f"export_c_float supports {SUPPORTED} (integer int8 models: export_c)")
        if cell_of_module(mod) is not cell:
            raise ValueError(f"{where} is a {cell_of_module(mod).value} layer in a {cell.value} stack")
        if mod.bidirectional:
            raise ValueError(f"{where} is bidirectional: a streaming C step cannot run the reverse direction; "
                             f"export_c_float supports {SUPPORTED}")
        if getattr(mod, "proj_size", 0):
            raise ValueError(f"{where} is an LSTM with proj_size={mod.proj_size}, not supported; "
                             f"export_c_float supports {SUPPORTED}")
        H = int(mod.hidden_size)
        for sub in range(int(mod.num_layers)):  # rnnslim keeps one layer per module; accept more
            get = lambda n: _f32(effective_weight(mod, f"{n}_l{sub}"), f"{where}.{n}_l{sub}")  # noqa: E731
            w_ih, w_hh, b_ih, b_hh = get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")
            if w_ih is None or w_hh is None or w_ih.shape != (G * H, in_size) or w_hh.shape != (G * H, H):
                raise ValueError(f"{where}: weights of shapes {None if w_ih is None else w_ih.shape} / "
                                 f"{None if w_hh is None else w_hh.shape}, expected {(G * H, in_size)} / {(G * H, H)}")
            out.append(_FloatLayer(in_size, H, w_ih, w_hh, b_ih, b_hh))
            in_size = H
    return cell, out


def _linear(mod, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    if not isinstance(mod, nn.Linear):
        raise ValueError(f"{what} is a {type(mod).__name__ if mod is not None else 'missing module'}, not a float "
                         f"nn.Linear; export_c_float supports {SUPPORTED} (integer int8 models: export_c)")
    return _f32(effective_weight(mod, "weight"), what + ".weight"), _f32(effective_weight(mod, "bias"), what + ".bias")


def _affine(arrs: _Arrays, prefix: str, w: np.ndarray, b: np.ndarray | None) -> str:
    rows, cols = w.shape
    wt = arrs.add(prefix + "_wt", np.ascontiguousarray(w.T), align=True)  # column-major: wt[c * rows + r]
    bias = arrs.add(prefix + "_b", b) if b is not None else "NULL"
    return f"{{ .rows = {rows}, .cols = {cols}, .wt = {wt}, .b = {bias} }}"


@dataclass
class _Program:
    cell: CellType
    input_kind: str
    inputs: int  # vocabulary or features
    embed: int
    layers: list[_FloatLayer]
    emb: np.ndarray | None
    proj: tuple[np.ndarray, np.ndarray | None] | None
    dec: tuple[np.ndarray, np.ndarray | None]

    @property
    def out(self) -> int:
        return int(self.dec[0].shape[0])

    @property
    def state_len(self) -> int:
        return sum((2 if self.cell is CellType.LSTM else 1) * ly.hidden for ly in self.layers)

    @property
    def max_rows(self) -> int:
        return max(gate_count(self.cell) * ly.hidden for ly in self.layers)

    def scratch_floats(self) -> int:
        return 2 * self.max_rows + (self.embed if self.input_kind == "linear" else 0)


def _program(model) -> _Program:
    from rnnslim.models.sequence import InputKind, Readout, refuse_front_end

    spec = getattr(model, "spec", None)
    if spec is None or not hasattr(model, "rnn") or not hasattr(model, "decoder"):
        raise ValueError(f"export_c_float takes a rnnslim SequenceModel, not a {type(model).__name__}")
    refuse_front_end(spec, "export_c_float")
    if spec.readout is Readout.MEAN:
        raise ValueError("readout 'mean' is not supported (the C step emits the logits of each step); "
                         f"export_c_float supports {SUPPORTED}")
    cell, layers = _float_layers(model)
    kind = InputKind(spec.input_kind)
    emb = proj = None
    if kind is InputKind.EMBEDDING:
        mod = getattr(model, "embedding", None)
        if not isinstance(mod, nn.Embedding):
            raise ValueError(f"the embedding is a {type(mod).__name__}, not a float nn.Embedding; "
                             f"export_c_float supports {SUPPORTED} (integer int8 models: export_c)")
        emb = _f32(effective_weight(mod, "weight"), "embedding.weight")
        inputs, embed = emb.shape
    elif kind is InputKind.LINEAR:
        proj = _linear(getattr(model, "input_proj", None), "input_proj")
        embed, inputs = proj[0].shape
    else:
        inputs = embed = int(spec.input_size)
    if embed != layers[0].input:
        raise ValueError(f"the input width {embed} differs from the first layer's input {layers[0].input}")
    dec = _linear(getattr(model, "decoder", None), "decoder")
    if dec[0].shape[1] != layers[-1].hidden:
        raise ValueError(f"decoder input {dec[0].shape[1]} differs from the last layer's hidden {layers[-1].hidden}")
    return _Program(cell, kind.value, int(inputs), int(embed), layers, emb, proj, dec)


def _header(name: str, p: _Program, source: str) -> str:
    N = name.upper()
    hidden = ", ".join(str(ly.hidden) for ly in p.layers)
    state = "per layer: LSTM [h | c], GRU / RNN [h]"
    if p.input_kind == "embedding":
        what = f"vocabulary {p.inputs}, embedding {p.embed}"
        use = f" *   {name}_step(&s, token, logits);      per token: float logits[{N}_OUTPUTS]"
        decl = (f"#define {N}_VOCAB {p.inputs}\n", f"""/* One token: updates *s, writes {N}_OUTPUTS float logits. Returns 0, or -1 when the token
   is outside [0, {N}_VOCAB) (nothing changed). */
int {name}_step({name}_state *s, int32_t token, float *logits);""")
    else:
        what = f"{p.inputs} input features" + (f" projected to {p.embed}" if p.input_kind == "linear" else "")
        use = f" *   {name}_step_features(&s, x, logits);  per step: float x[{N}_FEATURES], logits[{N}_OUTPUTS]"
        decl = (f"#define {N}_FEATURES {p.inputs}\n", f"""/* One step of {N}_FEATURES float features: updates *s, writes {N}_OUTPUTS float logits.
   Returns 0. */
int {name}_step_features({name}_state *s, const float *x, float *logits);""")
    return f"""/* {name}.h: generated by rnnslim from {source} (do not edit).
 * fp32 {p.cell.value.upper()}: {what}, hidden [{hidden}], {p.out} outputs. Batch 1, one time step
 * per call. The step uses static scratch buffers: one stream at a time per program (a state
 * per stream; calls must not overlap). Needs <math.h> expf / tanhf (link with -lm).
 *
 *   {name}_state s;
 *   {name}_init();                       once
 *   {name}_reset(&s);                    start of a stream
{use}
 */
#ifndef {N}_H
#define {N}_H
#include <stdint.h>

{decl[0]}#define {N}_OUTPUTS {p.out}
#define {N}_STATE_LEN {p.state_len}

/* {state}, as float */
typedef struct {{ float v[{N}_STATE_LEN]; }} {name}_state;

/* Prepare the scratch buffers; returns 0. */
int {name}_init(void);
/* The state of a new stream (all zeros). */
void {name}_reset({name}_state *s);
{decl[1]}

#endif
"""


def _source(name: str, p: _Program) -> tuple[str, int]:
    arrs = _Arrays()
    emb = arrs.add("emb", p.emb) if p.emb is not None else "NULL"
    proj = _affine(arrs, "proj", *p.proj) if p.proj is not None else "{ 0, 0, NULL, NULL }"
    inits = []
    for k, ly in enumerate(p.layers):
        wx, wh = _affine(arrs, f"l{k}_ih", ly.w_ih, ly.b_ih), _affine(arrs, f"l{k}_hh", ly.w_hh, ly.b_hh)
        inits.append(f"    {{ .input = {ly.input}, .hidden = {ly.hidden}, .rows = {ly.w_ih.shape[0]}, "
                     f".wx = {wx}, .wh = {wh} }}")
    dec = _affine(arrs, "dec", *p.dec)
    R, E = p.max_rows, p.embed
    xbuf = f"static float xbuf[{E}] RS_ALIGN64;\n" if p.input_kind == "linear" else ""
    if p.input_kind == "embedding":
        step = f"""int {name}_step({name}_state *s, int32_t token, float *logits) {{
    return rsf_core_step(&model, token, NULL, s->v, logits);
}}"""
    else:
        step = f"""int {name}_step_features({name}_state *s, const float *x, float *logits) {{
    return rsf_core_step(&model, 0, x, s->v, logits);
}}"""
    layer_block, array_block = ",\n".join(inits), "\n".join(arrs.lines)
    text = f"""/* {name}.c: generated by rnnslim (do not edit). Weights are const float arrays (flash),
   written as exact hexadecimal literals; the scratch buffers below are the only static RAM.
   The step is rnnslim_float_core.h. */
#include <stddef.h>
#include "{name}.h"
#include "rnnslim_float_core.h"

{array_block}

static const rsf_layer layers[{len(p.layers)}] = {{
{layer_block}
}};

{xbuf}static float ga[{R}] RS_ALIGN64, gb[{R}] RS_ALIGN64;

static const rsf_model model = {{
    .cell = {_CELL_ID[p.cell]}, .input_kind = {_INPUT_ID[p.input_kind]}, .L = {len(p.layers)}, .V = {p.inputs},
    .E = {E}, .O = {p.out}, .state_len = {p.state_len},
    .emb = {emb}, .proj = {proj}, .layers = layers, .dec = {dec},
    .xbuf = {"xbuf" if p.input_kind == "linear" else "NULL"}, .ga = ga, .gb = gb
}};

int {name}_init(void) {{
    memset(ga, 0, sizeof ga); memset(gb, 0, sizeof gb);{" memset(xbuf, 0, sizeof xbuf);" if xbuf else ""}
    return 0;
}}

void {name}_reset({name}_state *s) {{ memset(s->v, 0, sizeof s->v); }}

{step}
"""
    return text, arrs.const_bytes


def export_c_float(model, out: str | Path, name: str | None = None, source: str | None = None) -> CFloatExport:
    """Write the fp32 C library of a float SequenceModel into directory `out` (see the module
    docstring for the scope; anything else is refused with a ValueError before anything is
    written). The directory is written atomically (complete or absent), only where destination.py
    allows (checked first). Returns the manifest."""
    check_destination(out, "c-fp32", model)
    program = _program(model)
    name = model_c_name(model, name)
    text, const_bytes = _source(name, program)
    vocab = model_vocabulary(model, program.inputs) if program.input_kind == "embedding" else None
    in_scaling, out_scaling = model_scaling(model, program.inputs if program.input_kind != "embedding" else 0,
                                            program.out)
    facts = CFloatExport(
        name=name, cell=program.cell.value, layers=[ly.hidden for ly in program.layers],
        vocab=program.inputs if program.input_kind == "embedding" else 0, outputs=program.out,
        state_len=program.state_len, const_bytes=const_bytes, scratch_bytes=4 * program.scratch_floats(),
        state_bytes=4 * program.state_len, tile_sparse=[], folded_embedding=False, format=FORMAT_FP32,
        input_kind=program.input_kind, inputs=program.inputs, embed=program.embed,
        tokenizer=vocab.tokenizer if vocab else None, vocab_table_bytes=vocab.table_bytes() if vocab else 0,
        input_scaling=in_scaling.to_dict() if in_scaling else None,  # stated in the manifest (c_scaling.py)
        output_scaling=out_scaling.to_dict() if out_scaling else None)
    files = {f"{name}.h": _header(name, program, source or name).encode(), f"{name}.c": text.encode(),
             FLOAT_CORE.name: FLOAT_CORE.read_bytes()}
    if vocab is not None:  # the same token table as the int8 export (c_vocab.py)
        files |= vocab_files(name, vocab, source or name)
    return write_export(Path(out), facts, files, model)


__all__ = ["CFloatExport", "FORMAT_FP32", "effective_weight", "export_c_float"]
