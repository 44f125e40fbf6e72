"""Word-level language modelling on PTB / WikiText style text files.

Data: a directory with three whitespace-tokenised text files, in one of these layouts:
    ptb.train.txt      ptb.valid.txt      ptb.test.txt       (Penn Treebank, Mikolov)
    wiki.train.tokens  wiki.valid.tokens  wiki.test.tokens   (WikiText-2 / -103)
    train.txt          valid.txt          test.txt
Tokens: every line is split on whitespace and `<eos>` is appended to it, blank lines
included (the convention of PyTorch's word_language_model example, which gives the
usual token counts, e.g. 82,430 for the PTB test split). `<unk>` is an ordinary token.

Vocabulary (from the train split only): `<eos>` (id 0), `<unk>` (id 1), then the train
words by descending count, ties in order of first appearance. Options: `min_count`
(train words seen fewer times become `<unk>`) and `max_vocab` (keep only the most
frequent). Words of any split outside the vocabulary map to `<unk>`. Policy `unk`:
"strict" (default) refuses valid/test words outside the vocabulary when the training
split contains no `<unk>` at all, because the model could never learn to predict them
and the perplexity would be meaningless (PTB and WikiText are already `<unk>`-ified,
raw text needs `min_count=2` or more); "map" maps them silently. With a model's own
vocabulary (from its task meta) that vocabulary is used as it is.

Training: truncated BPTT over `batch_size` parallel streams, state carried (like
charlm). Metric: mean cross-entropy in nats per word over the whole split as one
stream at batch 1, state carried from the first word to the last (inputs d[:-1],
targets d[1:]), evaluated in chunks; perplexity = exp(nats).
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterator
from enum import Enum
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from rnnslim.models.sequence import InputKind, SequenceModel
from rnnslim.tasks.base import SPLITS
from rnnslim.tasks.charlm import TokenStreamTask, stream_nll
from rnnslim.tasks.corpus import check_corpus_size
from rnnslim.tasks.vocab import vocab_problem

EOS, UNK = "<eos>", "<unk>"
LAYOUTS: tuple[tuple[str, str, str], ...] = (
    ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"),
    ("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"),
    ("train.txt", "valid.txt", "test.txt"),
)


class UnkPolicy(str, Enum):
    STRICT = "strict"  # error when valid/test words need an <unk> that train never contains
    MAP = "map"  # always map out-of-vocabulary words to <unk>


class WordLMConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    min_count: int = Field(default=1, ge=1, description="train words seen fewer times become <unk>")
    max_vocab: int | None = Field(default=None, ge=3, description="keep <eos>, <unk> and the most frequent words")
    unk: UnkPolicy = UnkPolicy.STRICT


def find_split_files(root: str | Path) -> dict[str, Path]:
    """{"train": path, "valid": path, "test": path} for the first complete layout in `root`."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"wordlm data directory not found: {root} (expected a directory holding "
                                f"{' / '.join(LAYOUTS[0])} or another layout in {LAYOUTS})")
    for names in LAYOUTS:
        paths = [root / n for n in names]
        if all(p.is_file() for p in paths):
            return dict(zip(SPLITS, paths))
        present = [p.name for p in paths if p.is_file()]
        if present:
            missing = [p.name for p in paths if not p.is_file()]
            raise FileNotFoundError(f"{root}: found {present} but {missing} is missing")
    raise FileNotFoundError(f"{root}: no word-LM split files; expected one of the layouts {list(LAYOUTS)}")


