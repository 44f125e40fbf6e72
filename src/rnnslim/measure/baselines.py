"""What a user would otherwise run, built from the uncompressed model and measured in the same run.

    torch nn (default)      the multi-layer torch.nn.LSTM/GRU (`model.rnn.to_torch()`) with the
                            model's own embedding / input projection and decoder, PyTorch's
                            default CPU settings
    torch nn (oneDNN off)   the same module inside `torch.backends.mkldnn.flags(enabled=False)`
    ONNX Runtime fp32       the exported step graph (rnnslim.export.onnx)
    ONNX Runtime int8       that graph after `onnxruntime.quantization.quantize_dynamic`

onnxruntime is optional: without it the ORT rows say "not installed".

On a CUDA device (a baseline living on the GPU) the torch rows are cuDNN's nn.LSTM/GRU,
eager and replayed from a CUDA graph; the CPU-only rows say so.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from rnnslim.measure.size import count_parameters
from rnnslim.measure.variants import (
    BASELINE_KINDS,
    CPU_ONLY,
    Variant,
    VariantKind,
    graph_variant,
    ort_int8_note,
    ort_variant,
    torch_variant,
    unavailable,
)
from rnnslim.measure.weight_bytes import module_bytes_per_step, onnx_bytes_per_step
from rnnslim.recurrent.gates import CellType
from rnnslim.utils.device import model_device


class TorchReference(nn.Module):
    """encoder -> one multi-layer torch.nn.LSTM/GRU/RNN -> decoder, with SequenceModel's contract.

    State is torch's own: h (L*D, B, P) or (h, c) for LSTM; `forward(x, None)` starts from zeros.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.spec = model.spec
        self.rnn = model.rnn.to_torch()  # raises for non-uniform or swapped-in (compressed) layers
        encoder = getattr(model, "embedding", None) or getattr(model, "input_proj", None) or nn.Identity()
        # copied together so a decoder tied to the embedding stays tied
        self.encoder, self.decoder = copy.deepcopy((encoder, model.decoder))
        self.readout = model.spec.readout.value

    def forward(self, x: Tensor, state=None):
        h, state = self.rnn(self.encoder(x), state)  # (T, B, P*D)
        if self.readout == "last":
            h = h[-1]
        elif self.readout == "mean":
            h = h.mean(0)
        return self.decoder(h), state


@contextlib.contextmanager
def onednn_disabled() -> Iterator[None]:
    """PyTorch without oneDNN (mkldnn) kernels; the flag is process-wide and restored on exit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about TF32 on Intel GPUs when the flags change
        ctx = torch.backends.mkldnn.flags(enabled=False)
        ctx.__enter__()
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ctx.__exit__(None, None, None)


SPARSE_HINT = 0.01  # more than 1% exact zeros among the weights: pruned, not the uncompressed model


def is_uncompressed(model: nn.Module) -> bool:
    """A float32 SequenceModel with plain torch recurrent layers of one shape, dense storage and
    (almost) no zero weights; only such a model can serve as its own baseline."""
    if not (hasattr(model, "spec") and hasattr(model, "rnn")):
        return False
    plain = all(isinstance(layer, nn.RNNBase) for layer in model.rnn.layers)
    floats = all(p.dtype == torch.float32 for p in model.parameters())
    dense_storage = not getattr(model, "tensor_encodings", None)
    if not (plain and floats and dense_storage and model.rnn.is_uniform()):
        return False
    params, nonzero, _ = count_parameters(model)
    return nonzero >= (1 - SPARSE_HINT) * params


def torch_variants(baseline: nn.Module, artifact_bytes: int | None) -> list[Variant]:
    try:
        ref = TorchReference(baseline).eval()
    except (TypeError, ValueError) as e:
        why = f"unavailable: {e}"
        return [unavailable(VariantKind.TORCH_DEFAULT, why), unavailable(VariantKind.TORCH_NO_ONEDNN, why)]
    nbytes = module_bytes_per_step(ref)
    off_note = ""
    if baseline.rnn.cell is CellType.LSTM and baseline.rnn.specs[0].proj_size:
        off_note = "LSTM with projection never uses oneDNN: same path as default"
    return [
        torch_variant(VariantKind.TORCH_DEFAULT, ref, artifact_bytes, nbytes),
        torch_variant(VariantKind.TORCH_NO_ONEDNN, ref, artifact_bytes, nbytes, context=onednn_disabled, note=off_note),
    ]


def cuda_variants(baseline: nn.Module, artifact_bytes: int | None) -> list[Variant]:
    """cuDNN nn.LSTM/GRU on the baseline's GPU, eager and from a CUDA graph; CPU-only rows unavailable."""
    device = model_device(baseline)
    cpu_only = [unavailable(k, f"unavailable on {device}: a CPU baseline (measure on --device cpu)") for k in CPU_ONLY]
    try:
        ref = TorchReference(baseline).to(device).eval()
    except (TypeError, ValueError) as e:
        why = f"unavailable: {e}"
        return [unavailable(VariantKind.TORCH_DEFAULT, why), unavailable(VariantKind.TORCH_CUDA_GRAPH, why), *cpu_only]
    nbytes = module_bytes_per_step(ref)
    return [torch_variant(VariantKind.TORCH_DEFAULT, ref, artifact_bytes, nbytes, note=f"cuDNN on {device}"),
            graph_variant(VariantKind.TORCH_CUDA_GRAPH, ref, artifact_bytes, nbytes), *cpu_only]


