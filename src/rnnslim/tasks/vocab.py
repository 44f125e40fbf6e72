"""What a language model's vocabulary may hold, checked where a vocabulary comes in (a model
file's task meta, a task built with a given vocabulary) so a bad one is refused at load,
not discovered as wrong ids or a KeyError later.

    charlm   every entry is exactly one character (one Python code point): the task maps
             each character of the text to its entry, so "" or "ab" could never occur
    wordlm   every entry is a non-empty word without whitespace (the task splits lines on
             whitespace, so "a b" could never occur) of at most MAX_WORD_CHARS characters
    both     entries are strings and unique (a repeated entry gives two ids to one token)
"""

from __future__ import annotations

MAX_WORD_CHARS = 1024  # far beyond any PTB / WikiText token; a 100,000-character "word" is an error


def _show(v, limit: int = 40) -> str:
    text = repr(v)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _first_repeat(vocab: list[str]) -> str:
    seen: set[str] = set()
    for v in vocab:
        if v in seen:
            return v
        seen.add(v)
    raise ValueError("no entry repeats")


def vocab_problem(task: str | None, vocab) -> str | None:
    """Why `vocab` cannot be the vocabulary of task `task` (None: it can). Tasks other than
    charlm / wordlm only get the list-of-unique-strings check."""
    if not isinstance(vocab, list) or not vocab:
        return "must be a non-empty list of strings"
    bad = next((i for i, v in enumerate(vocab) if not isinstance(v, str)), None)  # an index: the entry may be None
    if bad is not None:
        return f"holds a non-string entry {_show(vocab[bad])}"
    if len(set(vocab)) != len(vocab):
        return f"holds the entry {_show(_first_repeat(vocab))} more than once"
    if task == "charlm":
        i = next((i for i, v in enumerate(vocab) if len(v) != 1), None)
        if i is not None:
            return (f"entry {i} is {_show(vocab[i])} ({len(vocab[i])} characters); a character model's "
                    "entries are single characters")
    elif task == "wordlm":
        i = next((i for i, v in enumerate(vocab) if v.split() != [v] or len(v) > MAX_WORD_CHARS), None)
        if i is not None:
            return (f"entry {i} is {_show(vocab[i])} ({len(vocab[i])} characters); a word model's entries are "
                    f"non-empty words without whitespace, at most {MAX_WORD_CHARS} characters")
    return None
