"""Every command in README.md's ```bash blocks is run by this test, in README order, in a fresh
directory (issue 19): as written, with `../shared` pointing at the shared fixture and the user's
inputs (my.txt, recipe.yaml, r.yaml) written first. A command too slow for the test suite runs
with the fewest option values changed (PLAN says which and why), and the few that cannot run here
(installs, GPUs, minutes-long runs) are listed with the reason and the test that covers them.
A README command that PLAN does not list, or a PLAN entry the README no longer has, fails.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from doc_commands import bash_commands, children_cpu_s, console_argv, fenced_blocks

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SHARED_REL = "../shared"  # how the README names the shared models and data


def readme_commands(text: str) -> list[str]:
    """Each command line of the ```bash blocks, comments dropped, words joined by one space."""
    return [c for lang, body in fenced_blocks(text) if lang == "bash" for c in bash_commands(body)]


def readme_recipe(text: str) -> str:
    """The README's first recipe ("A recipe"): the first ```yaml block with `version:`."""
    return next(b for b in re.findall(r"^```yaml\n(.*?)^```", text, re.S | re.M) if b.startswith("version:"))


@dataclass(frozen=True)
class Run:
    """Run the command; `options`: option values changed for speed, `words`: README placeholders
    ("[KIND]") replaced (None: dropped); `why` says why anything differs from the README."""

    check: Callable[[subprocess.CompletedProcess, Path], None]  # asserts on its output and files
    options: dict[str, str] = field(default_factory=dict)
    words: dict[str, str | None] = field(default_factory=dict)
    append: tuple[str, ...] = ()
    why: str = ""
    needs: str | None = None  # a tool or module without which the command cannot run here


@dataclass(frozen=True)
class Skip:
    why: str


def _last_json(proc) -> dict:
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- what each command must have produced (cwd: the directory the commands ran in) --------------
def eval_json(proc, cwd: Path) -> None:
    out = _last_json(proc)
    assert out["task"] == "charlm" and out["split"] == "test" and out["tokens"] == 5000
    assert 1.0 < out["loss_nats"] < 2.0  # a trained model (the file says 1.5061), not a golden value


def measure_json(proc, cwd: Path) -> None:
    out = _last_json(proc)
    assert out["model"]["size"]["parameters"] > 4_000_000 and out["model"]["macs"]["dense"] > 0
    assert out["quality_note"] and "--data" in out["quality_note"] and "quality left out" in proc.stderr
    ok = {v["kind"] for v in out["variants"] if v["status"] == "ok"}
    assert {"model", "torch_default"} <= ok, [(v["kind"], v["status"]) for v in out["variants"]]


def train(proc, cwd: Path) -> None:
    assert (cwd / "runs/lm/model/model.json").is_file(), proc.stderr[-2000:]


def compress(proc, cwd: Path) -> None:
    out = cwd / "runs/lm-small"
    assert (out / "report.md").is_file() and (out / "report.html").is_file() and (out / "model/model.json").is_file()


def report_html(proc, cwd: Path) -> None:
    page = cwd / "runs/lm-small/report.html"
    assert str(page) in proc.stdout or "report.html" in proc.stdout
    assert page.read_text().lstrip().lower().startswith("<!doctype html")


def export_c(proc, cwd: Path) -> None:
    out = cwd / proc.args[proc.args.index("--out") + 1]
    assert any(out.glob("*.h")) and any(out.glob("*.c")) and (out / "model.json").is_file()
    if "--build" in proc.args:
        assert any(out.glob("lib*.so"))


def export_onnx(proc, cwd: Path) -> None:
    assert (cwd / "step.onnx").stat().st_size > 1000


def stages(proc, cwd: Path) -> None:
    assert "lr" in proc.stdout and "max_steps" in proc.stdout  # the finetune stage's fields


def recipes(proc, cwd: Path) -> None:
    assert "deploy-int8" in proc.stdout and "charlstm-512x2" in proc.stdout


def version(proc, cwd: Path) -> None:
    assert re.fullmatch(r"rnnslim \S+", proc.stdout.strip())


RECIPE_STEPS = {"round_to: 8\n": "round_to: 8\n    refit_batches: 2\n", "max_steps: 2000": "max_steps: 4",
                "calibration_batches: 8": "calibration_batches: 2"}  # the README recipe, shortened
PLAN: dict[str, Run | Skip] = {
    "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && pip install -e .[demo] && "
    "rnnslim demo": Skip("installs packages; `rnnslim demo --quick` runs in tests/test_cli.py::test_demo_quick"),
    "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && pip install -e .[dev] && "
    "python -m pytest": Skip("installs packages and runs this very suite"),
    "rnnslim eval ../shared/models/charlstm-512x2.json --data ../shared/data/tinyshakespeare.txt --split test --json":
        Run(eval_json, append=("--max-steps", "5000"), why="the whole test split (55,000 steps of a 512x2 LSTM) "
            "takes a minute on a busy 2-core machine"),
    "rnnslim measure ../shared/models/charlstm-512x2.json --json":
        Run(measure_json, append=("--quick", "--threads", "1"),
            why="full timing of 12 variant rows of a 4.3 M-parameter model takes minutes; --quick and one thread "
                "count change only how long and how often it times, the path that failed (no corpus) is the same"),
    "rnnslim train --task charlm --data my.txt --hidden 256 --layers 2 --max-steps 2000 --out runs/lm":
        Run(train, options={"--hidden": "24", "--max-steps": "12"}, why="2000 steps of a 256x2 LSTM take minutes"),
    "rnnslim compress runs/lm --recipe recipe.yaml --out runs/lm-small":
        Run(compress, why="recipe.yaml is the README's recipe with fewer steps and batches (RECIPE_STEPS)"),
    "rnnslim report runs/lm-small --html [--measurement measure.json]":
        Run(report_html, words={"[--measurement": None, "measure.json]": None},
            why="the bracketed option is optional; tests/report/test_report_html.py runs it"),
    "rnnslim export runs/lm-small --format c --out kws_c --build": Run(export_c, needs="cc"),
    "rnnslim search runs/lm --data my.txt --budget bytes=1/20,loss=+2% --out runs/search":
        Skip("an Optuna study of whole compress runs (an hour on the reference model); tests/search/ runs "
             "`rnnslim search` on a tiny model"),
    "rnnslim stages [KIND]": Run(stages, words={"[KIND]": "finetune"}, why="KIND is a placeholder"),
    "rnnslim recipes": Run(recipes),
    "rnnslim --version": Run(version),
    "rnnslim demo": Skip("trains and compresses for minutes; tests/test_cli.py::test_demo_quick runs `demo --quick`"),
    "torchrun --standalone --nproc_per_node 2 -m rnnslim.cli train --data my.txt --batch-size 64 --out runs/lm":
        Skip("two processes under torchrun: tests/train/test_ddp.py::test_two_processes_match_one_and_only_rank0_"
             "writes runs train and compress that way (and checks them against one process)"),
    "torchrun --standalone --nproc_per_node 4 -m rnnslim.cli compress runs/lm --recipe r.yaml --out runs/small "
    "--device cuda": Skip("needs 4 CUDA devices"),
    "rnnslim train --data my.txt --out runs/lm --device cuda:1": Skip("needs 2 CUDA devices"),
    "rnnslim measure runs/lm --device cuda": Skip("needs a CUDA device (tests/measure/test_measure_cuda.py)"),
    "rnnslim export runs/lm-small --format c --out lm_c": Run(export_c, needs="cc"),
    "rnnslim import model.keras -o runs/imported":
        Skip("needs a Keras model file; tests/interop/test_save.py runs `rnnslim import` on an .onnx file, tests/interop/test_keras.py imports .keras and .h5"),
    "rnnslim export runs/lm-small/stages/02-finetune/model --format c-fp32 --out ref_c": Run(export_c, needs="cc"),
    "rnnslim export runs/lm-small/stages/02-finetune/model --format onnx --out step.onnx":
        Run(export_onnx, needs="onnxruntime"),
}


def test_every_readme_command_is_planned():
    commands = readme_commands(README.read_text())
    assert len(commands) >= 15  # the parser found the blocks
    assert [c for c in commands if c not in PLAN] == [], "new README commands: add them to PLAN (run or skip, why)"
    assert [c for c in PLAN if c not in commands] == [], "PLAN lists commands the README no longer has"
    for command, plan in PLAN.items():
        if isinstance(plan, Run):
            words = command.split()
            assert all(o in words for o in plan.options) and all(w in words for w in plan.words), command
            assert plan.why or not (plan.options or plan.words or plan.append), f"{command}: say why it differs"


def _argv(command: str, plan: Run, shared: Path) -> list[str]:
    words = [w.replace(SHARED_REL, str(shared), 1) if w.startswith(SHARED_REL) else w for w in command.split()]
    words = [plan.words.get(w, w) for w in words]
    words = [w for w in words if w is not None]
    for option, value in plan.options.items():
        words[words.index(option) + 1] = value
    return console_argv([*words, *plan.append])


def _available(need: str | None) -> bool:
    return need is None or bool(shutil.which(need) or importlib.util.find_spec(need))


def test_readme_commands_run(tmp_path, shared_dir, shakespeare):
    text = README.read_text()
    (tmp_path / "my.txt").write_text(shakespeare.read_text()[:20_000])  # the user's own text
    recipe = readme_recipe(text)
    for a, b in RECIPE_STEPS.items():
        assert a in recipe
        recipe = recipe.replace(a, b)
    (tmp_path / "recipe.yaml").write_text(recipe)
    ran = []
    for command in readme_commands(text):
        plan = PLAN[command]
        if isinstance(plan, Skip) or not _available(plan.needs):
            continue
        argv = _argv(command, plan, shared_dir)
        t0, cpu0 = time.perf_counter(), children_cpu_s()
        proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=600)  # hang guard
        # pytest -s shows where the time goes (CPU seconds: what it costs on an idle machine)
        print(f"{time.perf_counter() - t0:6.1f} s wall {children_cpu_s() - cpu0:6.1f} s CPU  {shlex.join(argv)}")
        assert proc.returncode == 0, f"{command}\n-> {shlex.join(argv)}\nexit {proc.returncode}\n{proc.stderr[-3000:]}"
        plan.check(proc, tmp_path)
        ran.append(command)
    assert len(ran) >= 10
