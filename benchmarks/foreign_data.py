"""Data and brief user-style training for benchmarks/your_model_to_device.py.

Real data only, nothing downloaded:
- Tiny Shakespeare words (../shared/data/tinyshakespeare.txt): each non-blank line split on
  whitespace + "<eos>", split by token position 90 / 5 / 5 %, vocabulary = the 2000 most
  frequent training words + "<unk>" (the PyTorch examples' data.py, with a capped vocabulary);
- Tiny Shakespeare characters with the whitespace removed, tag 1 on the last character of
  each word (word-boundary tagging), split by position 90 / 5 / 5 %;
- aeon's JapaneseVowels (12 LPC cepstra per frame, 9 speakers, 7-29 frames) and BasicMotions
  (6 motion channels x 100 steps, 4 classes), the TRAIN / TEST files aeon ships, each channel
  standardised with the training mean / std, sequences front-padded with zeros to the
  longest (the last step is every sequence's own last frame).

Training is the loop a user writes (Adam, cross-entropy, fixed seed); trained weights are
cached as safetensors under benchmarks/runs/your_model_to_device/ (gitignored) so reruns
skip it. Each `train_*` returns (model in eval mode, record of steps / seconds / cached).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from torch import nn
from torch.nn import functional as F

from common import DATA, RUNS  # noqa: E402  (benchmarks/ is on sys.path: the caller put it there)

CACHE = RUNS / "your_model_to_device"
SPLITS = (0.9, 0.95)


# --- data ---------------------------------------------------------------------------------------
@dataclass
class WordCorpus:
    words: list[str]  # id -> word; the last is "<unk>"
    train: torch.Tensor  # (N,) int64 ids
    valid: torch.Tensor
    test: torch.Tensor


def _by_position(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n1, n2 = int(SPLITS[0] * len(ids)), int(SPLITS[1] * len(ids))
    return ids[:n1], ids[n1:n2], ids[n2:]


def word_corpus(path: Path = DATA, max_vocab: int = 2000) -> WordCorpus:
    tokens = [w for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
              for w in line.split() + ["<eos>"]]
    n1 = int(SPLITS[0] * len(tokens))
    words = [w for w, _ in Counter(tokens[:n1]).most_common(max_vocab)] + ["<unk>"]
    index = {w: i for i, w in enumerate(words)}
    ids = torch.tensor([index.get(w, len(words) - 1) for w in tokens], dtype=torch.int64)
    return WordCorpus(words, *_by_position(ids))


@dataclass
class TagCorpus:
    chars: list[str]
    x: dict[str, torch.Tensor]  # split -> (N,) char ids
    tags: dict[str, torch.Tensor]  # split -> (N,) 1 where a word ends


def boundary_corpus(path: Path = DATA) -> TagCorpus:
    words = path.read_text(encoding="utf-8").split()
    text = "".join(words)
    tags = np.zeros(len(text), dtype=np.int64)
    tags[np.cumsum([len(w) for w in words]) - 1] = 1
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    x = torch.tensor([index[c] for c in text], dtype=torch.int64)
    xs, ts = _by_position(x), _by_position(torch.from_numpy(tags))
    names = ("train", "valid", "test")
    return TagCorpus(chars, dict(zip(names, xs)), dict(zip(names, ts)))


@dataclass
class SeriesSet:
    name: str
    classes: list[str]
    x_train: torch.Tensor  # (N, T, C) float32, batch_first, front-padded
    y_train: torch.Tensor  # (N,) int64
    x_test: torch.Tensor
    y_test: torch.Tensor


def aeon_set(name: str) -> SeriesSet:
    from aeon.datasets import load_from_ts_file

    from rnnslim.tasks.named_data import resolve_named

    root = resolve_named(name, "classify")
    (xtr, ytr), (xte, yte) = (load_from_ts_file(str(root / f"{root.name}_{s}.ts")) for s in ("TRAIN", "TEST"))
    tr = [np.asarray(a, dtype=np.float64).T for a in xtr]  # (T_i, C)
    te = [np.asarray(a, dtype=np.float64).T for a in xte]
    flat = np.concatenate(tr)
    mean, std = flat.mean(0), flat.std(0) + 1e-8
    t_max = max(len(a) for a in tr + te)

    def pad(seqs: list[np.ndarray]) -> torch.Tensor:
        out = np.zeros((len(seqs), t_max, flat.shape[1]), dtype=np.float32)
        for i, s in enumerate(seqs):
            out[i, t_max - len(s):] = (s - mean) / std
        return torch.from_numpy(out)

    classes = sorted(set(map(str, ytr)))
    label = {c: i for i, c in enumerate(classes)}
    ys = [torch.tensor([label[str(v)] for v in y]) for y in (ytr, yte)]
    return SeriesSet(name, classes, pad(tr), ys[0], pad(te), ys[1])


# --- user-style training, cached ------------------------------------------------------------------
def _cached(key: str, model: nn.Module, train) -> tuple[nn.Module, dict]:
    """Load `key`'s weights when cached, else run `train(model) -> record` and cache them."""
    weights, record = CACHE / f"{key}.safetensors", CACHE / f"{key}.json"
    if weights.is_file() and record.is_file():
        load_model(model, str(weights))
        return model.eval(), {**json.loads(record.read_text()), "cached": True}
    CACHE.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    info = train(model)
    info["seconds"] = round(time.perf_counter() - t0, 1)
    save_model(model, str(weights))
    record.write_text(json.dumps(info))
    return model.eval(), {**info, "cached": False}