def ort_variants(baseline: nn.Module, workdir: Path) -> tuple[list[Variant], dict | None]:
    """(ORT fp32 and int8 variants, export record) for the baseline; rows say why when they cannot run."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        why = "not installed (pip install 'rnnslim[onnx]')"
        return [unavailable(VariantKind.ORT_FP32, why), unavailable(VariantKind.ORT_INT8, why)], None
    from rnnslim.export.onnx import export_step_onnx, quantize_dynamic_int8

    fp32, int8 = workdir / "step_fp32.onnx", workdir / "step_int8.onnx"
    try:
        exp = export_step_onnx(baseline, fp32)
    except Exception as e:  # the exporter or its parity check: the rows say so, the run goes on
        why = f"unavailable: ONNX export failed: {e}"
        return [unavailable(VariantKind.ORT_FP32, why), unavailable(VariantKind.ORT_INT8, why)], None
    record = exp.to_dict()
    del record["path"]  # a temporary file, gone after the run
    note = f"{exp.exporter} exporter, parity {exp.parity_max_abs_diff:.1e}"
    if exp.layout.static_time:
        note += ", T fixed to 1 (batch runs loop over time)"
    out = [ort_variant(VariantKind.ORT_FP32, fp32, onnx_bytes_per_step(fp32), note)]
    try:
        ops = quantize_dynamic_int8(fp32, int8)
        record["int8_op_types"] = ops
        out.append(ort_variant(VariantKind.ORT_INT8, int8, onnx_bytes_per_step(int8), ort_int8_note(ops)))
    except Exception as e:
        out.append(unavailable(VariantKind.ORT_INT8, f"unavailable: quantize_dynamic failed: {e}"))
    return out, record


def baseline_variants(baseline: nn.Module, workdir: Path, artifact_bytes: int | None) -> tuple[list[Variant], dict | None]:
    """All four baseline rows for `baseline` (ONNX files are written under `workdir`)."""
    if not (hasattr(baseline, "spec") and hasattr(baseline, "rnn")):
        why = f"unavailable: baseline must be a SequenceModel, got {type(baseline).__name__}"
        return [unavailable(k, why) for k in BASELINE_KINDS], None
    if model_device(baseline).type == "cuda":
        return cuda_variants(baseline, artifact_bytes), None
    ort, record = ort_variants(baseline, workdir)
    return torch_variants(baseline, artifact_bytes) + ort, record
