"""Data sets by name (aeon's shipped folders) and aeon's multi-format folders."""

from __future__ import annotations

import pytest

from rnnslim.tasks import named_data
from rnnslim.tasks.classify import find_train_test


def _fake_aeon(tmp_path, monkeypatch):
    root = tmp_path / "aeon_data"
    gp = root / "GunPoint"
    gp.mkdir(parents=True)
    for f in ("GunPoint_TRAIN.ts", "GunPoint_TEST.ts", "GunPoint_TRAIN.tsv", "GunPoint_TRAIN.arff"):
        (gp / f).write_text("x")
    (root / "Airline").mkdir()
    (root / "Airline" / "Airline.csv").write_text("passengers\n1\n2\n")
    monkeypatch.setattr(named_data, "aeon_data_root", lambda: root)
    return root


def test_names_resolve_to_aeon_folders(tmp_path, monkeypatch):
    root = _fake_aeon(tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)
    train, test = find_train_test("gunpoint")  # case-insensitive; .ts preferred (its test file is there)
    assert (train, test) == (root / "GunPoint" / "GunPoint_TRAIN.ts", root / "GunPoint" / "GunPoint_TEST.ts")
    assert named_data.resolve_named("Airline", "forecast") == root / "Airline" / "Airline.csv"
    with pytest.raises(FileNotFoundError, match="does not ship .*'BasicMotion'.*it ships: GunPoint"):
        find_train_test("BasicMotion")


def test_no_aeon_and_other_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(named_data, "aeon_data_root", lambda: None)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"aeon ships .*rnnslim\[aeon\]"):
        find_train_test("BasicMotions")
    two = tmp_path / "two"
    two.mkdir()
    for f in ("A_TRAIN.csv", "A_TEST.csv", "B_TRAIN.csv", "B_TEST.csv"):
        (two / f).write_text("x")
    with pytest.raises(FileNotFoundError, match="expected one data set"):
        find_train_test(two)
    only_tsv_test = tmp_path / "m"
    only_tsv_test.mkdir()
    for f in ("D_TRAIN.ts", "D_TRAIN.tsv", "D_TEST.tsv"):
        (only_tsv_test / f).write_text("x")
    assert find_train_test(only_tsv_test)[0].name == "D_TRAIN.tsv"  # the format whose test file exists


def test_make_task_passes_a_name_through(tmp_path, monkeypatch):
    from rnnslim.tasks import make_task

    monkeypatch.setattr(named_data, "aeon_data_root", lambda: None)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="aeon ships"):  # looked up by name, not "data not found"
        make_task("classify", "BasicMotions")
    with pytest.raises(FileNotFoundError, match="aeon ships"):
        make_task("forecast", "Airline")
    with pytest.raises(FileNotFoundError, match="data not found"):
        make_task("charlm", "no_such_corpus")


def test_malformed_tables_are_refused_not_silently_changed(tmp_path):
    """Found by benchmarks/fuzz_data.py: extra cells, a stray word in a numeric column, infinite
    or float32-overflowing values, duplicate headers."""
    from rnnslim.tasks import make_task

    good = "a,b\n" + "".join(f"{i * 0.1:.1f},{i % 7}\n" for i in range(100))
    cases = {"extra cell": good.replace("0.5,5\n", "0.5,5,9\n"), "stray word": good.replace("0.5,5\n", "0.5,five\n"),
             "infinite": good.replace("0.5,5\n", "inf,5\n"), "overflow": good.replace("0.5,5\n", "1e300,5\n")}
    for name, text in cases.items():
        p = tmp_path / f"{name}.csv"
        p.write_text(text)
        with pytest.raises(ValueError, match=r"cells|not a number|too large"):
            next(iter(make_task("forecast", p).batches("train", batch_size=2, seq_len=4)))
    d = tmp_path / "cls"
    d.mkdir()
    (d / "D_TRAIN.csv").write_text("id,t,f0,f0,label\ns,0,1,2,a\n")
    (d / "D_TEST.csv").write_text("id,t,f0,f0,label\ns,0,1,2,a\n")
    with pytest.raises(ValueError, match="duplicate column"):
        make_task("classify", d)