def repackage_hidden(h):
    """Detach the hidden state from its history (PyTorch examples)."""
    return h.detach() if isinstance(h, torch.Tensor) else tuple(repackage_hidden(v) for v in h)


def train_word_lm(key: str, model: nn.Module, corpus: WordCorpus, steps: int = 400, bsz: int = 32,
                  bptt: int = 35, lr: float = 3e-3) -> tuple[nn.Module, dict]:
    def train(m: nn.Module) -> dict:
        torch.manual_seed(0)
        n = corpus.train.numel() // bsz
        data = corpus.train[: n * bsz].view(bsz, n).t().contiguous()  # (n, bsz): batchify
        opt = torch.optim.Adam(m.parameters(), lr=lr)
        m.train()
        hidden, i, losses = m.init_hidden(bsz), 0, []
        for _ in range(steps):
            if i + bptt + 1 > n:
                hidden, i = m.init_hidden(bsz), 0
            x, y = data[i: i + bptt], data[i + 1: i + 1 + bptt].reshape(-1)
            hidden = repackage_hidden(hidden)
            out, hidden = m(x, hidden)
            loss = F.nll_loss(out, y)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(m.parameters(), 0.25)
            opt.step()
            losses.append(loss.item())
            i += bptt
        return {"steps": steps, "batch": f"{bsz} x {bptt} words", "optimizer": f"Adam lr {lr}, clip 0.25",
                "final_train_loss": round(float(np.mean(losses[-20:])), 4)}

    return _cached(key, model, train)


def train_classifier(key: str, model: nn.Module, data: SeriesSet, epochs: int, bsz: int = 32,
                     lr: float = 3e-3) -> tuple[nn.Module, dict]:
    def train(m: nn.Module) -> dict:
        g = torch.Generator().manual_seed(0)
        torch.manual_seed(0)
        opt = torch.optim.Adam(m.parameters(), lr=lr)
        m.train()
        n = len(data.y_train)
        for _ in range(epochs):
            for idx in torch.randperm(n, generator=g).split(bsz):
                loss = F.cross_entropy(m(data.x_train[idx]), data.y_train[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        return {"epochs": epochs, "batch": bsz, "optimizer": f"Adam lr {lr}",
                "final_train_loss": round(loss.item(), 4)}

    return _cached(key, model, train)


def train_tagger(key: str, model: nn.Module, corpus: TagCorpus, steps: int = 300, bsz: int = 32, window: int = 64,
                 lr: float = 3e-3) -> tuple[nn.Module, dict]:
    def train(m: nn.Module) -> dict:
        g = torch.Generator().manual_seed(0)
        torch.manual_seed(0)
        x, t = corpus.x["train"], corpus.tags["train"]
        opt = torch.optim.Adam(m.parameters(), lr=lr)
        m.train()
        for _ in range(steps):
            start = torch.randint(0, len(x) - window, (bsz,), generator=g)
            idx = start[:, None] + torch.arange(window)  # (bsz, window)
            out = m(x[idx])
            loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), t[idx].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
        return {"steps": steps, "batch": f"{bsz} windows x {window} characters", "optimizer": f"Adam lr {lr}",
                "final_train_loss": round(loss.item(), 4)}

    return _cached(key, model, train)


def windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """(N,) -> (N // window, window): non-overlapping windows (the tail is dropped)."""
    n = x.numel() // window
    return x[: n * window].view(n, window)
