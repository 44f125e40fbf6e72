"""Character-level language modelling on any UTF-8 text.

Split (BENCHMARKING.md): one file is cut by character position into train [0, 0.9),
valid [0.9, 0.95), test [0.95, 1.0). Vocabulary: the sorted set of all characters of the
whole text, unless a model's vocabulary is given. Metric: mean cross-entropy in nats per
character over the split as one stream at batch 1, state carried from the first
character to the last (inputs d[:-1], targets d[1:]), and bits per character.

Default corpus (no data file): the Python standard library's own source, which every
machine with Python has.

Memory: a file is read in pieces (rnnslim.tasks.corpus); what stays is its ids, 8 bytes per
character. A file larger than 512 MiB is refused from its size before reading (set
RNNSLIM_MAX_CORPUS_BYTES for another limit, or pass max_chars to read only its start).
"""

from __future__ import annotations

import logging
import math
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor
from torch.nn import functional as F

from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.tasks import corpus as text_corpus
from rnnslim.tasks.base import Batch, Task
from rnnslim.tasks.extensions import stream_runner
from rnnslim.tasks.vocab import vocab_problem
from rnnslim.utils.hashing import file_sha256
from rnnslim.utils.progress import track
from rnnslim.utils.threads import torch_threads

DEFAULT_CORPUS_CHARS = 1_200_000


