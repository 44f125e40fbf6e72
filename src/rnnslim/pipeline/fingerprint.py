"""Hashes that decide what a resumed pipeline may reuse, and JSON-safe conversion.

input hash  = sha256(model architecture + every tensor's bytes + task identity + seed)
stage hash  = sha256(stage kind + config + previous hash)   (a chain: editing stage k
              changes the hashes of k and of everything after it)
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch

from rnnslim.utils.jsonable import jsonable


def _tensor_bytes(t: torch.Tensor) -> bytes:
    # view as raw bytes: works for bf16 (numpy has no bf16) and integer storage alike
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def model_hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    spec = getattr(model, "spec", None)
    if spec is not None:
        h.update(spec.model_dump_json().encode())
    h.update(json.dumps(getattr(model, "tensor_encodings", {}) or {}, sort_keys=True, default=str).encode())
    for name, t in model.state_dict().items():
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(_tensor_bytes(t))
    return h.hexdigest()


def task_identity(task: Any) -> dict:
    """What identifies the data a task trains and evaluates on (its class and metadata)."""
    meta = task.meta() if hasattr(task, "meta") else {}
    ident = {"class": f"{type(task).__module__}.{type(task).__qualname__}", "meta": jsonable(meta)}
    ids = getattr(task, "ids", None)  # CharLMTask: the whole token stream
    if isinstance(ids, torch.Tensor):
        # the data itself identifies the corpus; its path spelling (relative/absolute) does not matter
        ident["data_sha256"] = hashlib.sha256(_tensor_bytes(ids)).hexdigest()
        ident["meta"].pop("corpus", None)
    return ident


def input_hash(model: torch.nn.Module, task: Any, seed: int) -> str:
    blob = json.dumps({"model": model_hash(model), "task": task_identity(task), "seed": seed}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def stage_hash(config: dict, prev_hash: str) -> str:
    blob = json.dumps({"config": config, "prev": prev_hash}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def config_hash(cfg, prev_hash: str) -> str:
    """A stage config's link of the chain: its kind and the fields not left at their defaults, so
    an optional field added by a later rnnslim does not invalidate finished stages. A field whose
    default changed since (the config's hash_legacy_defaults) is left out only at its OLD default,
    so a stage finished under the old default is never reused for the new one."""
    return stage_hash({"kind": cfg.kind, **hashed_fields(cfg)}, prev_hash)


def hashed_fields(cfg) -> dict:
    fields = cfg.model_dump(mode="json", exclude_defaults=True)
    for name, old in getattr(type(cfg), "hash_legacy_defaults", {}).items():
        value = cfg.model_dump(mode="json", include={name})[name]
        if value == old:
            fields.pop(name, None)
        else:
            fields[name] = value
    return fields


def dict_hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(jsonable(data), sort_keys=True).encode()).hexdigest()


