"""forecast: column selection, chronological split, windows, scaling, metrics, training, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnslim.models.sequence import Readout
from rnnslim.tasks import make_model, make_task, task_for_model
from rnnslim.tasks.forecast import ForecastTask
from rnnslim.train import TrainConfig, train

N = 400


def write_series(path, n=N, nan_at=None):
    t = np.arange(n)
    a = 10 + 3 * np.sin(2 * np.pi * t / 25)
    b = 100 + 20 * np.cos(2 * np.pi * t / 25)
    c = 0.01 * t
    lines = ["date,a,b,c,site"]
    for i in range(n):
        av = "" if i == nan_at else f"{a[i]:.6f}"
        lines.append(f"2024-01-{i:04d},{av},{b[i]:.6f},{c[i]:.6f},x")
    path.write_text("\n".join(lines) + "\n")
    return path, np.stack([a, b, c], 1)


@pytest.fixture
def series(tmp_path):
    return write_series(tmp_path / "s.csv")


def test_columns_split_and_scaling(series):
    path, raw = series
    task = ForecastTask(path, window=8, horizon=3)
    assert task.columns == task.targets == ["a", "b", "c"]  # numeric columns only; date/site ignored
    assert task.bounds == {"train": (0, 320), "valid": (320, 360), "test": (360, 400)}
    assert torch.allclose(task.x[:320].mean(0), torch.zeros(3), atol=1e-5)  # train rows only
    assert torch.allclose(task.x[:320].double().std(0, unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-5)
    assert task.x[320:, 2].mean() > 1.5  # the trend keeps rising past train: no peeking at test stats
    starts = task.starts
    assert starts["train"][0] == 8 and starts["train"][-1] == 320 - 3
    assert starts["valid"][0] == 320 and starts["valid"][-1] == 360 - 3  # inputs reach back into train
    assert starts["test"][-1] == 400 - 3
    assert task.meta()["scaling"]["inputs"]["mean"] == pytest.approx(raw[:320].mean(0).tolist())


def test_sample_layout_is_horizon_major(series):
    path, raw = series
    task = ForecastTask(path, columns=["a", "c"], targets=["b", "a"], window=5, horizon=2)
    b = task.samples(torch.tensor([100, 200]))
    assert b.inputs.shape == (5, 2, 2) and b.targets.shape == (2, 4)
    x = task.in_scaler.invert(b.inputs[:, 0].double().numpy())
    assert np.allclose(x, raw[95:100][:, [0, 2]], atol=1e-4)  # rows [s - window, s)
    y = task.out_scaler.invert(b.targets[0].double().numpy().reshape(2, 2))
    assert np.allclose(y, raw[100:102][:, [1, 0]], atol=1e-3)  # rows [s, s + horizon), targets per step
    batches = list(task.batches("train", 64, seq_len=1, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert sum(len(x.targets) for x in batches) == len(task.starts["train"])


def test_metrics_in_scaled_and_original_units(series):
    path, _ = series
    task = ForecastTask(path, targets=["b"], window=6, horizon=1)
    model = make_model(task, hidden_size=8, num_layers=1)
    assert model.spec.readout is Readout.LAST and model.spec.output_size == 1
    r = task.evaluate(model, "test")
    assert set(r) >= {"loss", "mse", "mae", "mse_orig", "mae_orig", "windows"}
    assert r["windows"] == len(task.starts["test"]) and r["loss"] == r["mse"]
    std = float(task.out_scaler.std[0])  # one target: original error = scaled error * std
    assert r["mse_orig"] == pytest.approx(r["mse"] * std**2, rel=1e-4)
    assert r["mae_orig"] == pytest.approx(r["mae"] * std, rel=1e-4)
    assert task.evaluate(model, "valid", max_steps=7)["windows"] == 7


def test_training_lowers_mse(series):
    torch.manual_seed(0)
    path, _ = series
    task = ForecastTask(path, columns=["a", "b"], targets=["a"], window=12, horizon=2)
    model = make_model(task, hidden_size=16, num_layers=1)
    before = task.evaluate(model, "valid")["mse"]
    train(model, task, TrainConfig(epochs=6, batch_size=32, lr=1e-2), progress=False)
    after = task.evaluate(model, "valid")["mse"]
    assert after < 0.3 * before and after < 0.2


def test_meta_reuse_and_conflicts(series, tmp_path):
    path, _ = series
    task = ForecastTask(path, columns=["a", "b"], targets=["b"], window=10, horizon=2)
    model = make_model(task, hidden_size=4, num_layers=1)
    # other data: the model's columns, horizon and train statistics are reused
    other, _ = write_series(tmp_path / "other.csv", n=300)
    again = task_for_model(model, other)
    assert again.columns == ["a", "b"] and again.targets == ["b"] and again.config.horizon == 2
    assert np.array_equal(again.in_scaler.mean, task.in_scaler.mean)
    assert make_task("forecast", other, meta=model.task_meta, window=20).config.window == 20
    with pytest.raises(ValueError, match="trained with horizon=2"):
        make_task("forecast", other, meta=model.task_meta, horizon=3)
    own = ForecastTask(other, window=10, horizon=2)  # all three columns
    with pytest.raises(ValueError, match="expects 2 input columns, the task has 3"):
        own.check_model(model)


def test_data_errors(tmp_path, series):
    path, _ = series
    with pytest.raises(ValueError, match="no column 'zz'"):
        ForecastTask(path, columns=["zz"])
    with pytest.raises(ValueError, match="'site' is not numeric"):
        ForecastTask(path, targets=["site"])
    nan_path, _ = write_series(tmp_path / "nan.csv", nan_at=17)
    with pytest.raises(ValueError, match="'a' has 1 missing values \\(first at data row 18\\)"):
        ForecastTask(nan_path)
    with pytest.raises(ValueError, match="train split .* too short for window=330"):
        ForecastTask(path, window=330, horizon=2)  # train holds 320 rows
    with pytest.raises(ValueError, match="bounds"):
        ForecastTask(path, bounds=(0.9, 0.8))
    with pytest.raises(FileNotFoundError):
        ForecastTask(tmp_path / "none.csv")
    with pytest.raises(ValueError, match="needs a CSV file"):
        make_task("forecast")
    with pytest.raises(ValueError, match="tie_weights"):
        ForecastTask(path).model_spec(tie_weights=True)
