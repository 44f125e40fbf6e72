"""Standalone C99 source of a fully integer int8 model: `rnnslim export MODEL --format c`.

    out/
      rnnslim_core.h     the integer step (the very file the host kernel compiles)
      NAME.h             API: NAME_init / NAME_reset / NAME_step / NAME_step_int (streaming),
                         NAME_run / NAME_workspace_bytes (a whole sequence)
      NAME.c             weights as const arrays (flash), static scratch buffers (RAM)
      model.json         manifest: sizes, flash / RAM bytes, file hashes (rnnslim.runtime reads it)
      NAME_vocab.{h,c}   a char / word model's vocabulary: NAME_encode (UTF-8 text -> ids, the
      vocab.json         training tokenization), NAME_token_text (id -> text); c_vocab.py

NAME.h's comment states flash (const_bytes) and RAM (scratch_bytes + state_bytes per stream,
NAME_run's workspace) and, for a feature model trained on standardised data, the scaling the
caller applies (NAME_input_mean / NAME_input_std; c_scaling.py).

Every model gets NAME_run(x, T, workspace, logits): the whole sequence from the zero state
(rs_core_run: layer by layer, the backward direction of a bidirectional layer walking it in
reverse), logits [T][O] (readout "all") or [O] ("last"), in a caller-provided workspace of
NAME_workspace_bytes(T) bytes (NAME_WORKSPACE_BYTES(T) as a constant expression). It is the
only entry point of a bidirectional model (manifest `bidirectional`) and of a model whose input
projection reads windows of frames (a Conv1d front end, manifest `input_window` / `input_padding`;
NAME_run then writes T + 2 padding - window + 1 steps of logits): NAME_step, NAME_state and
NAME_reset are not generated for those, since a streaming step cannot see the future.

A delta model (quantize/int8/delta.py: delta thresholds on its layers) exports its delta step:
NAME_state then also holds the stream's delta state (last transmitted codes, accumulators and
MAC counters, NAME_DELTA_WORDS int64), its delta matrices are stored column-blocked (instead
of in tiles: the delta step reads only those), and NAME_run runs the delta step too (manifest
`delta_thresholds`).

No malloc, no libm, no float on the integer path (the float logits are one multiply per
output; NAME_step_int returns the int32 accumulators instead). The arrays are exactly
IntegerProgram's (packed.py), the arithmetic exactly rnnslim_core.h's, so the outputs
equal IntegerRunner's bit for bit (tests/export check it on >= 100 streams; benchmarks
check it under QEMU on Cortex-M4 and aarch64). Build with any C99 compiler, e.g.

    cc -std=c99 -O2 -c NAME.c                       # portable loops
    cc -std=c99 -O3 -march=native -c NAME.c         # AVX512-VNNI / AVX2 where the CPU has it
    arm-none-eabi-gcc -std=c99 -O2 -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -c NAME.c
"""

from __future__ import annotations

import hashlib
import json
import textwrap
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rnnslim.export.c_names import model_c_name
from rnnslim.export.c_scaling import model_scaling, scaling_arrays, scaling_comment
from rnnslim.export.c_vocab import Vocabulary, model_vocabulary, vocab_files
from rnnslim.export.destination import check_destination, export_directory
from rnnslim.quantize.int8.fixedpoint import SIG_MIRROR, TANH_MIRROR, half_table
from rnnslim.quantize.int8.kernel import CORE, PANELS
from rnnslim.quantize.int8.packed import CELL_ID, INPUT_ID, IntegerProgram, PackedMatrix
from rnnslim.runtime.manifest import FORMAT, FORMAT_VERSION, INFO_FIELDS, MANIFEST

_C_TYPES = {np.int8: "int8_t", np.uint8: "uint8_t", np.int16: "int16_t", np.uint16: "uint16_t",
            np.int32: "int32_t", np.float32: "float"}


