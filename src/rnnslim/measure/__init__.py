"""Honest measurement of recurrent models (BENCHMARKING.md): size, MACs per step, task quality,
streaming latency and throughput, side by side with PyTorch and ONNX Runtime baselines and the
time to stream the weights at the measured memory bandwidth, all in one run. Entry point: `measure(model, task=...)`."""

from rnnslim.measure.bandwidth import Bandwidth, memory_bandwidth
from rnnslim.measure.baselines import TorchReference, is_uncompressed
from rnnslim.measure.latency import streaming_latency, throughput, torch_threads
from rnnslim.measure.machine import MachineInfo, machine_info
from rnnslim.measure.macs import MacPart, MacStats, macs_per_step, recurrent_layer_macs
from rnnslim.measure.quality import Quality, evaluate_quality
from rnnslim.measure.results import MeasureReport, MeasureSettings, VariantResult
from rnnslim.measure.run import measure
from rnnslim.measure.size import SizeStats, count_parameters, size_stats
from rnnslim.measure.variants import VariantKind
from rnnslim.measure.weight_bytes import module_bytes_per_step, onnx_bytes_per_step

__all__ = [
    "Bandwidth",
    "MacPart",
    "MacStats",
    "MachineInfo",
    "MeasureReport",
    "MeasureSettings",
    "Quality",
    "SizeStats",
    "TorchReference",
    "VariantKind",
    "VariantResult",
    "count_parameters",
    "evaluate_quality",
    "is_uncompressed",
    "machine_info",
    "macs_per_step",
    "measure",
    "memory_bandwidth",
    "module_bytes_per_step",
    "onnx_bytes_per_step",
    "recurrent_layer_macs",
    "size_stats",
    "streaming_latency",
    "throughput",
    "torch_threads",
]
