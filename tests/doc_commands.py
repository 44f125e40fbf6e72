"""Helpers for the tests that run the commands of a Markdown document as a user would
(tests/test_readme_commands.py: README.md; tests/docs/test_first_day.py: docs/first-day.md).

    fenced_blocks(text)       -> [(language, body), ...] in document order
    bash_commands(body)       -> the block's command lines, comments dropped, words joined by one space
    console_argv(words)       -> argv running words[0] as an activated venv would (the venv's console script)
    children_cpu_s()          -> CPU seconds used by finished child processes (where the time goes)
"""

from __future__ import annotations

import re
import resource
import shlex
import shutil
import sys
from pathlib import Path

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """Every fenced block of a Markdown text: (language after the fence, body), in order."""
    return [(m.group(1), m.group(2)) for m in _FENCE.finditer(text)]


def bash_commands(body: str) -> list[str]:
    """Each command line of a ```bash block, comments dropped, words joined by one space."""
    lines = []
    for line in body.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            lines.append(" ".join(words))
    return lines


def console_argv(words: list[str]) -> list[str]:
    """words with words[0] resolved as an activated venv finds it: the venv's console script
    (rnnslim, python) first, then PATH."""
    exe = Path(sys.executable).parent / words[0]
    return [str(exe) if exe.exists() else shutil.which(words[0]) or words[0], *words[1:]]


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