def iter_tokens(path: Path) -> Iterator[str]:
    """Whitespace tokens of every line followed by <eos> (blank lines give a lone <eos>)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield from line.split()
            yield EOS


def build_vocab(counts: Counter, min_count: int = 1, max_vocab: int | None = None) -> list[str]:
    """[<eos>, <unk>, words by descending count (ties: first appearance)]."""
    words = [w for w, c in counts.most_common() if c >= min_count and w not in (EOS, UNK)]
    if max_vocab is not None:
        words = words[: max_vocab - 2]
    return [EOS, UNK, *words]


def encode(path: Path, index: dict[str, int]) -> tuple[Tensor, Counter]:
    """Token ids (N,) of a file and the counts of its words outside `index` (mapped to <unk>)."""
    unk_id = index.get(UNK, -1)
    ids, oov = array("q"), Counter()
    for w in iter_tokens(path):
        i = index.get(w)
        if i is None:
            oov[w] += 1
            i = unk_id
        ids.append(i)
    return torch.tensor(ids, dtype=torch.long), oov


class WordLMTask(TokenStreamTask):
    name = "wordlm"
    stateful = True
    primary_metric = "loss_nats"
    higher_is_better = False

    def __init__(self, path: str | Path, vocab: list[str] | None = None, **options) -> None:
        self.config = WordLMConfig(**options)
        self.files = find_split_files(path)
        for f in self.files.values():
            check_corpus_size(f, hint="")  # refused from its size, before reading
        self.root = Path(path)
        if vocab is None:
            counts = Counter(iter_tokens(self.files["train"]))
            if len(counts) <= 1:
                raise ValueError(f"{self.files['train']}: the training split holds no words")
            self.vocab = build_vocab(counts, self.config.min_count, self.config.max_vocab)
            train_has_unk = counts[UNK] > 0  # or rare words dropped by min_count/max_vocab (checked below)
        else:
            self.vocab = list(vocab)
            if EOS not in self.vocab:
                raise ValueError(f"the model's vocabulary ({len(self.vocab)} words) has no {EOS} token; "
                                 "it was not trained on this task's data layout")
            train_has_unk = True  # the model's own vocabulary: trust how it was trained
        problem = vocab_problem(self.name, self.vocab)
        if problem:
            raise ValueError(f"the vocabulary {problem}")
        index = {w: i for i, w in enumerate(self.vocab)}
        self.ids: dict[str, Tensor] = {}
        self.unk_counts: dict[str, int] = {}  # tokens per split mapped to <unk> (literal <unk> excluded)
        for split, f in self.files.items():
            ids, oov = encode(f, index)
            if len(ids) < 3:
                raise ValueError(f"{f}: split {split!r} is too short ({len(ids)} tokens)")
            n_oov = sum(oov.values())
            if n_oov and UNK not in index:
                raise ValueError(f"{f}: {n_oov} tokens (e.g. {list(oov)[:5]}) are outside the model's vocabulary, "
                                 f"which has no {UNK} token to map them to")
            if n_oov and split != "train" and not train_has_unk and self.config.unk is UnkPolicy.STRICT:
                raise ValueError(f"{f}: {n_oov} tokens (e.g. {list(oov)[:5]}) never occur in the training split, "
                                 f"which has no {UNK} token, so the model could not learn to predict them. "
                                 f"Pass min_count=2 (rare training words become {UNK}), or unk='map' to map "
                                 f"them to an untrained {UNK}")
            self.ids[split] = ids
            self.unk_counts[split] = n_oov
            train_has_unk = train_has_unk or n_oov > 0  # splits run train first: rare train words became <unk>

    @classmethod
    def from_data(cls, data: str | Path | None = None, meta: dict | None = None, **options) -> WordLMTask:
        """Uniform factory entry (rnnslim.tasks.make_task); a model's meta supplies the vocabulary."""
        if data is None:
            raise ValueError(f"the wordlm task needs a data directory with train/valid/test files "
                             f"(one of the layouts {list(LAYOUTS)})")
        meta = meta or {}
        merged = {**meta.get("config", {}), **options}
        return cls(data, vocab=meta.get("vocab"), **merged)

    def meta(self) -> dict:
        return {"task": self.name, "vocab": self.vocab, "corpus": str(self.root),
                "config": self.config.model_dump(mode="json")}

    def split(self, split: str) -> Tensor:
        self.check_split(split)
        return self.ids[split]

    def check_model(self, model: SequenceModel) -> None:
        spec = model.spec
        V = len(self.vocab)
        if spec.input_kind is not InputKind.EMBEDDING or spec.input_size != V or spec.output_size != V:
            raise ValueError(f"model reads {spec.input_size} {spec.input_kind.value} inputs and predicts "
                             f"{spec.output_size} symbols, but the task vocabulary has {V} words; build the task "
                             f"from the model (rnnslim.tasks.task_for_model)")
        theirs = (getattr(model, "task_meta", None) or {}).get("vocab")
        if theirs is not None and list(theirs) != self.vocab:
            raise ValueError("the model was trained with a different vocabulary (same size, other words or order); "
                             "build the task from the model (rnnslim.tasks.task_for_model)")

    @torch.no_grad()
    def evaluate(self, model, split="valid", max_steps=None, chunk: int = 2048) -> dict:
        """Stream NLL at batch 1 over the split (or its first max_steps predictions)."""
        self.check_model(model)
        d = self.split(split)
        if max_steps:
            d = d[: max_steps + 1]
        r = stream_nll(model, d, chunk, desc=f"evaluate {split}")
        nats = r["loss_nats"]
        try:
            ppl = math.exp(nats)
        except OverflowError:
            ppl = math.inf
        return {"loss": nats, "loss_nats": nats, "perplexity": ppl, "bits_per_word": nats / math.log(2),
                "tokens": r["tokens"]}
