"""Timing on a CUDA GPU: synchronised eager steps, the CUDA-graph streaming step (the same
outputs as the eager step), and measure()'s CUDA rows. Skipped without a GPU; on CPU only
the refusal is checked."""

import pytest
import torch

from rnnslim.measure import measure
from rnnslim.measure.latency import graph_step, random_inputs, streaming_latency
from rnnslim.measure.variants import VariantKind
from rnnslim.models.sequence import SequenceModel
from rnnslim.tasks.charlm import CharLMTask

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (torch.cuda.is_available() is False)")


def _model(cell="lstm", device="cpu"):
    task = CharLMTask(text="the quick brown fox jumps over the lazy dog. " * 30)
    torch.manual_seed(0)
    return task, SequenceModel(task.model_spec(cell=cell, hidden_size=32, num_layers=2)).to(device).eval()


def test_graph_step_refuses_a_cpu_model():
    _, model = _model()
    with pytest.raises(ValueError, match="CUDA device"):
        graph_step(model)


@needs_cuda
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_graph_replay_equals_eager_steps_with_the_state_carried(cell):
    _, model = _model(cell, "cuda")
    with torch.inference_mode():
        step = graph_step(model)
        ids = random_inputs(model, 6, 1, 0).cuda().unsqueeze(1)  # the step's own inputs (seed 0), (6, 1, 1)
        state = None
        for x in ids:
            ref, state = model(x, state)
            step()
            assert torch.allclose(step.buffers["output"], ref, atol=1e-5, rtol=1e-4)
    graph = streaming_latency(model, steps=20, repeats=2, warmup=5, cuda_graph=True)
    eager = streaming_latency(model, steps=20, repeats=2, warmup=5)
    assert graph["median_ms"] > 0 and eager["median_ms"] > 0


@needs_cuda
def test_measure_on_cuda_has_graph_rows_and_marks_cpu_baselines(tmp_path):
    task, model = _model("lstm", "cuda")
    r = measure(model, task=task, quick=True, threads=(1, 2))
    kinds = {v.kind: v for v in r.variants}
    assert {v.threads for v in r.variants} == {1}
    for k in (VariantKind.MODEL, VariantKind.CUDA_GRAPH, VariantKind.TORCH_DEFAULT, VariantKind.TORCH_CUDA_GRAPH):
        assert kinds[k].latency is not None, (k, kinds[k].status)
    for k in (VariantKind.TORCH_NO_ONEDNN, VariantKind.ORT_FP32, VariantKind.ORT_INT8):
        assert "CPU baseline" in kinds[k].status
    assert r.machine.gpus and "cuDNN" in kinds[VariantKind.TORCH_DEFAULT].note


@pytest.mark.skipif(CUDA, reason="checks the refusal on a machine without CUDA")
def test_gpu_bench_refuses_without_cuda():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[2] / "benchmarks" / "gpu_bench.py"
    r = subprocess.run([sys.executable, str(script), "--part", "latency"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "needs a CUDA GPU" in r.stderr
