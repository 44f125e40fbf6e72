"""Where a classifier's data came from, recorded in its task meta so that eval / measure /
compress need no --data later (the way char-LMs remember their corpus, charlm.remembered_corpus).

    meta["data_name"]    "BasicMotions" when trained with --data BasicMotions (a set aeon
                         ships): looked up by name again, so the model works in another
                         environment whose aeon lives elsewhere
    meta["data"]         the train file's absolute path (the test file: meta["test_data"])
    meta["data_sha256"]  {"train": ..., "test": ...}: a file changed since training is an error,
                         not a silent evaluation on other data
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from rnnslim.utils.hashing import file_sha256


def data_record(given: str | Path, train: Path, test: Path) -> dict:
    """The meta entries for data given as `given` (a name aeon ships, a folder or a file)."""
    from rnnslim.tasks.named_data import looks_like_name

    out = {"data": str(train.resolve()), "test_data": str(test.resolve()),
           "data_sha256": {"train": file_sha256(train), "test": file_sha256(test)}}
    if looks_like_name(given):
        out["data_name"] = train.parent.name  # aeon's spelling of the name (the lookup is case-insensitive)
    return out


def remembered_data(meta: dict, find_train_test: Callable[..., tuple[Path, Path]]) -> tuple[str, str | None] | None:
    """(data, test) the model was trained on, when still there unchanged; None when the meta
    records none (then the task asks for --data). A clear error when the files moved or changed.
    `find_train_test` is classify.find_train_test, passed in so this module does not import classify
    (which imports it)."""
    name, train = meta.get("data_name"), meta.get("data")
    if not name and not train:
        return None
    if name:
        found_train, found_test = find_train_test(name)  # the set aeon ships (raises when aeon lacks it)
        data, test = name, None
    else:
        # models saved before test_data was recorded: the train file's test sibling
        paths = [Path(train)] + ([Path(meta["test_data"])] if meta.get("test_data") else [])
        missing = next((p for p in paths if not p.is_file()), None)
        if missing is not None:
            raise FileNotFoundError(f"the model was trained on {train}, but {missing} is not there any more; "
                                    "give the data with --data")
        found_train, found_test = find_train_test(*paths)
        data, test = str(found_train), str(found_test)
    for split, path in (("train", found_train), ("test", found_test)):
        want = (meta.get("data_sha256") or {}).get(split)
        if want and file_sha256(path) != want:
            raise ValueError(f"{path} changed since the model was trained on it (sha256 differs); give the data "
                             "with --data")
    logging.getLogger("rnnslim").info("data: %s (the data set the model was trained on)", name or train)
    return data, test
