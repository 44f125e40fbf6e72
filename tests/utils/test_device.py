"""--device: cpu / cuda / cuda:N / mps resolve to a torch.device or fail with one clear line,
in the library (train, run_pipeline) and on the command line (train, eval, measure, compress)."""

import pytest
import torch
from typer.testing import CliRunner

from rnnslim.cli import app
from rnnslim.models.sequence import SequenceModel
from rnnslim.tasks.charlm import CharLMTask
from rnnslim.train import TrainConfig, train
from rnnslim.utils.device import model_device, resolve_device

NO_CUDA = not torch.cuda.is_available()


def test_cpu_and_bad_names():
    assert resolve_device("cpu") == torch.device("cpu")
    for bad, what in (("gpu", "unknown device"), ("cuda:x", "unknown device"), ("xla", "not supported")):
        with pytest.raises(ValueError, match=what):
            resolve_device(bad)


@pytest.mark.skipif(not NO_CUDA, reason="checks the error without CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_a_clear_error(name):
    with pytest.raises(ValueError, match="CUDA is not available.*--device cpu"):
        resolve_device(name)


@pytest.mark.skipif(NO_CUDA, reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
def test_cuda_index_out_of_range():
    assert resolve_device("cuda:0").type == "cuda"
    with pytest.raises(ValueError, match="CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.skipif(not NO_CUDA, reason="checks the error without CUDA")
def test_train_and_cli_refuse_cuda_without_cuda(tmp_path):
    task = CharLMTask(text="abcdefgh ijklmnop " * 60)
    model = SequenceModel(task.model_spec(hidden_size=8, num_layers=1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="CUDA is not available"):
        train(model, task, TrainConfig(max_steps=1, batch_size=4, device="cuda"), progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()) and model_device(model).type == "cpu"
    text = tmp_path / "t.txt"
    text.write_text("abcdefgh ijklmnop " * 60)
    runner = CliRunner()
    r = runner.invoke(app, ["train", "--out", str(tmp_path / "m"), "--data", str(text), "--device", "cuda:0"])
    assert r.exit_code == 2 and "--device" in r.output and "CUDA is not available" in r.output
    assert not (tmp_path / "m").exists()
    for cmd in (["eval", "MODEL", "--device", "cuda"], ["measure", "MODEL", "--device", "cuda"]):
        r = runner.invoke(app, cmd)
        assert r.exit_code == 2 and "CUDA is not available" in r.output, r.output
