"""classify: CSV long layout, UCR .tsv, .ts via aeon, valid carve, scaling, front padding,
exact evaluation, training, meta reuse and errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from classify_data import make_sequences, write_long_csv
from torch.nn import functional as F

from rnnslim.models.sequence import Readout
from rnnslim.tasks import make_model, make_task, task_for_model
from rnnslim.tasks.classify import ClassifyTask, find_train_test, stratified_carve
from rnnslim.train import TrainConfig, train


@pytest.fixture
def csv_data(tmp_path):
    train, test = make_sequences(60, 1), make_sequences(20, 2)
    write_long_csv(tmp_path / "train.csv", train)
    write_long_csv(tmp_path / "test.csv", test, seed=1)
    return tmp_path, train, test


def test_csv_loading_splits_and_scaling(csv_data):
    root, train_seqs, test_seqs = csv_data
    task = ClassifyTask(root)
    assert task.classes == ["down", "up"] and task.features == ["f0", "f1"]
    n = {s: len(task.split(s)) for s in ("train", "valid", "test")}
    assert n == {"train": 48, "valid": 12, "test": 20}  # 20% of each class (30) carved off
    assert int((task.split("valid").y == 0).sum()) == 6
    # scaling from the train split only, over real (unpadded) steps
    tr = task.split("train")
    real = torch.cat([tr.x[i, tr.x.shape[1] - L:] for i, L in enumerate(tr.lengths.tolist())])
    assert torch.allclose(real.mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(real.std(0, unbiased=False), torch.ones(2), atol=1e-4)
    # the test split keeps file order of first appearance, steps ordered by t
    first_id = (root / "test.csv").read_text().splitlines()[1].split(",")[0]  # e.g. "s7"
    first = test_seqs[int(first_id[1:])][1]
    te = task.split("test")
    L = int(te.lengths[0])
    assert L == len(first)
    assert np.allclose(task.scaler.invert(te.x[0, -L:].numpy()), first, atol=1e-5)


def test_front_padding_keeps_last_step_real(csv_data):
    task = ClassifyTask(csv_data[0])
    s = task.split("train")
    idx = torch.tensor([int(s.lengths.argmin()), int(s.lengths.argmax())])
    b = s.batch(idx)
    short, long_ = s.lengths[idx].tolist()
    assert b.inputs.shape == (long_, 2, 2) and b.targets.shape == (2,)
    assert torch.all(b.inputs[: long_ - short, 0] == 0)  # zeros before the short sequence
    assert torch.equal(b.inputs[-1, 0], s.x[idx[0], -1])  # its last step is real
    batches = list(task.batches("train", 16, seq_len=999, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert [len(x.targets) for x in batches] == [16, 16, 16]
    assert sorted(torch.cat([x.targets for x in batches]).tolist()) == sorted(s.y.tolist())


def test_evaluation_is_exact_per_sequence(csv_data):
    torch.manual_seed(0)
    task = ClassifyTask(csv_data[0])
    model = make_model(task, hidden_size=8, num_layers=1).eval()
    got = task.evaluate(model, "test")
    assert set(got) >= {"loss", "accuracy", "sequences"} and got["sequences"] == 20
    s = task.split("test")
    losses, hits = [], []
    with torch.no_grad():
        for i in range(len(s)):
            x = s.x[i, s.x.shape[1] - int(s.lengths[i]):].unsqueeze(1)  # (L, 1, F), no padding
            logits, _ = model(x)
            losses.append(F.cross_entropy(logits, s.y[i : i + 1]).item())
            hits.append(int(logits.argmax(-1).item() == s.y[i].item()))
    assert got["loss"] == pytest.approx(np.mean(losses), abs=1e-5)
    assert got["accuracy"] == pytest.approx(np.mean(hits))
    assert task.evaluate(model, "test", max_steps=5)["sequences"] == 5


def test_training_learns_the_classes(csv_data):
    torch.manual_seed(0)
    task = ClassifyTask(csv_data[0])
    model = make_model(task, hidden_size=16, num_layers=1)
    spec = model.spec
    assert spec.readout is Readout.LAST and spec.output_size == 2 and spec.input_size == 2
    before = task.evaluate(model, "valid")
    train(model, task, TrainConfig(epochs=15, batch_size=8, lr=1e-2), progress=False)
    after = task.evaluate(model, "test")
    assert after["loss"] < before["loss"] - 0.3
    assert after["accuracy"] >= 0.9
    assert task.primary_metric == "accuracy" and task.higher_is_better


def test_meta_reuse_and_mismatch_errors(csv_data, tmp_path):
    root, *_ = csv_data
    task = ClassifyTask(root)
    model = make_model(task, hidden_size=4, num_layers=1)
    again = make_task("classify", root, meta=model.task_meta)
    assert again.classes == task.classes
    assert np.array_equal(again.scaler.mean, task.scaler.mean)
    assert torch.equal(again.split("valid").y, task.split("valid").y)  # same seeded carve
    assert task_for_model(model, root).classes == task.classes
    # a model trained on other classes / features
    with pytest.raises(ValueError, match="trained on classes"):
        task.check_model(_with_classes(task, ["x", "y"]))
    wrong = make_model(task, hidden_size=4, num_layers=1)
    wrong_spec = wrong.spec.model_copy(update={"input_size": 3})
    with pytest.raises(ValueError, match="expects 3 features per step, the data has 2"):
        task.check_model(type(wrong)(wrong_spec))
    with pytest.raises(ValueError, match="trained on 3 features but the data has 2"):
        make_task("classify", root, meta={**model.task_meta, "scaling": {"mean": [0, 0, 0], "std": [1, 1, 1]}})


def _with_classes(task, classes):
    model = make_model(task, hidden_size=4, num_layers=1)
    model.task_meta = {**model.task_meta, "classes": classes}
    return model


def test_ucr_tsv_layout_drops_trailing_nan(tmp_path):
    (tmp_path / "Toy_TRAIN.tsv").write_text("1\t1\t2\t3\tNaN\n2\t3\t2\t1\t0\n1\t0\t1\n2\t5\t4\t3\n" * 3)
    (tmp_path / "Toy_TEST.tsv").write_text("2\t3\t2\t1\n1\t1\t2\t3\n")
    task = make_task("classify", tmp_path / "Toy_TRAIN.tsv", valid_fraction=0.25)
    assert task.classes == ["1", "2"] and task.features == ["value"]
    assert sorted(set(task.split("train").lengths.tolist()) | set(task.split("valid").lengths.tolist())) == [2, 3, 4]
    assert task.split("test").x.shape == (2, 3, 1)


def test_ts_format_via_aeon(tmp_path):
    pytest.importorskip("aeon", reason="aeon is an optional extra (pip install 'rnnslim[aeon]') not installed here")
    header = "@problemName Toy\n@timeStamps false\n@missing true\n@univariate false\n@dimensions 2\n" \
             "@equalLength false\n@classLabel true a b\n@data\n"
    (tmp_path / "Toy_TRAIN.ts").write_text(header + "1,2,3:4,5,6:a\n3,2:1,?:b\n" * 4)
    (tmp_path / "Toy_TEST.ts").write_text(header + "1,2,3,4:1,1,1,1:a\n")
    task = make_task("classify", tmp_path)
    assert task.classes == ["a", "b"] and task.n_features == 2
    assert sorted(task.split("train").lengths.tolist()) == [2, 2, 2, 3, 3, 3]
    assert task.split("test").x.shape == (1, 4, 2)
    assert torch.isfinite(task.split("train").x).all()  # '?' -> NaN -> 0 after scaling
    model = make_model(task, hidden_size=4, num_layers=1)
    assert 0.0 <= task.evaluate(model, "test")["accuracy"] <= 1.0


def test_ts_without_aeon_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "aeon", None)
    monkeypatch.setitem(sys.modules, "aeon.datasets", None)
    (tmp_path / "Toy_TRAIN.ts").write_text("@data\n1,2:a\n")
    (tmp_path / "Toy_TEST.ts").write_text("@data\n1,2:a\n")
    with pytest.raises(ImportError, match=r'pip install "rnnslim\[aeon\]"'):
        ClassifyTask(tmp_path)


def test_file_and_label_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        make_task("classify", tmp_path / "missing.csv")
    write_long_csv(tmp_path / "A_TRAIN.csv", make_sequences(10, 0))
    with pytest.raises(FileNotFoundError, match="A_TEST.csv"):
        find_train_test(tmp_path / "A_TRAIN.csv")
    bad = [("sideways", x) for _, x in make_sequences(2, 3)]
    write_long_csv(tmp_path / "A_TEST.csv", bad)
    with pytest.raises(ValueError, match=r"labels \['sideways'\] are not among the classes"):
        ClassifyTask(tmp_path)
    (tmp_path / "B_TRAIN.csv").write_text("id,value,label\n")
    with pytest.raises(FileNotFoundError, match="expected one data set"):
        ClassifyTask(tmp_path)
    (tmp_path / "x.csv").write_text("seq,f0,label\ns,1,a\n")
    with pytest.raises(ValueError, match="missing column 'id'"):
        ClassifyTask(tmp_path / "x.csv", test=tmp_path / "x.csv")


def test_stratified_carve_keeps_every_class_in_train():
    labels = ["a"] * 5 + ["b"] * 1 + ["c"] * 2
    tr, va = stratified_carve(labels, 0.5, seed=3)
    assert sorted(tr + va) == list(range(8))
    assert {labels[i] for i in tr} == {"a", "b", "c"}
    assert stratified_carve(labels, 0.5, seed=3) == (tr, va)  # seeded
    with pytest.raises(ValueError, match="too few sequences"):
        stratified_carve(["a", "b"], 0.2, seed=0)
