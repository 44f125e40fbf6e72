"""Peer: Torch-Pruning structured LSTM pruning against rnnslim's prune_units, same units, same fine-tune budget (issue 21).

    /work/peers-torch-pruning/bin/python benchmarks/peers/torch_pruning_bench.py --model charlstm-512x2 \
        --units 384,320 --steps 2000 [--chars 20000] [--main-python .venv/bin/python]

Setup (its own venv, never the project's):
    python3.11 -m venv /work/peers-torch-pruning
    /work/peers-torch-pruning/bin/pip install torch==2.13.0 numpy safetensors
    /work/peers-torch-pruning/bin/pip install -c /work/notes/torch-constraint.txt torch-pruning==1.6.1
(exact versions: benchmarks/peers/requirements-torch-pruning.txt).

The model is CharRNN (torch_char_model.py: nn.Embedding -> nn.LSTM(num_layers=2) -> nn.Linear), pruned to
`units` hidden units per layer (rnnslim's deploy rows: 384 = deploy-units384-int8, 320 = deploy-units320-int8)
with Torch-Pruning's documented API, tp.pruner.MetaPruner(model, example_inputs, importance=
tp.importance.MagnitudeImportance(p=2), pruning_ratio=1 - units / H, ignored_layers=[embedding, decoder]),
then `for group in pruner.step(interactive=True): group.prune()`. Variants (each a row, whatever happens):

    stock      the model as written (one nn.LSTM, num_layers=2)
    split      the same model rewritten as one single-layer nn.LSTM per layer (what Torch-Pruning's
               LSTMPruner asserts), still Torch-Pruning's own LSTM pruner and importance
    fixed      split + what a user has to add: a gate-aware LSTM pruner (customized_pruners={nn.LSTM: ...}:
               removes the 4 gate rows i, f, g, o of a unit from weight_ih / weight_hh / both biases and
               its column of weight_hh) and an importance that scores LSTM units (MagnitudeImportance has
               no LSTM branch: it returns None for the layer-0 group, which MetaPruner then skips). The
               dependency graph, grouping, ranking and index bookkeeping are Torch-Pruning's.

Every pruned model is checked (it runs; weight_ih (4H', in'), weight_hh (4H', H'); the kept rows of every
gate are the same units: each kept row equals the original row k + g*H for one unit list k), converted
losslessly to one nn.LSTM(E, H', num_layers=2) and measured. rnnslim's rows come from the project's venv
(rnnslim_prune_units.py: prune_units ratio 1 - units / H, round_to 16, magnitude, with its defaults reduce l2
and refit auto, i.e. no least-squares re-fit as the finetune stage follows; then that stage) in the same run.

Fine-tuning, the same budget for both: `--steps` optimizer steps, written here after rnnslim.train (loop.py,
finetune.py: FinetuneFields with the recipe's lr): AdamW(lr 1e-3, weight_decay 0), batch 32 streams x 64
steps (truncated BPTT, state carried between windows, the stream start offset randomly per epoch), dropout
0.5 as the model was trained (embedding output, between layers, before the decoder), gradient clipping at
total norm 1.0, linear warm-up over max(1, min(steps // 4, max(5, round(0.05 steps)))) steps then cosine to
1 % of lr, the whole validation split evaluated (batch 1, state carried) before the first step and every
steps // 5 steps; the best validation candidate (the input model included) is kept. Differences from
rnnslim's loop: its random streams (dropout masks, stream offsets) are not the same numbers.
`--training distill` trains both tools by distillation alone from the fp32 model (KL at temperature 1,
the teacher's state carried like the student's) with dropout off, rnnslim's finetune stage with
distill_alpha 1, distill_temperature 1, dropout 0; `--training both` runs the labels, then distillation,
from the same one-shot models (rows of the second training end in "(distillation)").

Measured per model: test loss on the first --chars test characters and on the whole test split (one stream
at batch 1, state carried), parameters, safetensors bytes of the fp32 model (torch layout), and the latency
of a streaming step at batch 1, 1 thread (torch nn.LSTM, both tools' fine-tuned models, interleaved with
rnnslim's int8 C kernel on the dense model). Writes benchmarks/results/peers_torch_pruning.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).parent))
from peer_common import (  # noqa: E402
    MAIN_PYTHON,
    RESULTS,
    ROOT,
    command_line,
    git_commit,
    interleaved_latency,
    load_reference,
    load_text_ids,
    machine,
    nll,
    now,
    one_line,
    rnnslim_reference,
    split,
    test_text,
    versions,
    write_result,
)
from torch_char_model import CharRNN, module_stepper, step_latency, stream_logits  # noqa: E402

import torch_pruning as tp  # noqa: E402

PEER = "Torch-Pruning"
GATES = 4  # LSTM i, f, g, o
BATCH, SEQ_LEN, DROPOUT, CLIP = 32, 64, 0.5, 1.0


GRU_API = ("tp.pruner.MetaPruner(model, example_inputs, importance=tp.importance.MagnitudeImportance(p=2), "
           "pruning_ratio={ratio:g}, ignored_layers=[embedding, decoder]); "
           "for g in pruner.step(interactive=True): g.prune()")


# ---- the models ----------------------------------------------------------------------------------------------

class PrunedCharRNN(nn.Module):
    """CharRNN with the hidden size free of the embedding width: Embedding(V, E) -> nn.LSTM(E, H', layers) -> Linear."""

    def __init__(self, vocab: int, embed: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.rnn = nn.LSTM(embed, hidden, num_layers=layers)
        self.decoder = nn.Linear(hidden, vocab)

    @classmethod
    def from_tensors(cls, w: dict[str, torch.Tensor]) -> PrunedCharRNN:
        layers = sum(1 for k in w if k.startswith("rnn.weight_ih_l"))
        m = cls(w["embedding.weight"].shape[0], w["embedding.weight"].shape[1], w["rnn.weight_hh_l0"].shape[1], layers)
        m.load_state_dict(w, strict=True)
        return m.eval()

    forward = CharRNN.forward


class LayerwiseCharRNN(nn.Module):
    """The same model with one single-layer nn.LSTM per layer (rnn0, rnn1, ...), as Torch-Pruning's LSTMPruner wants."""

    def __init__(self, ref: CharRNN) -> None:
        super().__init__()
        ref = copy.deepcopy(ref)
        self.embedding, self.decoder = ref.embedding, ref.decoder
        self.layers = ref.rnn.num_layers
        for k in range(self.layers):
            lstm = nn.LSTM(ref.rnn.input_size if k == 0 else ref.rnn.hidden_size, ref.rnn.hidden_size)
            lstm.load_state_dict({f"{n}_l0": getattr(ref.rnn, f"{n}_l{k}").data
                                  for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
            setattr(self, f"rnn{k}", lstm)

    def forward(self, x: torch.Tensor, state=None):
        y, out = self.embedding(x), []
        for k in range(self.layers):
            y, s = getattr(self, f"rnn{k}")(y, None if state is None else state[k])
            out.append(s)
        return self.decoder(y), out

    def to_tensors(self) -> dict[str, torch.Tensor]:
        w = {"embedding.weight": self.embedding.weight, "decoder.weight": self.decoder.weight,
             "decoder.bias": self.decoder.bias}
        for k in range(self.layers):
            for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                w[f"rnn.{n}_l{k}"] = getattr(getattr(self, f"rnn{k}"), f"{n}_l0")
        return {n: t.detach().float().contiguous().clone() for n, t in w.items()}


# ---- what a user adds so that Torch-Pruning prunes LSTM units correctly -------------------------------------

class GateAwareLSTMPruner(tp.pruner.function.BasePruningFunc):
    """Single-layer nn.LSTM: removing unit k removes rows k + g*H (g = i, f, g, o) of weight_ih, weight_hh and both
    biases, and column k of weight_hh; an input channel is a column of weight_ih."""

    TARGET_MODULES = nn.LSTM

    def prune_out_channels(self, layer: nn.LSTM, idxs: list) -> nn.Module:
        h = layer.hidden_size
        keep = torch.tensor(sorted(set(range(h)) - set(idxs)))
        rows = torch.cat([keep + g * h for g in range(GATES)])  # (4H',)
        for n in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            setattr(layer, n, self._prune_parameter_and_grad(getattr(layer, n), rows, 0))
        layer.weight_hh_l0 = self._prune_parameter_and_grad(layer.weight_hh_l0, keep, 1)  # (4H', H')
        layer.hidden_size = len(keep)
        layer._init_flat_weights()
        return layer

    def prune_in_channels(self, layer: nn.LSTM, idxs: list) -> nn.Module:
        keep = sorted(set(range(layer.input_size)) - set(idxs))
        layer.weight_ih_l0 = self._prune_parameter_and_grad(layer.weight_ih_l0, keep, 1)  # (4H, in')
        layer.input_size = len(keep)
        layer._init_flat_weights()
        return layer

    def get_out_channels(self, layer: nn.LSTM) -> int:
        return layer.hidden_size

    def get_in_channels(self, layer: nn.LSTM) -> int:
        return layer.input_size


class LSTMGroupMagnitude(tp.importance.Importance):
    """Group L2 magnitude (Torch-Pruning's default: sum of squares per channel in each member, mean over the
    members) with the LSTM members scored too: a unit's 4 gate rows of weight_ih / weight_hh and its column of
    weight_hh (unit out), a column of weight_ih (input channel of the next layer), a column of a Linear."""

    @torch.no_grad()
    def __call__(self, group) -> torch.Tensor | None:
        scores = []
        for dep, idxs in group:
            layer, fn = dep.layer, getattr(dep.pruning_fn, "__name__", "")
            if isinstance(layer, nn.LSTM) and fn == "prune_out_channels":
                h = layer.hidden_size
                rows = lambda w: w.pow(2).sum(1).view(GATES, h).sum(0)  # noqa: E731  (4H, in) -> (H,)
                s = rows(layer.weight_ih_l0) + rows(layer.weight_hh_l0) + layer.weight_hh_l0.pow(2).sum(0)
            elif isinstance(layer, nn.LSTM) and fn == "prune_in_channels":
                s = layer.weight_ih_l0.pow(2).sum(0)
            elif isinstance(layer, nn.Linear) and fn == "prune_in_channels":
                s = layer.weight.pow(2).sum(0)
            else:
                continue
            scores.append(s[idxs])
        return torch.stack(scores).mean(0) if scores else None


# ---- pruning with Torch-Pruning ------------------------------------------------------------------------------

def tp_prune(model: nn.Module, units: int, hidden: int, importance, pruners=None) -> list[str]:
    """Torch-Pruning's MetaPruner on `model` in place to `units` of `hidden` per prunable group; the groups pruned."""
    ex = torch.zeros(8, 1, dtype=torch.long)
    pruner = tp.pruner.MetaPruner(model, ex, importance=importance, pruning_ratio=1 - units / hidden,
                                  ignored_layers=[model.embedding, model.decoder],
                                  output_transform=lambda out: out[0].sum(), customized_pruners=pruners)
    pruned = []
    for group in pruner.step(interactive=True):
        pruned.append(f"{group[0][0].target.name}: {len(group[0][1])} channels")
        group.prune()
    return pruned


def shapes(model: nn.Module) -> dict:
    return {n: list(p.shape) for n, p in model.named_parameters() if ".weight" in "." + n and "rnn" in n}


def check_gates(original: dict[str, torch.Tensor], pruned: dict[str, torch.Tensor], layers: int) -> dict:
    """Shapes (4H', in') / (4H', H') and the kept units: every kept row of weight_hh_lK equals original rows
    keep + g*H (columns restricted to the previous layer's kept units) for ONE unit list `keep` per layer."""
    report, prev_keep = {}, None
    for k in range(layers):
        w0, w1 = original[f"rnn.weight_ih_l{k}"], pruned[f"rnn.weight_ih_l{k}"]
        h, hp = original[f"rnn.weight_hh_l{k}"].shape[1], pruned[f"rnn.weight_hh_l{k}"].shape[1]
        if w1.shape[0] != GATES * hp or pruned[f"rnn.weight_hh_l{k}"].shape != (GATES * hp, hp):
            raise ValueError(f"layer {k}: weight_ih {tuple(w1.shape)}, weight_hh "
                             f"{tuple(pruned[f'rnn.weight_hh_l{k}'].shape)} are not (4H', in') / (4H', H')")
        cols = prev_keep if prev_keep is not None else torch.arange(w0.shape[1])
        src = w0[:, cols]  # (4H, in') the original rows restricted to the kept inputs
        where = {r.numpy().tobytes(): i for i, r in enumerate(src)}  # exact row contents -> original row
        match = [where.get(r.numpy().tobytes(), -1) for r in w1]  # which original row each pruned row copies
        if -1 in match:
            raise ValueError(f"layer {k}: a pruned weight_ih row is not a row of the original")
        match = torch.tensor(match).view(GATES, hp)  # (gate, unit) -> original row
        gate_of, unit_of = match // h, match % h
        together = bool((gate_of == torch.arange(GATES)[:, None]).all() and (unit_of == unit_of[0]).all())
        if not together:
            raise ValueError(f"layer {k}: the kept gate rows are not the same units in the order i, f, g, o")
        keep = unit_of[0]
        hh = original[f"rnn.weight_hh_l{k}"][match.flatten()][:, keep]  # (4H', H') the original, cut
        if not torch.equal(hh, pruned[f"rnn.weight_hh_l{k}"]):
            raise ValueError(f"layer {k}: weight_hh is not the original's kept gate rows and kept unit columns")
        prev_keep = keep
        report[f"layer{k}"] = {"kept_units": hp, "gates_together": together,
                               "kept_unit_ids_head": unit_of[0][:8].tolist()}
    return report


# ---- fine-tuning, after rnnslim.train --------------------------------------------------------------------------

def stream_batches(d: torch.Tensor, gen: torch.Generator):
    """rnnslim.tasks.charlm.stream_batches with shuffle: BATCH parallel streams, windows of SEQ_LEN, random start."""
    d = d[int(torch.randint(0, SEQ_LEN, (1,), generator=gen)):]
    n = (len(d) - 1) // BATCH
    x = d[: n * BATCH].view(BATCH, n).t()  # (n, B)
    y = d[1 : n * BATCH + 1].view(BATCH, n).t()
    for t in range(0, n - 1, SEQ_LEN):
        yield x[t : t + SEQ_LEN], y[t : t + SEQ_LEN]


def lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    frac = min(1.0, max(0.0, (step - warmup) / max(1, total - warmup)))
    return 0.5 * (1 + math.cos(math.pi * frac)) * 0.99 + 0.01


def stream_loss(model: nn.Module, d: np.ndarray) -> float:
    """Mean NLL of d[1:] given d[:-1], one stream at batch 1, state carried."""
    return nll(stream_logits(model, d[:-1]), d[1:])["loss_nats"]


def kd_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """rnnslim.train.distill.kd_loss at temperature 1: KL(softmax(teacher) || softmax(student)) per position."""
    s = F.log_softmax(student.float(), dim=-1).reshape(-1, student.shape[-1])
    t = F.log_softmax(teacher.float(), dim=-1).reshape(-1, teacher.shape[-1])
    return F.kl_div(s, t, log_target=True, reduction="batchmean")


def finetune(model: PrunedCharRNN, train: np.ndarray, valid: np.ndarray, steps: int, lr: float, seed: int = 0,
             stop_at: int | None = None, teacher: nn.Module | None = None) -> dict:
    """The budget rnnslim's finetune stage gets (module docstring), in place; the best validation candidate kept.
    stop_at: stop after that many steps of the `steps`-step schedule (a cross-check of the first evaluations).
    teacher: train by distillation alone from it (the finetune stage's distill_alpha 1, temperature 1, its
    state carried across windows as the student's) with dropout off (dropout 0.0), instead of on the labels
    with the model's dropout."""
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    train_t = torch.from_numpy(train)
    warmup, eval_every = max(1, min(steps // 4, max(5, round(0.05 * steps)))), max(1, steps // 5)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    drop = 0.0 if teacher is not None else DROPOUT
    model.rnn.dropout = drop  # between the layers, in train mode (nn.LSTM)
    best = {"loss": stream_loss(model, valid), "step": 0, "state": copy.deepcopy(model.state_dict())}
    history, step, epoch, losses = [{"step": 0, "valid": best["loss"]}], 0, 0, []
    while step < (stop_at or steps):
        gen, state, t_state = torch.Generator().manual_seed(seed * 1000 + epoch), None, None
        for x, y in stream_batches(train_t, gen):
            if step >= (stop_at or steps):
                break
            for g in opt.param_groups:
                g["lr"] = lr * lr_factor(step, steps, warmup)
            model.train()
            h, state = model.rnn(F.dropout(model.embedding(x), drop, True), state)  # (T, B, H')
            logits = model.decoder(F.dropout(h, drop, True))  # (T, B, V)
            if teacher is not None:
                with torch.no_grad():
                    t_logits, t_state = teacher(x, t_state)
                loss = kd_loss(logits, t_logits)
            else:
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            opt.step()
            step, state = step + 1, tuple(s.detach() for s in state)
            losses.append(loss.item())
            if step % eval_every == 0 or step == steps:
                model.eval()
                v = stream_loss(model, valid)
                history.append({"step": step, "valid": v, "train_loss_mean": float(np.mean(losses[-eval_every:]))})
                print(f"  fine-tune step {step}: valid {v:.4f}", flush=True)
                if v <= best["loss"]:
                    best = {"loss": v, "step": step, "state": copy.deepcopy(model.state_dict())}
        epoch += 1
    model.load_state_dict(best["state"])
    model.rnn.dropout = 0.0
    model.eval()
    return {"steps": steps, "best_step": best["step"], "best_valid": best["loss"], "history": history,
            "warmup_steps": warmup, "eval_every": eval_every, "wall_s": time.perf_counter() - t0}


# ---- measurement -----------------------------------------------------------------------------------------------

def measure(model: nn.Module, prefix: np.ndarray, test: np.ndarray, tmp: Path, name: str) -> dict:
    """Loss on the prefix and on the whole test split, parameters, safetensors bytes of the fp32 model."""
    path = tmp / f"{name}.safetensors"
    save_file({n: t.detach().contiguous() for n, t in model.state_dict().items()}, str(path))
    return {"loss_nats": stream_loss(model, prefix), "loss_nats_full_test": stream_loss(model, test),
            "params": sum(p.numel() for p in model.parameters()), "bytes": path.stat().st_size,
            "bytes_how": "safetensors of the pruned fp32 model (torch nn.LSTM layout), on disk",
            "hidden": [model.rnn.hidden_size] * model.rnn.num_layers}


def row(variant: str, api: str, outcome: str, **kw) -> dict:
    return {"variant": variant, "peer": kw.pop("peer", PEER), "api": api, "mode": "structured unit pruning, fp32",
            "bits": 32, "outcome": outcome, "error": kw.pop("error", None), "loss_nats": kw.pop("loss_nats", None),
            "bytes": kw.pop("bytes", None), "bytes_how": kw.pop("bytes_how", None), "latency": kw.pop("latency", None),
            "note": kw.pop("note", ""), **kw}


def failed_attempt(variant: str, api: str, build, units: int, hidden: int, importance, pruners=None) -> dict:
    """Run Torch-Pruning on build() and report what happened (refused / crashed / pruned model that does not run)."""
    model = build()
    before = shapes(model)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            groups = tp_prune(model, units, hidden, importance, pruners)
    except AssertionError as e:
        import traceback
        where = traceback.extract_tb(e.__traceback__)[-1]
        return row(variant, api, "refused", error=f"AssertionError: {where.line} ({Path(where.filename).name}:"
                   f"{where.lineno}, {where.name})", shapes_after=shapes(model))
    except Exception as e:  # noqa: BLE001  (the peer's own failure is the row)
        return row(variant, api, "crashed", error=one_line(e), shapes_after=shapes(model),
                   does_it_run=runs(model))
    said = sorted({" ".join(str(w.message).split())[:400] for w in caught})  # whole message, one line
    if shapes(model) == before:  # it ran, but no recurrent weight lost a unit
        return row(variant, api, "skips_recurrent", error=f"no recurrent unit pruned (groups pruned: {groups}); "
                   f"Torch-Pruning said: {' | '.join(said)[:500]}", shapes_after=shapes(model), does_it_run=runs(model))
    return row(variant, api, "ok" if runs(model) is True else "does_not_run", groups=groups,
               shapes_after=shapes(model), does_it_run=runs(model), warnings=said)


def runs(model: nn.Module) -> bool | str:
    try:
        with torch.inference_mode():
            model(torch.zeros(4, 1, dtype=torch.long))
        return True
    except Exception as e:  # noqa: BLE001
        return one_line(e)


def start_rnnslim_side(model: str, units: int, steps: int, main_python: str,
                       training: str = "labels", reduce: str = "l2") -> tuple[subprocess.Popen, Path, list]:
    """rnnslim_prune_units.py in the project's venv, started now (it runs next to this process's fine-tune)."""
    out = Path(tempfile.mkdtemp(prefix=f"peers_tp_rnnslim_{units}_{training}_"))
    cmd = [main_python, str(Path(__file__).with_name("rnnslim_prune_units.py")), "--model", model,
           "--hidden", str(units), "--steps", str(steps), "--training", training, "--reduce", reduce,
           "--out", str(out)]
    return subprocess.Popen(cmd, cwd=ROOT), out, cmd


# what each --training value means, for both tools; "" keeps the variant names of the runs before the option
TRAININGS = {"labels": ("", "the labels, the model's dropout 0.5"),
             "distill": (" (distillation)", "distillation alone from the fp32 model (alpha 1, T 1), dropout off")}


def finish_rnnslim_side(proc: subprocess.Popen, out: Path, cmd: list) -> tuple[dict, dict, dict]:
    if proc.wait() != 0:
        raise RuntimeError(f"rnnslim_prune_units.py failed (exit {proc.returncode}): {' '.join(cmd)}")
    record = json.loads((out / "record.json").read_text())
    record["command"] = " ".join([".venv/bin/python", "benchmarks/peers/rnnslim_prune_units.py", *cmd[2:]])
    return load_file(str(out / "oneshot.safetensors")), load_file(str(out / "finetuned.safetensors")), record


def run_units(args, units: int, spec: dict, ref: CharRNN, ref_w: dict, data: dict, tmp: Path) -> tuple[list, dict]:
    hidden, layers = spec["hidden_size"], spec["num_layers"]
    api = (f"tp.pruner.MetaPruner(model, example_inputs, importance=tp.importance.MagnitudeImportance(p=2), "
           f"pruning_ratio={1 - units / hidden:g}, ignored_layers=[embedding, decoder]); "
           "for g in pruner.step(interactive=True): g.prune()")
    trainings = list(TRAININGS) if args.training == "both" else [args.training]
    rnnslim_run = start_rnnslim_side(args.model, units, args.steps, args.main_python, trainings[0], args.reduce)
    mag = tp.importance.MagnitudeImportance(p=2)
    rows = [
        failed_attempt(f"Torch-Pruning MetaPruner, nn.LSTM(num_layers=2), {units} units", api,
                       lambda: copy.deepcopy(ref), units, hidden, mag),
        failed_attempt(f"Torch-Pruning MetaPruner, one nn.LSTM per layer, {units} units", api,
                       lambda: LayerwiseCharRNN(ref), units, hidden, mag),
    ]
    rows[1]["note"] = ("Torch-Pruning's LSTMPruner.prune_out_channels keeps rows of weight_hh / bias_hh with the "
                       "unit indices NOT expanded over the 4 gates (input-gate rows only), then cuts weight_ih's "
                       "COLUMNS with the gate-expanded indices; MagnitudeImportance has no LSTM branch, so the "
                       "layer-0 group (rnn0 out -> rnn1 in) scores None and MetaPruner skips it")
    # the user-fixed pipeline: Torch-Pruning's graph and pruner loop, a gate-aware LSTM pruner and importance
    fixed = LayerwiseCharRNN(ref)
    t0 = time.perf_counter()
    groups = tp_prune(fixed, units, hidden, LSTMGroupMagnitude(), {nn.LSTM: GateAwareLSTMPruner()})
    prune_s = time.perf_counter() - t0
    if runs(fixed) is not True:
        raise ValueError(f"the gate-aware Torch-Pruning model does not run: {runs(fixed)}")
    tp_w = fixed.to_tensors()
    gates = check_gates({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in ref_w.items()}, tp_w, layers)
    tp_model = PrunedCharRNN.from_tensors(tp_w)
    if tp_model.rnn.hidden_size != units:
        raise ValueError(f"Torch-Pruning kept {tp_model.rnn.hidden_size} units, expected {units}")
    with torch.inference_mode():
        x = torch.from_numpy(data["prefix"][:200]).view(-1, 1)
        parity = float((fixed(x)[0] - tp_model(x)[0]).abs().max())  # the layout change is lossless
    fixed_api = (api.replace("MagnitudeImportance(p=2)", "LSTMGroupMagnitude()")
                 .replace("ignored_layers", "customized_pruners={nn.LSTM: GateAwareLSTMPruner()}, ignored_layers"))
    fixed_note = ("Torch-Pruning's DependencyGraph / MetaPruner with a user-written gate-aware LSTM pruner and "
                  "LSTM importance (this script); the model written as one nn.LSTM per layer")
    oneshot = measure(tp_model, data["prefix"], data["test"], tmp, f"tp{units}_oneshot")
    tp_key, rn_key = f"Torch-Pruning {units} units fp32 torch", f"rnnslim prune_units {units} units fp32 torch"
    rows.append(row(f"Torch-Pruning + gate-aware LSTM pruner, {units} units, one-shot", fixed_api, "ok",
                    **oneshot, _timer=tp_key, groups=groups, gate_check=gates, layout_parity=parity, prune_s=prune_s,
                    note=fixed_note + "; no fine-tuning"))
    print(f"[{units}] TP one-shot: {oneshot['loss_nats']:.4f} prefix, {oneshot['loss_nats_full_test']:.4f} test",
          flush=True)
    start = copy.deepcopy(tp_model)  # every training starts from the same one-shot model
    rn_api = (f"recipe: prune_units ratio {1 - units / hidden:g} round_to 16 magnitude reduce {args.reduce} "
              "refit auto (no lstsq re-fit: a finetune follows)")
    models = {}
    for k, training in enumerate(trainings):
        tag, how = TRAININGS[training]
        if k:  # one rnnslim side at a time, next to this process's fine-tune
            rnnslim_run = start_rnnslim_side(args.model, units, args.steps, args.main_python, training, args.reduce)
        tp_model = copy.deepcopy(start)
        ft = finetune(tp_model, data["train"], data["valid"], args.steps, args.lr,
                      teacher=ref.eval() if training == "distill" else None)
        tp_ft = measure(tp_model, data["prefix"], data["test"], tmp, f"tp{units}_finetuned_{training}")
        rows.append(row(f"Torch-Pruning + gate-aware LSTM pruner, {units} units, fine-tuned {args.steps} steps{tag}",
                        fixed_api, "ok", **tp_ft, finetune=ft | {"training": how},
                        **({"_timer": tp_key} if not k else {}), note=fixed_note + f"; fine-tuned {args.steps} steps "
                        f"on {how} (this script's loop, rnnslim's settings)"))
        print(f"[{units}] TP fine-tuned ({training}): {tp_ft['loss_nats']:.4f} prefix, "
              f"{tp_ft['loss_nats_full_test']:.4f} test ({ft['wall_s']:.0f} s)", flush=True)
        models.setdefault("tp", tp_model)
        # rnnslim's prune_units + finetune, the same units, budget and training, in the project's venv
        rn_one_w, rn_ft_w, record = finish_rnnslim_side(*rnnslim_run)
        for name, w, label, what in (
                ("oneshot", rn_one_w, "one-shot", "prune_units; refit auto: no least-squares re-fit, as a "
                                                 "finetune stage follows in the same recipe"),
                ("finetuned", rn_ft_w, f"fine-tuned {args.steps} steps{tag}", f"finetune stage, lr 1e-3, {how}")):
            if name == "oneshot" and k:
                continue  # the same one-shot model for every training
            m = PrunedCharRNN.from_tensors(w)
            models.setdefault(f"rnnslim_{name}", m)
            got = measure(m, data["prefix"], data["test"], tmp, f"rnnslim{units}_{name}_{training}")
            extra = {"pipeline": record} if name == "finetuned" else {}
            timer = {"_timer": rn_key} if not k else {}
            rows.append(row(f"rnnslim prune_units, {units} units, {label}", rn_api
                            + ("" if name == "oneshot" else f", then finetune max_steps {args.steps} lr 0.001"
                               + (", distill_alpha 1, distill_temperature 1, dropout 0" if training == "distill" else "")),
                            "ok", peer="rnnslim", **got, **extra, **timer, note=f"rnnslim {label} ({what}); run in the project's "
                            ".venv, weights written in the torch layout and measured here with the same code"))
            print(f"[{units}] rnnslim {name} ({training}): {got['loss_nats']:.4f} prefix, "
                  f"{got['loss_nats_full_test']:.4f} test", flush=True)
    return rows, models


def merged_latency(per_units: dict[str, dict]) -> dict | None:
    """One interleaved_latency dict from one run per units value (each ratio against its own run's rnnslim median)."""
    if not per_units:
        return None
    runs = list(per_units.values())
    return {"rounds": [r for run in runs for r in run["rounds"]],
            "rnnslim_int8_median_ms": float(np.median([r["rnnslim_int8_median_ms"] for r in runs])),
            "peer_median_ms": {k: v for run in runs for k, v in run["peer_median_ms"].items()},
            "speedup_per_variant": {k: v for run in runs for k, v in run["speedup_per_variant"].items()},
            "per_units": per_units, "how": runs[0]["how"] + "; one run per units value (per_units), merged"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="charlstm-512x2")
    ap.add_argument("--units", default="384,320", help="hidden units kept per layer, comma-separated")
    ap.add_argument("--steps", type=int, default=2000, help="fine-tune steps for BOTH tools (the recipes: 2000)")
    ap.add_argument("--lr", type=float, default=1e-3, help="peak lr (the deploy recipes' finetune lr)")
    ap.add_argument("--chars", type=int, default=20000)
    ap.add_argument("--main-python", default=MAIN_PYTHON)
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--budget-note", default="", help="why --steps differs from the recipes' 2000, if it does")
    ap.add_argument("--training", choices=(*TRAININGS, "both"), default="labels",
                    help="what both tools fine-tune on: the labels with the model's dropout (the recipes'), "
                         "distillation from the fp32 model with dropout off, or both (one after the other)")
    ap.add_argument("--reduce", choices=("l1", "l2"), default="l2",
                    help="how rnnslim's prune_units adds up a unit's weight scores: l2 (group norm, its default "
                         "since 2026-12, and what the gate-aware Torch-Pruning importance here uses) or l1 (sum)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    spec, ref_w = load_reference(args.model)
    ref = CharRNN.from_reference(spec, ref_w)
    if spec["cell"] != "lstm":  # Torch-Pruning has no GRU pruner: one row, what MetaPruner does with nn.GRU
        units = int(args.units.split(",")[0])
        rows = [failed_attempt(f"Torch-Pruning MetaPruner, nn.GRU(num_layers={spec['num_layers']}), {units} units",
                               GRU_API.format(ratio=1 - units / spec["hidden_size"]), lambda: copy.deepcopy(ref),
                               units, spec["hidden_size"], tp.importance.MagnitudeImportance(p=2))]
        write_result(RESULTS / "peers_torch_pruning.json", args.model, {
            "model": args.model, "rows": rows, "versions": versions(("torch", "torch-pruning")),
            "machine": machine(), "command": command_line(), "git_commit": git_commit(),
            "seconds": time.perf_counter() - t0, "date": now(), "load_avg": list(os.getloadavg())})
        print(json.dumps(rows, indent=1))
        return
    ids = load_text_ids(spec["vocab"])
    reference, ref_ids, _ = rnnslim_reference(args.model, args.chars, no_latency=True, main_python=args.main_python)
    prefix = split(ids, "test")[: args.chars + 1]
    if not np.array_equal(prefix, ref_ids):
        raise ValueError("the test prefix differs from rnnslim's: check ../shared/data and the split")
    data = {"train": split(ids, "train"), "valid": split(ids, "valid"), "test": split(ids, "test"), "prefix": prefix}
    tmp = Path(tempfile.mkdtemp(prefix="peers_tp_"))
    rows = []

    def save(lat: dict | None) -> None:
        write_result(RESULTS / "peers_torch_pruning.json", args.model, {
            "model": args.model, "test_chars": args.chars, "test_text": test_text(args.chars),
            "full_test_chars": int(len(data["test"]) - 1), "units": args.units,
            "budget": {"steps": args.steps, "recipe_steps": 2000, "batch": BATCH, "seq_len": SEQ_LEN, "lr": args.lr,
                       "optimizer": "AdamW wd 0, clip 1.0, warm-up 5 % then cosine to 1 %", "dropout": DROPOUT,
                       "threads": 1, "note": args.budget_note, "training": args.training, "rnnslim_reduce": args.reduce,
                       "trainings": {k: v[1] for k, v in TRAININGS.items()}},
            "rows": rows, "rnnslim": reference, "interleaved_latency": lat,
            "versions": versions(("torch", "torch-pruning", "numpy", "safetensors")), "machine": machine(),
            "command": command_line(), "git_commit": git_commit(), "seconds": time.perf_counter() - t0, "date": now(),
            "load_avg": list(os.getloadavg())})

    per_units: dict[str, dict] = {}
    for units in (int(u) for u in args.units.split(",")):
        got, models = run_units(args, units, spec, ref, ref_w, data, tmp)
        rows += got
        save(merged_latency(per_units))  # what is done so far survives a stopped run
        if args.no_latency:
            continue
        timers = {f"{name} {units} units fp32 torch": (lambda m=m: step_latency(module_stepper(m),
                                                                                len(spec["vocab"]))["median_ms"])
                  for name, m in (("Torch-Pruning", models["tp"]), ("rnnslim prune_units", models["rnnslim_finetuned"]))}
        per_units[str(units)] = interleaved_latency(args.model, timers, main_python=args.main_python)
        for r in got:
            key = r.pop("_timer", None)
            if key:
                r["latency"] = {"median_ms": per_units[str(units)]["peer_median_ms"][key],
                                "load_avg": per_units[str(units)]["rounds"][-1]["load_avg"],
                                "how": f"interleaved_latency '{key}': torch nn.LSTM streaming step, batch 1, 1 "
                                       "thread (the fine-tuned model; the one-shot model has the same shapes)"}
        save(merged_latency(per_units))
    print(json.dumps([{k: r.get(k) for k in ("variant", "outcome", "error", "loss_nats", "loss_nats_full_test",
                                               "params", "bytes")} for r in rows], indent=1))


if __name__ == "__main__":
    main()