def stdlib_corpus(max_chars: int = DEFAULT_CORPUS_CHARS) -> str:
    """Concatenated Python standard library sources, in sorted path order, ASCII only.

    Non-ASCII characters are dropped so the vocabulary stays small (~100 symbols) and is
    the same on every machine of the same Python version.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.glob("*.py") if p.is_file())
    chunks, total = [], 0
    for p in files:
        try:
            text = p.read_text(encoding="utf-8", errors="ignore")
        except OSError:
            continue
        text = text.encode("ascii", errors="ignore").decode("ascii")
        chunks.append(text)
        total += len(text)
        if total >= max_chars:
            break
    if not chunks:
        raise RuntimeError(f"no Python sources found under {root} for the default corpus")
    return "".join(chunks)[:max_chars]


def split_bounds(n: int) -> dict[str, tuple[int, int]]:
    n1, n2 = int(0.9 * n), int(0.95 * n)
    return {"train": (0, n1), "valid": (n1, n2), "test": (n2, n)}


class TokenStreamTask(Task):
    """Shared by language-model tasks over one token stream per split (charlm, wordlm):
    embedding -> recurrent stack -> vocabulary logits, truncated BPTT, cross-entropy."""

    vocab: list

    def model_spec(self, cell="lstm", hidden_size=128, num_layers=2, dropout=0.0, embed_size=None,
                   tie_weights=False) -> ModelSpec:
        V = len(self.vocab)
        return ModelSpec(cell=cell, input_kind=InputKind.EMBEDDING, input_size=V, embed_size=embed_size or hidden_size,
                         layers=[LayerShape(hidden_size=hidden_size)] * num_layers, output_size=V, dropout=dropout,
                         tie_weights=tie_weights)

    def batches(self, split, batch_size, seq_len, shuffle=False, generator=None) -> Iterator[Batch]:
        """Contiguous streams for truncated BPTT: inputs (seq_len, B) ids, targets shifted by one."""
        return stream_batches(self.split(split), batch_size, seq_len, shuffle, generator, split)

    def loss(self, outputs: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]).float(), batch.targets.reshape(-1))



class CharLMTask(TokenStreamTask):
    name = "charlm"
    stateful = True
    primary_metric = "loss_nats"

    def __init__(self, path: str | Path | None = None, vocab: list[str] | None = None, text: str | None = None,
                 max_chars: int | None = None) -> None:
        """The corpus is read with bounded memory (rnnslim.tasks.corpus): a file larger than
        max_corpus_bytes() is refused from its size unless only its first max_chars are read."""
        max_chars = max_chars or None
        newlines = text_corpus.Newlines()  # CRLF / CR -> LF in a file's text; says whether it changed any
        if text is None and path is not None:
            p = Path(path)
            if not p.is_file():
                raise FileNotFoundError(f"text file not found: {path}")
            if max_chars is None:
                text_corpus.check_corpus_size(p)  # refused from its size, before reading
            self.source, self.corpus_sha256 = str(p), file_sha256(p)

            def pieces(newlines: text_corpus.Newlines | None = None):
                return text_corpus.file_pieces(p, newlines or text_corpus.Newlines(), max_chars)
        else:
            if text is None:
                text, self.source = stdlib_corpus(max_chars or DEFAULT_CORPUS_CHARS), "python-stdlib"
            else:
                self.source = "text"

            def pieces(newlines: text_corpus.Newlines | None = None):
                return text_corpus.text_pieces(text, max_chars)
        found = text_corpus.scan(pieces(newlines))  # pass 1: how many characters, which ones
        if newlines.changed:  # the universal-newline translation read_text does, said out loud
            logging.getLogger("rnnslim").warning("%s: CRLF/CR line endings were read as \\n (the model sees \\n "
                                                 "only)", self.source)
        if found.chars < 100:
            raise ValueError(f"corpus is too short ({found.chars} characters)")
        if len(found.symbols) < 2:
            raise ValueError(f"{self.source}: the corpus has fewer than 2 distinct characters "
                             f"({found.symbols!r}); there is nothing to learn")
        self.vocab = list(vocab) if vocab is not None else found.symbols
        problem = vocab_problem(self.name, self.vocab)
        if problem:
            raise ValueError(f"the vocabulary {problem}")
        index = {c: i for i, c in enumerate(self.vocab)}
        unknown = sorted(set(found.symbols) - index.keys())
        if unknown:
            raise ValueError(f"{self.source}: the text has {len(unknown)} characters outside the model's vocabulary: "
                             f"{''.join(unknown[:20])!r} (is this the corpus the model was trained on?)")
        self.ids = text_corpus.encode(pieces(), index, found.chars)  # pass 2: the ids, one (N,) int64 tensor
        self.bounds = split_bounds(len(self.ids))

    @classmethod
    def for_model(cls, model: SequenceModel, path: str | Path | None = None, **kw) -> CharLMTask:
        vocab = (getattr(model, "task_meta", {}) or {}).get("vocab")
        return cls(path, vocab=vocab, **kw)

    @classmethod
    def from_data(cls, data: str | Path | None = None, meta: dict | None = None, **options) -> CharLMTask:
        """Uniform factory entry (rnnslim.tasks.make_task): data is a text file or None for the
        Python-stdlib corpus; a model's task meta supplies the vocabulary."""
        unknown = sorted(set(options) - {"max_chars", "text"})
        if unknown:
            raise ValueError(f"unknown charlm options {unknown}; it accepts max_chars and text")
        meta = meta or {}
        if data is None and "text" not in options:
            data = remembered_corpus(meta)
        return cls(data, vocab=meta.get("vocab"), **options)

    def meta(self) -> dict:
        out = {"task": self.name, "vocab": self.vocab, "corpus": self.source}
        if getattr(self, "corpus_sha256", None):  # a file: its absolute path and hash, so later runs find it
            out["corpus"], out["corpus_sha256"] = str(Path(self.source).resolve()), self.corpus_sha256
        return out

    def split(self, split: str) -> Tensor:
        self.check_split(split)
        a, b = self.bounds[split]
        return self.ids[a:b]

    def check_model(self, model: SequenceModel) -> None:
        if model.spec.output_size != len(self.vocab):
            raise ValueError(f"model predicts {model.spec.output_size} symbols but the task vocabulary has "
                             f"{len(self.vocab)}; use the model's own vocabulary (CharLMTask.for_model)")

    @torch.no_grad()
    def evaluate(self, model, split="valid", max_steps=None, chunk: int = 4096) -> dict:
        self.check_model(model)
        d = self.split(split)
        if max_steps:
            d = d[: max_steps + 1]
        return stream_nll(model, d, chunk, desc=f"evaluate {split}")


