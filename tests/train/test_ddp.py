"""Training on several processes (rnnslim.train.ddp): two gloo processes under torchrun give
the model one process gives with the same global batch, `rnnslim train` / `compress` write
only from rank 0, and a run without a launcher is exactly what it was before DDP existed.

Tolerance of the 2-process vs 1-process comparison: for every tensor,
max |W_2proc - W_1proc| <= 1e-5 * max |W_1proc| after 24 AdamW steps (measured: 7.1e-7 on
the development machine; gradients are averaged over ranks, so only float summation order
differs). The two ranks hold bit-identical weights.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from rnnslim.cli import app
from rnnslim.io.format import load_model
from rnnslim.models.sequence import SequenceModel
from rnnslim.tasks.base import Batch
from rnnslim.tasks.charlm import CharLMTask
from rnnslim.train import TrainConfig, TrainHooks, TrainingDiverged, train
from rnnslim.train.ddp import check_batch_size, local_state, rank_seed, shard_batch, targets_batch_dim
from rnnslim.utils.distributed import Dist

TEXT = ("the quick brown fox jumps over the lazy dog. " * 40 + "pack my box with five dozen liquor jugs! " * 40)
REL_TOL = 1e-5
WORKER = Path(__file__).parent / "ddp_cli_worker.py"


def _train_args(out: Path, data: Path) -> list[str]:
    return ["train", "--out", str(out), "--data", str(data), "--hidden", "16", "--layers", "2", "--max-steps", "24",
            "--batch-size", "8", "--seq-len", "16", "--lr", "5e-3", "--seed", "1", "--json"]


def test_two_processes_match_one_and_only_rank0_writes(tmp_path):
    data = tmp_path / "t.txt"
    data.write_text(TEXT)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("version: 1\nname: ddp\nmeasure:\n  eval_max_steps: 300\nstages:\n"
                      "  - kind: finetune\n    max_steps: 4\n    batch_size: 8\n    seq_len: 16\n    eval_max_steps: 300\n"
                      "  - kind: prune\n    sparsity: 0.5\n")
    two = tmp_path / "two"
    env = {**os.environ, "RNNSLIM_DIST_TIMEOUT_S": "300", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER),
           *_train_args(two, data), "++", "compress", str(two / "model"), "--recipe", str(recipe), "--out",
           str(tmp_path / "c2"), "--data", str(data), "--json"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)  # hang guard
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(printed) == 2, proc.stdout  # one train + one compress summary: rank 1 printed nothing
    assert printed[0]["steps"] == 24 and printed[1]["final_model"].endswith("model")
    assert sorted(p.name for p in two.iterdir()) == ["checkpoints", "model"]
    assert (tmp_path / "c2" / "report.md").exists()

    torch.set_num_threads(1)  # the ranks ran with one thread each
    one = tmp_path / "one"
    r = CliRunner().invoke(app, _train_args(one, data))
    assert r.exit_code == 0, r.output
    a, b = (load_model(d / "checkpoints" / "last").state_dict() for d in (one, two))  # the last step's weights
    worst = 0.0
    for name, w in a.items():
        rel = ((b[name] - w).abs().max() / w.abs().max().clamp_min(1e-12)).item()
        worst = max(worst, rel)
    print(f"2 processes vs 1: max relative |dW| {worst:.2e} (tolerance {REL_TOL:.0e})")  # shown with pytest -s
    assert worst <= REL_TOL, f"max relative |dW| {worst:.2e} > {REL_TOL:.0e}"
    assert worst > 0 or torch.equal(a["decoder.weight"], b["decoder.weight"])  # a real comparison, not a no-op
    ha, hb = (json.loads((d / "checkpoints" / "history.json").read_text())["history"] for d in (one, two))
    assert [h["step"] for h in ha] == [h["step"] for h in hb] == [0, 24]
    assert hb[-1]["loss"] == pytest.approx(ha[-1]["loss"], rel=1e-5)


SMALL_RUN = TrainConfig(max_steps=14, batch_size=6, seq_len=12, lr=5e-3, eval_every=5, checkpoint_every=4, seed=2)


def _fresh(cell: str):
    task = CharLMTask(text=TEXT)
    torch.manual_seed(0)
    return task, SequenceModel(task.model_spec(cell=cell, hidden_size=16, num_layers=2, dropout=0.1))


def _detached(state):
    """A list of per-layer states (GRU: h, LSTM: (h, c)) cut from the graph, same nesting."""
    return state.detach() if isinstance(state, torch.Tensor) else type(state)(_detached(s) for s in state)


def _plain_loop(model, task, cfg: TrainConfig) -> list[float]:
    """The single-process algorithm train() had before DDP (f56533d), written out with nothing
    shared with rnnslim.train: seed, AdamW, cosine lr (no warm-up), clip at cfg.clip_grad, state
    carried between shuffled windows, validation loss at step 0, every eval_every steps and at the
    end. Returns the validation-loss history."""
    history = [task.evaluate(model, "valid")["loss"]]
    torch.manual_seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    model.train()
    step, state = 0, None
    gen = torch.Generator().manual_seed(cfg.seed * 1000)  # epoch 0: 14 steps fit in one epoch (asserted below)
    for batch in task.batches("train", cfg.batch_size, cfg.seq_len, shuffle=True, generator=gen):
        if step >= cfg.max_steps:
            break
        frac = step / cfg.max_steps
        for g in opt.param_groups:
            g["lr"] = cfg.lr * (0.5 * (1 + math.cos(math.pi * frac)) * 0.99 + 0.01)
        outputs, new_state = model(batch.inputs, state)
        loss = task.loss(outputs, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], cfg.clip_grad)
        opt.step()
        step += 1
        state = _detached(new_state)
        if step % cfg.eval_every == 0 or step == cfg.max_steps:
            history.append(task.evaluate(model, "valid")["loss"])
            model.train()
    assert step == cfg.max_steps
    model.eval()
    return history


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_single_process_is_bit_identical_to_before(cell):
    """Without a launcher, train() is exactly the plain pre-DDP loop, computed here in the same
    process (same CPU, threads and kernels), so it holds bit for bit on any machine."""
    torch.set_num_threads(1)
    task, model = _fresh(cell)
    result = train(model, task, SMALL_RUN, progress=False)
    task, reference = _fresh(cell)
    expected = _plain_loop(reference, task, SMALL_RUN)
    assert [h["step"] for h in result.history] == [0, 5, 10, 14]
    assert [h["loss"].hex() for h in result.history] == [v.hex() for v in expected]
    assert expected[-1] < expected[0]  # it trained: a real comparison, not two untouched models
    for (name, w), r in zip(model.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(w, r), name


def test_distributed_true_without_launcher_is_a_clear_error(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    task = CharLMTask(text=TEXT)
    model = SequenceModel(task.model_spec(hidden_size=8, num_layers=1))
    with pytest.raises(ValueError, match="torchrun"):
        train(model, task, TrainConfig(max_steps=1, batch_size=4, distributed=True), progress=False)


def test_global_batch_must_divide_among_processes():
    assert check_batch_size(32, 4) == 8
    with pytest.raises(ValueError, match="multiple of 3"):
        check_batch_size(32, 3)


def test_shard_batch_even_uneven_and_too_small():
    x, y = torch.arange(12).view(2, 6), torch.arange(12).view(2, 6) + 100  # language model: (T, B) both
    parts = [shard_batch(Batch(x, y), r, 2, 1) for r in range(2)]
    assert [w for _, w in parts] == [1.0, 1.0]
    assert torch.equal(torch.cat([p.inputs for p, _ in parts], 1), x)
    assert torch.equal(torch.cat([p.targets for p, _ in parts], 1), y)
    xs, ys = torch.randn(3, 5, 2), torch.arange(5)  # classification: (T, B, F), (B,); 5 over 2 ranks: 3 + 2
    (a, wa), (b, wb) = (shard_batch(Batch(xs, ys), r, 2, 0) for r in range(2))
    assert a.targets.tolist() == [0, 1, 2] and b.targets.tolist() == [3, 4]
    assert (wa, wb) == (pytest.approx(2 * 3 / 5), pytest.approx(2 * 2 / 5))  # weights: share x world
    assert shard_batch(Batch(xs[:, :1], ys[:1]), 1, 2, 0) == (None, 0.0)
    with pytest.raises(ValueError, match="targets"):
        shard_batch(Batch(xs, ys[:4]), 0, 2, 0)


def test_targets_axis_and_state_slices_and_seeds():
    assert targets_batch_dim(CharLMTask(text=TEXT)) == 1
    state = [(torch.arange(8.0).view(1, 4, 2), torch.zeros(1, 4, 2))]
    mine = local_state(state, 1, 2)
    assert mine[0][0].tolist() == [[[4.0, 5.0], [6.0, 7.0]]] and isinstance(mine[0], tuple)
    assert rank_seed(5, 0) == 5 and rank_seed(5, 1) != rank_seed(6, 0)
    single = Dist()  # one process: collectives are identities
    assert single.broadcast_json({"a": 1}) == {"a": 1} and single.leader_call(lambda: 3) == 3


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def world_of_one(monkeypatch):
    """This process as rank 0 of 1 (gloo): every DDP code path without spawning anything."""
    for k, v in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                 "MASTER_PORT": str(_free_port()), "RNNSLIM_DIST_TIMEOUT_S": "60"}.items():
        monkeypatch.setenv(k, v)
    torch.set_num_threads(1)  # the conftest's 2 threads crawl on a loaded 2-core machine


class _Stop(Exception):
    pass


def test_ddp_run_interrupted_resumes_exactly_and_rolls_back_on_nan(tmp_path, world_of_one):
    cfg = TrainConfig(max_steps=20, batch_size=4, seq_len=8, lr=5e-3, eval_every=8, checkpoint_every=5, seed=3,
                      distributed=True)

    def setup(seed=0):
        task = CharLMTask(text=TEXT)
        torch.manual_seed(seed)
        return task, SequenceModel(task.model_spec(cell="lstm", hidden_size=8, num_layers=2, dropout=0.2))

    task, a = setup()
    ra = train(a, task, cfg, checkpoint_dir=tmp_path / "a", progress=False)

    def crash(model, step):
        if step == 12:
            raise _Stop

    task, b = setup()
    with pytest.raises(_Stop):  # the DDP wrapper is released before its process group (else the next run hangs)
        train(b, task, cfg, checkpoint_dir=tmp_path / "b", hooks=TrainHooks(after_step=[crash]), progress=False)
    blob = torch.load(tmp_path / "b" / "trainer_state.pt", weights_only=True)
    assert len(blob["torch_rng_ranks"]) == 1 and blob["carried_state"][0].shape[1] == 4  # global state
    task, c = setup(seed=9)
    rc = train(c, task, cfg, checkpoint_dir=tmp_path / "b", progress=False)
    assert rc.history == ra.history and rc.steps == 20
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values()))
    task, d = setup()
    with pytest.raises(TrainingDiverged):
        train(d, task, cfg.model_copy(update={"lr": float("inf")}), progress=False)
    assert all(torch.isfinite(p).all() for p in d.parameters())