@dataclass
class CExport:
    """What `export_c` wrote (also the manifest, model.json)."""

    name: str
    cell: str
    layers: list[int]
    vocab: int
    outputs: int
    state_len: int
    const_bytes: int  # flash: every const array (an AVX-512 VNNI build adds vnni_bytes)
    scratch_bytes: int  # RAM: the step's static buffers
    state_bytes: int  # RAM per stream: one NAME_state
    tile_sparse: list[str]  # matrices stored in a sparse format (16 x 4 tiles, 2:4, strips or panels; sparse_formats says which)
    folded_embedding: bool
    files: dict[str, str] = field(default_factory=dict)  # file -> sha256
    input_kind: str = "embedding"  # or "identity" / "linear": NAME_step takes NAME_FEATURES floats
    features: int = 0
    bidirectional: bool = False  # some layer is bidirectional: NAME_run only (no NAME_step / state)
    input_window: int = 1  # > 1 (or input_padding > 0): a Conv1d front end, NAME_run only
    input_padding: int = 0
    readout: str = "all"  # NAME_run writes [T][O] ("all") or [O] ("last") logits
    workspace_fixed_bytes: int = 0  # NAME_run's workspace: fixed + per_step * T bytes (caller's RAM)
    workspace_bytes_per_step: int = 0
    delta_thresholds: list[int | None] | None = None  # delta steps per layer (NAME_state holds a delta state)
    tokenizer: str | None = None  # "chars" / "words": NAME_vocab.{h,c} + vocab.json map text <-> ids (c_vocab.py)
    vocab_table_bytes: int = 0  # flash of NAME_vocab.c (not in const_bytes: compiled only where text is used)
    input_scaling: dict | None = None  # {"mean": [F], "std": [F]}: the caller standardises features (c_scaling.py)
    output_scaling: dict | None = None  # {"mean": [O], "std": [O]}: a forecaster's outputs are standardised
    sparse_formats: dict[str, str] = field(default_factory=dict)  # matrix -> "tiles" / "nm24" / "strips" / "panels"
    vnni_bytes: int = 0  # flash an AVX-512 VNNI build adds: each matrix's row corrections (4 B per row)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @property
    def ram_bytes(self) -> int:
        return self.scratch_bytes + self.state_bytes

    @property
    def whole_sequence_only(self) -> bool:
        return self.bidirectional or self.input_window > 1 or self.input_padding > 0

    def to_dict(self) -> dict:
        d = asdict(self) | {"ram_bytes": self.ram_bytes}
        for key, default in (("input_window", 1), ("input_padding", 0)):  # manifests without a window are as before
            if d[key] == default:
                del d[key]
        return d