def stream_batches(d: Tensor, batch_size: int, seq_len: int, shuffle: bool = False,
                   generator: torch.Generator | None = None, split: str = "train") -> Iterator[Batch]:
    """Truncated-BPTT batches over one token stream d (N,) (shared by charlm and wordlm).

    The stream is cut into `batch_size` parallel streams and walked in windows of
    `seq_len`, so state can be carried: inputs (T, B) and targets (T, B) shifted by one.
    With shuffle, the stream start is offset randomly (the order stays sequential).
    """
    if shuffle:
        off = int(torch.randint(0, seq_len, (1,), generator=generator))
        d = d[off:]
    n = (len(d) - 1) // batch_size
    if n < 2:
        raise ValueError(f"split {split!r} is too short for batch size {batch_size}")
    x = d[: n * batch_size].view(batch_size, n).t()  # (n, B)
    y = d[1 : n * batch_size + 1].view(batch_size, n).t()
    for t in range(0, n - 1, seq_len):
        yield Batch(x[t : t + seq_len], y[t : t + seq_len])


@torch.no_grad()
def remembered_corpus(meta: dict) -> str | None:
    """The text file a model was trained on (its task meta records the path and a hash), when
    it is still there unchanged: eval / measure / compress then need no --data. None for the
    built-in corpus; a clear error when the file moved or changed."""
    corpus = meta.get("corpus")
    if not corpus or corpus in ("python-stdlib", "text"):
        return None
    p = Path(corpus)
    if not p.is_file():
        raise FileNotFoundError(f"the model was trained on {corpus}, which is not there any more; give the corpus "
                                "with --data")
    want = meta.get("corpus_sha256")
    if want and file_sha256(p) != want:
        raise ValueError(f"{corpus} changed since the model was trained on it (sha256 differs); give the corpus "
                         "with --data")
    logging.getLogger("rnnslim").info("data: %s (the corpus the model was trained on)", corpus)
    return corpus


def stream_nll(model: torch.nn.Module, d: Tensor, chunk: int = 4096, desc: str = "evaluate") -> dict:
    """Mean NLL of d[1:] given d[:-1], batch 1, state carried across chunks. A fully integer
    model runs in the C kernel (a stream runner, rnnslim.tasks.extensions: the same integers, much faster).
    On a terminal a transient bar (rnnslim.utils.progress) counts the chunks."""
    was_training = model.training
    model.eval()
    device = next(iter([*model.parameters(), *model.buffers()])).device  # quantized models may hold buffers only
    state, total, count = None, 0.0, 0
    x_all, y_all = d[:-1], d[1:]
    runner = stream_runner(model) if device.type == "cpu" else None
    if runner is not None:  # integer model: the C kernel, same integers
        for t in track(range(0, len(x_all), chunk), desc=desc):
            logits, state = runner.run(x_all[t: t + chunk], state)
            total += F.cross_entropy(logits, y_all[t: t + chunk], reduction="sum").item()
            count += len(logits)
        model.train(was_training)
        nats = total / count
        return {"loss": nats, "loss_nats": nats, "bits_per_char": nats / math.log(2), "tokens": count}
    with torch_threads(1 if device.type == "cpu" else torch.get_num_threads()):
        for t in track(range(0, len(x_all), chunk), desc=desc):
            x = x_all[t : t + chunk].unsqueeze(1).to(device)  # (T, 1)
            y = y_all[t : t + chunk].to(device)
            logits, state = model(x, state)
            total += F.cross_entropy(logits[:, 0].float(), y, reduction="sum").item()
            count += len(y)
    model.train(was_training)
    nats = total / count
    return {"loss": nats, "loss_nats": nats, "bits_per_char": nats / math.log(2), "tokens": count}
