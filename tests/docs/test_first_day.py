"""docs/first-day.md, run end to end on a tiny corpus (issue 24, "What must show").

The document's fenced blocks, in order: every ```bash command runs in a fresh directory (my.txt:
the first 8,000 characters of tinyshakespeare, the user's own text), the ```c block and the
```python block are first written to the file their first comment names (generate.c,
generate.py), and the ```text block after a one-command ```bash block is what that command
printed. SHOWS lists, per command, the lines its output must have: each pattern must match the
document's ```text block AND the output of the run, so neither the tool nor the document can
drift. The C program and the Python runtime must print the same text (same integers).

Numbers too slow for the suite are changed by FASTER, a visible table of (pattern, replacement,
why); each pattern must match exactly one documented command. The built-in recipe is run from a
copy of itself with fewer fine-tune steps (SHORT_RECIPE); the name's resolution to the built-in
is checked apart. Without `cc` the C and runtime steps are skipped with that reason (after the
rest ran). `pytest -s` shows the wall and CPU seconds of each command.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from doc_commands import bash_commands, children_cpu_s, console_argv, fenced_blocks

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "first-day.md"
CORPUS_CHARS = 8_000  # a few KB of the user's text; holds every character of the prompt "ROMEO:"

# (pattern in the documented command, replacement, why)
FASTER = [
    (r"--max-steps 300\b", "--max-steps 8", "300 training steps take minutes"),
    (r"--recipe deploy-int8(?= )", "--recipe deploy-int8-short.yaml", "SHORT_RECIPE: fewer steps and batches"),
    (r"^(rnnslim measure \S+)$", r"\1 --quick --threads 1", "full timing at 1 and 2 threads takes minutes"),
]
SHORT_RECIPE = ("deploy-int8", {  # the built-in's name, {its text: the test's}: steps and batches only
    "max_steps: 2000": "max_steps: 4",
    "criterion: magnitude": "criterion: magnitude\n    refit_batches: 2",
    "gptq: true": "gptq: true\n    gptq_batches: 2\n    calibration_batches: 2"})

# a command's beginning -> patterns (re.M) its output has, in the document and when run
SHOWS = {
    "rnnslim train": [r"^trained \d+ steps; best valid loss_nats = \d+\.\d+ \(step \d+\); model: runs/lm/model$"],
    "rnnslim recipes": [r"^deploy-int8 ", r"^search-int3 ", r"Use one by name: rnnslim compress MODEL --recipe"],
    "rnnslim compress": [r"^\| input \| \d+\.\d+ \|", r"^\| 03-int8_integer \| \d+\.\d+ \| [-+]",
                         r"done: final model in runs/lm-small/model", r"^report: runs/lm-small/report\.md"],
    "rnnslim measure": [r"^baseline: the run's input model", r"^model +1 .*C kernel", r"^torch nn \(default\) +1 ",
                        r"^\w+: \d+(\.\d+)?x smaller, .* vs the best torch baseline"],
    "rnnslim export": [r"^wrote lm_c/lm_small\.\{c,h\} \+ rnnslim_core\.h: flash [\d,]+ bytes .* RAM [\d,]+ bytes",
                       r"bit-exact on 100 streams", r"lm_small_encode: text -> ids"],
    "./generate": [r"^ROMEO:"],
    "python generate.py": [r"^ROMEO:"],
}
# a command's beginning -> files it leaves (relative to the directory the commands run in)
FILES = {
    "rnnslim train": ["runs/lm/model/model.json", "runs/lm/model/model.safetensors"],
    "rnnslim compress": ["runs/lm-small/model/model.json", "runs/lm-small/report.md", "runs/lm-small/report.html",
                         "runs/lm-small/stages/02-finetune/model/model.json"],
    "rnnslim export": ["lm_c/lm_small.h", "lm_c/lm_small.c", "lm_c/lm_small_vocab.h", "lm_c/lm_small_vocab.c",
                       "lm_c/rnnslim_core.h", "lm_c/vocab.json", "lm_c/model.json"],
    "cc ": ["generate"],
}
NEEDS_CC = ("cc ", "./generate", "python generate.py")


def _key(command: str, table: dict) -> str | None:
    return next((k for k in table if command.startswith(k)), None)


def doc_steps(text: str) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """(commands in order, {file name: source} of the c/python blocks, {command: its shown output})."""
    commands, sources, shown = [], {}, {}
    blocks = fenced_blocks(text)
    for i, (lang, body) in enumerate(blocks):
        if lang == "bash":
            cmds = bash_commands(body)
            commands += cmds
            if i + 1 < len(blocks) and blocks[i + 1][0] == "text":
                assert len(cmds) == 1, f"a ```text block shows one command's output, not {cmds}"
                shown[cmds[0]] = blocks[i + 1][1]
        elif lang in ("c", "python"):
            name = re.match(r"(?:/\*|#) (\S+\.(?:c|py)):", body)
            assert name, f"a ```{lang} block starts with a comment naming its file: {body[:60]!r}"
            sources[name.group(1)] = body
    return commands, sources, shown


def faster(commands: list[str]) -> list[str]:
    out = list(commands)
    for pattern, replacement, why in FASTER:
        hits = [i for i, c in enumerate(out) if re.search(pattern, c)]
        assert len(hits) == 1, f"FASTER {pattern!r} ({why}) should match one documented command, matches {len(hits)}"
        out[hits[0]] = re.sub(pattern, replacement, out[hits[0]])
    return out


def short_recipe() -> str:
    from rnnslim.recipes import builtin_recipe_path

    name, changes = SHORT_RECIPE
    text = builtin_recipe_path(name).read_text(encoding="utf-8")
    for a, b in changes.items():
        assert a in text, f"the built-in {name} no longer has {a!r}: update SHORT_RECIPE"
        text = text.replace(a, b)
    return text


def test_the_document_has_every_step():
    commands, sources, shown = doc_steps(DOC.read_text(encoding="utf-8"))
    starts = [_key(c, SHOWS) or _key(c, FILES) for c in commands]
    for step in ["rnnslim train", "rnnslim compress", "rnnslim measure", "rnnslim export", "cc ", "./generate",
                 "python generate.py"]:
        assert step in starts, f"docs/first-day.md lost the step {step!r}"
    assert starts.index("rnnslim train") < starts.index("rnnslim compress") < starts.index("rnnslim measure") \
        < starts.index("rnnslim export") < starts.index("./generate") < starts.index("python generate.py")
    assert set(sources) == {"generate.c", "generate.py"}
    assert "--recipe deploy-int8" in " ".join(commands), "compress by a built-in recipe's name"
    for key in SHOWS:  # every command whose output is checked shows it in the document
        assert any(c.startswith(key) for c in shown), f"docs/first-day.md shows no output of {key!r}"
    faster(commands)  # every FASTER pattern still finds its command


def test_the_recipe_name_is_the_builtin_the_test_shortens(tmp_path):
    from rnnslim.pipeline.recipe import find_recipe, load_recipe
    from rnnslim.recipes import builtin_recipe_path

    assert find_recipe("deploy-int8") == builtin_recipe_path("deploy-int8")
    path = tmp_path / "deploy-int8-short.yaml"
    path.write_text(short_recipe(), encoding="utf-8")
    full, short = load_recipe("deploy-int8"), load_recipe(path)
    kinds = ["prune_units", "finetune", "int8_integer"]
    assert [s.kind for s in short.stages] == [s.kind for s in full.stages] == kinds
    same = ("ratio", "round_to", "refit", "reduce")  # the same cut (refit auto resolves to false: a fine-tune follows)
    assert [getattr(short.stages[0], f) for f in same] == [getattr(full.stages[0], f) for f in same] == [0.25, 16, False,
                                                                                                      "l2"]
    assert short.stages[1].max_steps == 4 and short.stages[2].gptq == full.stages[2].gptq is True  # fewer steps


def _check_output(command: str, output: str, shown: str | None) -> None:
    for pattern in SHOWS.get(_key(command, SHOWS), []):
        assert shown is not None and re.search(pattern, shown, re.M), f"docs/first-day.md: {command}: shown " \
            f"output lacks {pattern!r}"
        assert re.search(pattern, output, re.M), f"{command}: output lacks {pattern!r} (the document shows it)\n" \
            f"{output[-3000:]}"


@pytest.mark.slow  # eight commands: 27 s (27 s CPU) on the 2-core dev machine at load 2
def test_first_day_runs_end_to_end(tmp_path, shakespeare):
    commands, sources, shown = doc_steps(DOC.read_text(encoding="utf-8"))
    (tmp_path / "my.txt").write_text(shakespeare.read_text(encoding="utf-8")[:CORPUS_CHARS], encoding="utf-8")
    (tmp_path / "deploy-int8-short.yaml").write_text(short_recipe(), encoding="utf-8")
    for name, source in sources.items():
        (tmp_path / name).write_text(source, encoding="utf-8")
    skipped, printed = [], {}
    for command, run in zip(commands, faster(commands)):
        if command.startswith(NEEDS_CC) and not shutil.which("cc"):
            skipped.append(command)
            continue
        argv = console_argv(shlex.split(run))
        t0, cpu0 = time.perf_counter(), children_cpu_s()
        proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=600)  # hang guard
        print(f"{time.perf_counter() - t0:6.1f} s wall {children_cpu_s() - cpu0:6.1f} s CPU  {run}")
        assert proc.returncode == 0, f"{command}\n-> {run}\nexit {proc.returncode}\n{proc.stderr[-3000:]}"
        _check_output(command, proc.stdout + proc.stderr, shown.get(command))
        for f in FILES.get(_key(command, FILES), []):
            assert (tmp_path / f).is_file(), f"{command}: {f} is missing"
        printed[command.split()[0]] = proc.stdout
    if skipped:
        pytest.skip(f"no C compiler (cc): did not run {skipped}")
    # the C program and the Python runtime run the same integers: the same greedy text
    assert printed["./generate"] == printed["python"] and len(printed["python"]) > 200