class _Arrays:
    """Emits each distinct array once (identical sigmoid tables of several layers share one)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.by_content: dict[bytes, str] = {}
        self.const_bytes = 0
        self.vnni_bytes = 0  # arrays defined on AVX-512 VNNI builds only (not in const_bytes)

    def add(self, name: str, a: np.ndarray, align: bool = False, vnni_only: bool = False) -> str:
        """The C name of array `a` (emitted now unless an identical one was). `vnni_only`: defined under
        `#if RS_SIMD == 3` (the VNNI row corrections): reference it through RS_CORR(name)."""
        a = np.ascontiguousarray(a).reshape(-1)
        key = str(vnni_only).encode() + a.dtype.str.encode() + a.tobytes()
        if key in self.by_content:
            return self.by_content[key]
        ctype = _C_TYPES[a.dtype.type]
        if a.size == 0:
            a = np.zeros(1, a.dtype)
        if a.dtype == np.float32:
            vals = [_c_float_hex(float(v)) for v in a.tolist()]
        elif a.dtype == np.int32:
            vals = [str(v) if v != -(2**31) else "(-2147483647 - 1)" for v in a.tolist()]
        else:
            vals = [str(v) for v in a.tolist()]
        rows = [",".join(vals[i: i + 32]) for i in range(0, len(vals), 32)]
        attr = " RS_ALIGN64" if align else ""
        text = f"static const {ctype} {name}[{a.size}]{attr} = {{\n" + ",\n".join(rows) + "\n};"
        self.lines.append(f"#if RS_SIMD == 3\n{text}\n#endif" if vnni_only else text)
        self.by_content[key] = name
        if vnni_only:
            self.vnni_bytes += a.nbytes
        else:
            self.const_bytes += a.nbytes
        return name


def _half(table: np.ndarray, mirror: int) -> np.ndarray:
    """The lower half of a sigmoid / tanh table: all an export stores (rnnslim_core.h's lut mirrors the rest)."""
    import torch

    return half_table(torch.from_numpy(np.ascontiguousarray(table)), mirror).numpy()


def _c_float_hex(v: float) -> str:
    """A float32 value as an exact C99 hexadecimal literal."""
    if not np.isfinite(v):
        raise ValueError(f"cannot export a non-finite constant ({v})")
    return float(np.float32(v)).hex() + "f"


def core_source() -> bytes:
    """rnnslim_core.h as an export ships it: with rnnslim_panels.h (which it includes) pasted in place of
    its #include line, so an export stays three files and compiles with no other header."""
    core, line = CORE.read_bytes(), f'#include "{PANELS.name}"\n'.encode()
    if core.count(line) != 1:
        raise RuntimeError(f"{CORE.name} should include {PANELS.name} exactly once")
    return core.replace(line, PANELS.read_bytes())


def _matrix(arrs: _Arrays, prefix: str, m: PackedMatrix) -> str:
    w = arrs.add(prefix + "_w", m.w, align=True)
    corr = arrs.add(prefix + "_corr", m.corr, vnni_only=True)  # read by the AVX-512 VNNI path only
    ptr = arrs.add(prefix + "_tile_ptr", m.tile_ptr) if m.sparse else "NULL"
    col = arrs.add(prefix + "_tile_col", m.tile_col) if m.sparse else "NULL"
    idx = arrs.add(prefix + "_nm_idx", m.nm_idx) if m.nm24 else "NULL"
    sptr = arrs.add(prefix + "_strip_ptr", m.strip_ptr) if m.strips else "NULL"
    sidx = arrs.add(prefix + "_strip_idx", m.strip_idx) if m.strips else "NULL"
    pptr = arrs.add(prefix + "_panel_ptr", m.panel_ptr) if m.panels else "NULL"
    pidx = arrs.add(prefix + "_panel_idx", m.panel_idx) if m.panels else "NULL"
    return (f"{{ .rows = {m.rows}, .cols = {m.cols}, .rows_p = {m.rows_p}, .cols_p = {m.cols_p}, .w = {w}, "
            f".corr = RS_CORR({corr}), .tile_ptr = {ptr}, .tile_col = {col}, .nm_idx = {idx}, .strip_ptr = {sptr}, "
            f".strip_idx = {sidx}, .panel_ptr = {pptr}, .panel_idx = {pidx} }}")


def _header(name: str, p: IntegerProgram, source: str, notes: str = "", decls: str = "") -> str:
    N = name.upper()
    layers = ", ".join(f"{ly.hidden}{' x 2 directions' if ly.rev is not None else ''}" for ly in p.layers)
    if p.inputs is None:
        what, unit, arg, size = f"vocabulary {p.vocab}, embedding {p.embed}", "token", "int32_t token", f"#define {N}_VOCAB {p.vocab}"
        bad = f"-1 when the token\n   is outside [0, {N}_VOCAB) (nothing changed)"
        run_arg, run_x = "const int32_t *tokens", f"tokens[T] (each in [0, {N}_VOCAB))"
        run_bad = "t + 1 when tokens[t] is outside\n   the vocabulary (checked before anything runs), "
    else:
        inp = p.inputs
        window = (f", windows of {inp.window} frames with {inp.padding} zero frames at both ends (a Conv1d front "
                  "end)") if inp.windowed else ""
        what = f"{inp.frame} float features ({inp.kind.value} input{window}, width {p.embed})"
        unit, arg, size = "feature vector", "const float *x", f"#define {N}_FEATURES {inp.frame}"
        if inp.windowed:
            size += f"\n#define {N}_INPUT_WINDOW {inp.window}\n#define {N}_INPUT_PADDING {inp.padding}"
        bad = ("-1 never (features are rounded to int8\n   codes: round-half-even(x / scale), saturated; "
               "NaN counts as 0)")
        run_arg, run_x = "const float *x", f"x[T][{N}_FEATURES] (row major)"
        run_bad = ""
    windowed = p.inputs is not None and p.inputs.windowed
    steps = f"T + {2 * p.inputs.padding - p.inputs.window + 1}" if windowed else "T"
    last = p.readout == "last"
    logits_shape = f"[{N}_OUTPUTS] (the final step's)" if last else f"[{steps}][{N}_OUTPUTS] (every step's)"
    too_short = 1 if last else 0
    if windowed:
        too_short = max(p.inputs.window - 2 * p.inputs.padding + (0 if last else -1), 0 if not last else 1)
    run_rc = f"Returns 0, {run_bad}or -1 for T < {too_short}."
    run_decl = f"""/* The whole sequence from the zero state (layer by layer; a bidirectional layer's backward
   direction walks it in reverse): {run_x} -> logits {logits_shape}.
   workspace: {name}_workspace_bytes(T) bytes owned by the caller, any alignment
   ({N}_WORKSPACE_BYTES(T) is the same number as a constant expression, for a static buffer).
   Uses the program's static scratch buffers too: one call at a time. {run_rc} */
#define {N}_READOUT_LAST {int(last)}
#define {N}_WORKSPACE_BYTES(T) ((size_t){p.workspace_fixed_bytes} + (size_t){p.workspace_bytes_per_step} * (size_t)(T))
size_t {name}_workspace_bytes(int32_t T);
int {name}_run({run_arg}, int32_t T, void *workspace, float *logits);"""
    if p.whole_sequence_only:
        why = "Bidirectional layers" if p.bidirectional else "A windowed input (Conv1d front end)"
        usage = f"""{why}: whole sequences only.
 * {name}_run is the only entry point ({name}_step is not generated: a streaming step cannot
 * see the future).
 *
 *   {name}_init();                                   once
 *   {name}_run({'tokens' if p.inputs is None else 'x'}, T, workspace, logits);  per sequence"""
        stream_decl = "\n"
    else:
        usage = f"""Batch 1, one {unit} per step (a model with readout "last" outputs the
 * final step's logits), or whole sequences ({name}_run). The step uses static scratch buffers:
 * one stream at a time per program (a state per stream; calls must not overlap).
 *
 *   {name}_state s;
 *   {name}_init();                       once
 *   {name}_reset(&s);                    start of a stream
 *   {name}_step(&s, {'token' if p.inputs is None else 'x'}, logits);{' ' * (10 if p.inputs is None else 14)}per {unit}: float logits[{N}_OUTPUTS]"""
        delta = "" if not p.delta else f""" int64_t d[{N}_DELTA_WORDS]; """
        delta_doc = "" if not p.delta else f"""
/* d: the delta state of the delta step (rnnslim_core.h "delta networks"; thresholds per layer
   {[ly.delta_thr for ly in p.layers]}): d[0] steps, d[2 + 2l] / d[3 + 2l] transmitted columns of
   layer l's W_ih / W_hh so far (MACs = columns x rows), then last codes and accumulators */
#define {N}_DELTA_WORDS {p.delta_bytes // 8}"""
        stream_decl = f"""#define {N}_STATE_LEN {p.state_len}
{delta_doc}
/* per layer: LSTM [h (int8 codes) | c (Q.cf)], GRU / RNN [h (Q0.15)], as int16 */
typedef struct {{ int16_t v[{N}_STATE_LEN];{delta}}} {name}_state;

"""
    init_doc = f"""/* Prepare the scratch buffers; returns the dot-product code compiled in (0 portable C,
   1 NEON, 2 AVX2, 3 AVX512-VNNI). */
int {name}_init(void);"""
    step_decl = "" if p.whole_sequence_only else f"""
/* The state of a new stream (all zeros). */
void {name}_reset({name}_state *s);
/* One {unit}: updates *s, writes {N}_OUTPUTS float logits. Returns 0, or {bad}. */
int {name}_step({name}_state *s, {arg}, float *logits);
/* The same step with integer outputs: acc[j] (int32) and logits[j] = acc[j] * {name}_output_scale[j]. */
int {name}_step_int({name}_state *s, {arg}, int32_t *acc);"""
    return f"""/* {name}.h: generated by rnnslim from {source} (do not edit).
 * Fully integer int8 {p.cell.value.upper()}: {what}, hidden [{layers}],
 * {p.out} outputs, readout "{p.readout}". {usage}
 *{notes}
 */
#ifndef {N}_H
#define {N}_H
#include <stddef.h>
#include <stdint.h>

{size}
#define {N}_OUTPUTS {p.out}
#define {N}_BIDIRECTIONAL {int(p.bidirectional)}
{stream_decl}{init_doc}{step_decl}
{run_decl}
{_info_decl(name)}
extern const float {name}_output_scale[{N}_OUTPUTS];
{decls}
#endif
"""


def _info_decl(name: str) -> str:
    fields = ", ".join(INFO_FIELDS)
    return f"""/* The sizes this build was compiled with, for a caller that must not trust a manifest
   (rnnslim.runtime): info[i] for i < min(n, {len(INFO_FIELDS)}) = {{{fields}}}
   (state_bytes: the size of one stream's state struct). Returns {len(INFO_FIELDS)}, the number of fields. */
int {name}_info(int64_t *info, int n);"""


def _info_function(name: str, p: IntegerProgram) -> str:
    """NAME_info: the sizes from the code itself (sizeof the state struct, the model's constants)."""
    state = f"(int64_t)sizeof({name}_state)" if not p.whole_sequence_only else str(_state_bytes(p))
    features = p.inputs.frame if p.inputs is not None else 0
    values = [1, "model.V", features, "model.O", "model.state_len", state, int(p.bidirectional),
              int(p.readout == "last"), p.workspace_fixed_bytes, p.workspace_bytes_per_step, "model.cell", "model.L"]
    return f"""
int {name}_info(int64_t *info, int n) {{
    const int64_t v[{len(INFO_FIELDS)}] = {{ {", ".join(f"(int64_t)({x})" for x in values)} }};
    int i;
    for (i = 0; i < n && i < {len(INFO_FIELDS)}; i++) info[i] = v[i];
    return {len(INFO_FIELDS)};
}}
"""


def _state_bytes(p: IntegerProgram) -> int:
    """sizeof(NAME_state): the int16 state, then (delta models) the int64 delta state."""
    return 2 * p.state_len if not p.delta else -(-2 * p.state_len // 8) * 8 + p.delta_bytes


def _source(name: str, p: IntegerProgram) -> tuple[str, int, dict[str, str], int]:
    arrs = _Arrays()
    sparse: dict[str, str] = {}  # matrix name -> its sparse format (PackedMatrix.format)

    def note(what: str, m: PackedMatrix) -> None:
        if m.format != "dense":
            sparse[what] = m.format

    emb = "NULL" if (p.layers[0].tx_table is not None or p.emb is None) else arrs.add("emb", p.emb)
    inp = p.inputs
    if inp is None:
        input_init = "{ .kind = 0 }"
    else:
        proj = {}
        if inp.proj is not None:
            note("input_proj", inp.proj)
            proj = {"w": _matrix(arrs, "in_w", inp.proj), "bias": arrs.add("in_bias", inp.bias),
                    "mult": arrs.add("in_mult", inp.mult), "shift": arrs.add("in_shift", inp.shift)}
        fields = {"kind": INPUT_ID[inp.kind], "F": inp.features, "in_scale": _c_float_hex(inp.in_scale), **proj,
                  "act": "NULL" if inp.act is None else arrs.add("in_act", inp.act),
                  "window": inp.window, "padding": inp.padding, "frame": inp.frame}
        input_init = "{ " + ", ".join(f".{k} = {v}" for k, v in fields.items()) + " }"

    def layer_fields(k: int, ly, prefix: str, suffix: str) -> dict:
        mats = {}
        folded = ly.tx_table is not None  # the table replaces W_ih x and its requantization
        delta = {"wx": ly.wx_cols is not None, "wh": ly.wh_cols is not None}  # read column-blocked only
        for which, m in (("wx", ly.wx), ("wh", ly.wh)):
            if (which == "wx" and folded) or delta[which]:
                mats[which] = f"{{ .rows = {m.rows}, .cols = {m.cols}, .rows_p = {m.rows_p}, .cols_p = {m.cols_p} }}"
                continue
            mats[which] = _matrix(arrs, f"{prefix}_{which}", m)
            note(f"rnn.layers.{k}.{'w_ih' if which == 'wx' else 'w_hh'}{suffix}", m)
        return {
            "input": ly.input, "hidden": ly.hidden, "rows": ly.rows, "wx": mats["wx"], "wh": mats["wh"],
            "mult_x": "NULL" if folded else arrs.add(f"{prefix}_mult_x", ly.mult_x),
            "mult_h": arrs.add(f"{prefix}_mult_h", ly.mult_h), "bias": arrs.add(f"{prefix}_bias", ly.bias),
            "shift_x": "NULL" if folded else arrs.add(f"{prefix}_shift_x", ly.shift_x),
            "shift_h": arrs.add(f"{prefix}_shift_h", ly.shift_h), "h_mult": ly.h_mult, "h_shift": ly.h_shift,
            "cf": ly.cf, "sig": arrs.add(f"{prefix}_sig", _half(ly.sig, SIG_MIRROR)),
            "tanh_": arrs.add(f"{prefix}_tanh", _half(ly.tanh, TANH_MIRROR)),
            "tx_table": arrs.add(f"{prefix}_tx_table", ly.tx_table) if ly.tx_table is not None else "NULL",
            **({} if ly.delta_thr is None else {  # the delta step's column-blocked copies (delta.pack_columns)
                "wx_cols": "NULL" if ly.wx_cols is None else arrs.add(f"{prefix}_wx_cols", ly.wx_cols, align=True),
                "wh_cols": arrs.add(f"{prefix}_wh_cols", ly.wh_cols, align=True), "delta_thr": ly.delta_thr}),
        }

    layer_inits, rev_inits = [], []
    for k, ly in enumerate(p.layers):
        fields = layer_fields(k, ly, f"l{k}", "")
        if ly.rev is not None:  # the backward direction: its own rs_layer, pointed to by .rev
            rev = layer_fields(k, ly.rev, f"l{k}r", "_reverse")
            rev_inits.append(f"static const rs_layer l{k}_rev = {{ " + ", ".join(f".{f} = {v}" for f, v in rev.items())
                             + " };")
            fields["rev"] = f"&l{k}_rev"
        layer_inits.append("    { " + ", ".join(f".{f} = {v}" for f, v in fields.items()) + " }")
    dec = _matrix(arrs, "dec", p.dec)
    note("decoder", p.dec)
    dec_b = arrs.add("dec_b", p.dec_bias)
    scale_lines = ",".join(_c_float_hex(float(v)) for v in p.dec_scale.tolist())
    arrs.const_bytes += p.dec_scale.nbytes
    C, R, A = p.max_cols, p.max_rows, p.max_chunk
    layer_block, array_block = ",\n".join(layer_inits), "\n".join(arrs.lines)
    rev_block = "".join("\n" + r + "\n" for r in rev_inits)
    arg, call, fwd = (("int32_t token", "token", "rs_core_forward") if inp is None else
                      ("const float *x", "x", "rs_core_forward_features"))
    run_arg, run_call = ("const int32_t *tokens", "tokens, NULL") if inp is None else ("const float *x", "NULL, x")
    run_functions = f"""size_t {name}_workspace_bytes(int32_t T) {{ return rs_core_run_workspace(&model, T); }}

int {name}_run({run_arg}, int32_t T, void *workspace, float *logits) {{
    return rs_core_run(&model, {run_call}, T, workspace, {"RS_READOUT_LAST" if p.readout == "last" else "RS_READOUT_ALL"}, logits);
}}
"""
    fwd_call = f"{fwd}_delta(&model, {call}, s->v, s->d)" if p.delta else f"{fwd}(&model, {call}, s->v)"
    step_functions = "" if p.whole_sequence_only else f"""void {name}_reset({name}_state *s) {{ memset(s, 0, sizeof *s); }}

int {name}_step({name}_state *s, {arg}, float *logits) {{
    if ({fwd_call}) return -1;
    rs_logits(&model, logits);
    return 0;
}}

int {name}_step_int({name}_state *s, {arg}, int32_t *out) {{
    if ({fwd_call}) return -1;
    memcpy(out, acc, sizeof(int32_t) * {p.out});
    return 0;
}}

"""
    text = f"""/* {name}.c: generated by rnnslim (do not edit). Weights and tables are const (flash);
   the scratch buffers below are the only static RAM. The step is rnnslim_core.h. */
#include <stddef.h>
#include "{name}.h"
#include "rnnslim_core.h"

{array_block}

const float {name}_output_scale[{p.out}] = {{ {scale_lines} }};
{rev_block}
static const rs_layer layers[{len(p.layers)}] = {{
{layer_block}
}};

static int8_t xbuf[{C}] RS_ALIGN64, hbuf[{C}] RS_ALIGN64, ybuf[{C}] RS_ALIGN64;
static uint8_t ubuf[{2 * C}] RS_ALIGN64;
static int32_t ax[{A}] RS_ALIGN64, ah[{A}] RS_ALIGN64, acc[{R}] RS_ALIGN64;

static const rs_model model = {{
    .cell = {CELL_ID[p.cell]}, .L = {len(p.layers)}, .V = {p.vocab}, .E = {p.embed}, .O = {p.out},
    .state_len = {p.state_len}, .max_cols = {C}, .max_rows = {R}, .max_chunk = {A},
    .emb = {emb}, {".emb_tied = 1, " if p.tied_embedding else ""}.in = {input_init}, .layers = layers, .dec = {dec}, .dec_b = {dec_b}, .dec_scale = {name}_output_scale,
    .xbuf = xbuf, .hbuf = hbuf, .ybuf = ybuf, .ubuf = ubuf, .ax = ax, .ah = ah, .acc = acc
}};

int {name}_init(void) {{
    memset(xbuf, 0, sizeof xbuf); memset(hbuf, 0, sizeof hbuf); memset(ybuf, 0, sizeof ybuf);
    memset(ubuf, 0, sizeof ubuf);
    return RS_SIMD;
}}

{step_functions}{run_functions}{_info_function(name, p)}"""
    return text, arrs.const_bytes, sparse, arrs.vnni_bytes


def export_c(model, out: str | Path, name: str | None = None, fold_embedding: bool | None = None,
             sparse: bool | str = "auto", source: str | None = None) -> CExport:
    """Write the C library of a fully integer int8 SequenceModel into directory `out`.

    The directory is written atomically (complete or absent). `fold_embedding`: the layer-0
    input terms of every token as a V x 4H int32 table instead of the embedding and W_ih
    (a table row read instead of a matrix product); None folds when the table takes less
    flash (4 V < E, e.g. a 65-symbol vocabulary with a 512-wide embedding: the table is smaller
    than W_ih alone; exact for a tied model, whose decoder keeps the V x E codes either way, and
    conservative for an untied one, whose embedding goes too). A tied model's table is stored
    once, as the decoder's (packed.py), and counted once in const_bytes. `sparse`
    chooses the matrix layout (packed.py). Returns the manifest. `out` must be new or an earlier
    export (destination.py); checked before anything is computed.
    """
    check_destination(out, "c", model)
    if fold_embedding is None:
        emb = getattr(model, "embedding", None) if model.spec.input_kind.value == "embedding" else None
        fold_embedding = emb is not None and 4 * getattr(emb, "num_embeddings", 1 << 30) < getattr(emb, "embedding_dim", 0)
    program = IntegerProgram.from_model(model, fold_embedding=fold_embedding, sparse=sparse)
    name = model_c_name(model, name)
    text, const_bytes, sparse_formats, vnni_bytes = _source(name, program)
    vocab = model_vocabulary(model, program.vocab) if program.inputs is None else None
    features = program.inputs.frame if program.inputs is not None else 0
    in_scaling, out_scaling = model_scaling(model, features, program.out)
    scale_defs, scale_decls, scale_bytes = scaling_arrays(name, in_scaling, out_scaling)
    text += f"\n{scale_defs}\n" if scale_defs else ""
    const_bytes += scale_bytes
    facts = CExport(
        name=name, cell=program.cell.value, layers=[ly.hidden for ly in program.layers], vocab=program.vocab,
        outputs=program.out, state_len=program.state_len, const_bytes=const_bytes,
        scratch_bytes=program.scratch_bytes(), state_bytes=_state_bytes(program), tile_sparse=list(sparse_formats),
        folded_embedding=program.layers[0].tx_table is not None, input_kind=program.input_kind.value,
        features=features, bidirectional=program.bidirectional, readout=program.readout,
        input_window=program.inputs.window if program.inputs is not None else 1,
        input_padding=program.inputs.padding if program.inputs is not None else 0,
        workspace_fixed_bytes=program.workspace_fixed_bytes,
        workspace_bytes_per_step=program.workspace_bytes_per_step,
        delta_thresholds=[ly.delta_thr for ly in program.layers] if program.delta else None,
        tokenizer=vocab.tokenizer if vocab else None, vocab_table_bytes=vocab.table_bytes() if vocab else 0,
        input_scaling=in_scaling.to_dict() if in_scaling else None,
        output_scaling=out_scaling.to_dict() if out_scaling else None, sparse_formats=sparse_formats,
        vnni_bytes=vnni_bytes)
    notes = [_memory_comment(name, facts), *scaling_comment(name, in_scaling, out_scaling),
             _tokens_comment(name, program, vocab), _activation_comment(name, model),
             "Embedding: tied to the decoder, one int8 table in flash (a token's row is read from the decoder's "
             "tiles)." if program.tied_embedding else ""]
    comment = "".join("\n" + textwrap.fill(t, 100, initial_indent=" * ", subsequent_indent=" * ") for t in notes if t)
    files = {f"{name}.h": _header(name, program, source or name, comment, scale_decls).encode(),
             f"{name}.c": text.encode(), CORE.name: core_source()}
    if vocab is not None:
        files |= vocab_files(name, vocab, source or name)
    return write_export(Path(out), facts, files, model)


def _activation_comment(name: str, model) -> str:
    """The header's note that the caller applies the model's output activation (a captured
    module's final log_softmax / softmax, ModelSpec.output_activation); '' when there is none."""
    act = getattr(getattr(model.spec, "output_activation", None), "value", "none")
    if act == "none":
        return ""
    return (f"Outputs are logits: the model's user applied {act} over the {name.upper()}_OUTPUTS outputs after "
            f"them (spec.output_activation); apply it to the logits where those are needed.")


def _memory_comment(name: str, f: CExport) -> str:
    """The header's statement of flash and RAM (the manifest's numbers)."""
    run = (f"{name}_run also takes {name.upper()}_WORKSPACE_BYTES(T) = {f.workspace_fixed_bytes:,} + "
           f"{f.workspace_bytes_per_step:,} x T bytes of the caller's")
    per_stream = "" if f.whole_sequence_only else f" + {f.state_bytes:,} bytes per stream ({name}_state)"
    vnni = f" (+ {f.vnni_bytes:,} on an AVX-512 VNNI build: its row corrections)" if f.vnni_bytes else ""
    return (f"Memory: flash {f.const_bytes:,} bytes (const weights and tables){vnni}; RAM {f.scratch_bytes:,} bytes "
            f"of static scratch buffers{per_stream}; {run}.")


def _tokens_comment(name: str, p: IntegerProgram, vocab: Vocabulary | None) -> str:
    if p.inputs is not None:
        return ""
    if vocab is None:
        return "Tokens: ids only (the model carries no vocabulary)."
    return (f"Tokens: {name}_vocab.h turns UTF-8 text into ids and back ({name}_encode, {name}_token_text; "
            f"{name}_vocab.c holds the table, {vocab.table_bytes():,} bytes of flash); vocab.json the same.")


def write_export(out: Path, facts: CExport, files: dict[str, bytes], model=None) -> CExport:
    """Write `files` and the manifest (facts + their sha256) into directory `out`, atomically, with
    the export marker (destination.py; `model`: the exported model, whose input files are protected)."""
    facts.files = {f: hashlib.sha256(b).hexdigest() for f, b in files.items()}
    with export_directory(out, facts.format, model) as tmp:
        for f, b in files.items():
            (tmp / f).write_bytes(b)
        (tmp / MANIFEST).write_text(json.dumps(facts.to_dict(), indent=1))
    return facts
