"""Dynamic and static int8 on a user's own nn.Module (not rnnslim's SequenceModel).

Every torch LSTM / GRU / RNN inside the model (any number of layers, bidirectional,
proj_size, batch_first) becomes a TorchContractStack of per-layer Int8Recurrent modules:
the user's forward calls it exactly as before (torch's state shapes, `hidden_size`,
`num_layers`). nn.Linear layers become Int8Linear (cfg.quantize_decoder) and nn.Embedding
Int8Embedding (cfg.quantize_embedding); tied weights are quantized on both sides to the
same codes. Convolutions and everything else stay float.

Static int8 calibrates on the user's own inputs: each torch module is first split into
single-layer float copies (same function), forward hooks observe every layer's input,
output and (LSTM) cell state and every Linear's input, then the layers are converted with
those ranges. Fully integer int8 chains int8 codes from the embedding to the decoder with
no float in between, which needs rnnslim's SequenceModel layout: the error says to capture
the module first (rnnslim.capture), which gives that layout.
"""

from __future__ import annotations

import torch
from torch import nn

from rnnslim.io.modules import set_submodule
from rnnslim.quantize.int8.calibrate import LayerRanges, _Amax, _lstm_states
from rnnslim.quantize.int8.config import Int8Config, Int8Mode
from rnnslim.quantize.int8.emulated import Int8Embedding, Int8Linear, Int8Recurrent
from rnnslim.quantize.observers import ObserverKind
from rnnslim.recurrent.torch_contract import TorchContractStack, single_layer_copies


def is_sequence_model(model: nn.Module) -> bool:
    return hasattr(model, "spec") and hasattr(getattr(model, "rnn", None), "layers")


def _inputs(batch) -> tuple:
    return batch if isinstance(batch, tuple) else (batch,)


@torch.no_grad()
def _calibrate(model: nn.Module, stacks: list[TorchContractStack], linears: list[nn.Linear], calibration,
               cfg: Int8Config) -> tuple[list[list[LayerRanges]], list[float]]:
    """Per stack layer LayerRanges and per Linear input amax, observed on the user's inputs."""
    new = lambda: _Amax(ObserverKind(cfg.observer), cfg.percentile)  # noqa: E731
    obs = [[{"x": new(), "h": new(), "m": new(), "c": 0.0} for _ in st.layers] for st in stacks]
    lin_obs = [new() for _ in linears]
    hooks = []

    def layer_hook(o):
        def hook(mod, args, out):
            x = args[0].float()
            o["x"].observe(x)
            if isinstance(mod, nn.LSTM):
                y, c, m = _lstm_states(mod, x)
                o["c"] = max(o["c"], float(c.abs().max()) if c.numel() else 0.0)
                if mod.proj_size:
                    o["m"].observe(m)
            o["h"].observe(out[0].float())
        return hook

    for st, per in zip(stacks, obs):
        hooks += [layer.register_forward_hook(layer_hook(o)) for layer, o in zip(st.layers, per)]
    hooks += [lin.register_forward_hook(lambda mod, args, out, o=o: o.observe(args[0].float()))
              for lin, o in zip(linears, lin_obs)]
    was = model.training
    model.eval()
    n = 0
    try:
        for batch in calibration:
            model(*_inputs(batch))
            n += 1
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    if n == 0:
        raise ValueError("static int8 needs at least one calibration batch (your model's inputs)")
    ranges = [[LayerRanges(x=o["x"].amax(), h=o["h"].amax(), c=o["c"], m=o["m"].amax()) for o in per] for per in obs]
    return ranges, [o.amax() for o in lin_obs]


def quantize_user_int8_(model: nn.Module, cfg: Int8Config, calibration=None) -> list[str]:
    """Dynamic or static int8 in place on a user's module; returns the paths of the replaced
    modules. `calibration` (static): an iterable of the model's inputs (a tensor or a tuple
    of forward arguments per batch)."""
    if cfg.mode is Int8Mode.INTEGER:
        raise ValueError(f"fully integer int8 runs rnnslim's SequenceModel layout and {type(model).__name__} is your "
                         "own module: capture it first (from rnnslim.capture import capture; seq = capture(model, "
                         "example_inputs); quantize_int8_(seq, Int8Config(mode='integer'), calibration=...)), then "
                         "export seq; or keep your class with Int8Config(mode='static') or 'dynamic'")
    if cfg.mode is Int8Mode.STATIC and calibration is None:
        raise ValueError("static int8 needs calibration data: an iterable of your model's inputs")
    recurrent = [(p, m) for p, m in model.named_modules() if isinstance(m, nn.RNNBase)]
    if not recurrent:
        raise ValueError(f"{type(model).__name__} holds no torch LSTM / GRU / RNN module to quantize")
    linears = [(p, m) for p, m in model.named_modules() if isinstance(m, nn.Linear)] if cfg.quantize_decoder else []
    embeddings = ([(p, m) for p, m in model.named_modules() if isinstance(m, nn.Embedding)]
                  if cfg.quantize_embedding else [])
    stacks = []  # float single-layer copies first: the same function, one module per layer to observe
    for path, m in recurrent:
        st = TorchContractStack.from_layers(m, single_layer_copies(m)).train(m.training)
        set_submodule(model, path, st)
        stacks.append(st)
    ranges, lin_in = (None, None)
    if cfg.mode is Int8Mode.STATIC:
        ranges, lin_in = _calibrate(model, stacks, [m for _, m in linears], calibration, cfg)
    changed = []
    for i, ((path, _), st) in enumerate(zip(recurrent, stacks)):
        for k, layer in enumerate(list(st.layers)):
            st.layers[k] = Int8Recurrent.from_float(layer, cfg.mode, ranges[i][k] if ranges else None)
        changed.append(path)
    for j, (path, m) in enumerate(linears):
        set_submodule(model, path, Int8Linear.from_float(m, cfg.mode, lin_in[j] if lin_in else None))
        changed.append(path)
    for path, m in embeddings:
        set_submodule(model, path, Int8Embedding.from_float(m))
        changed.append(path)
    return changed
