"""Multi-fidelity: cheap proxy scores first, the full fine-tune only for promising trials.

A trial's full recipe (its stages, fine-tune of T steps included) is run in up to three
rungs, all in the trial's one run directory, so each rung reuses the stages the previous
one finished (the pipeline resumes from the first changed stage):

    oneshot   the recipe without its fine-tune: the one-shot loss on the validation subset,
              the artifact bytes and the step latency (bytes and latency do not change with
              fine-tuning, so they are final here)
    proxy     the fine-tune shortened to proxy_steps steps (only when T > proxy_steps); with
              `proxy_rungs` = k > 1, further rungs proxy2 .. proxyk at proxy_steps * eta^(i-1)
              steps (each only when shorter than T), so a long fine-tune is reached through a
              geometric ladder as in successive halving / Hyperband
    full      the recipe as sampled; its model is then evaluated on the whole validation
              split (the trial's loss) and the whole test split (reported, never optimized)

A recipe without a fine-tune has only the `full` rung. Between rungs a staged rule decides
(`promote`), asynchronously over what the other trials of the study (all workers) have
reported for the same rung, in the spirit of successive halving (ASHA):

- a trial over the bytes or latency cap of the budget stops at `oneshot` (fine-tuning
  cannot fix it);
- otherwise it goes on when it is on the rung's Pareto front (no peer within the caps has
  a lower loss with at most its bytes and latency), or when its loss is among the best
  1/eta of the peers within the caps (itself included), eta = 3 by default.

Peers are every trial (SearchConfig.promotion "pooled", the default) or the trials of the same
recovery family (`recovery_family`, "by_family"). A rung's loss before training is not
comparable across families: a dense trial whose training is QAT after
GPTQ starts from the GPTQ model (+4 % on charlstm-512x2), a sparse trial from pruning + low
bits with nothing recovered yet (+10 to +30 %), so pooled, the sparse trials that needed their
fine-tune never reached it (charlstm-512x2 v5: none of its 4 sparse fine-tuned trials reached
the full rung, 12 dense QAT trials did; benchmarks/results/search_charlstm-512x2-v5.json). But
by family, with few peers nearly every trial is on its family's front and runs in full: the v6
study (by_family) spent its 2 hours on 9 trials, five of them 2,000-step sparse fine-tunes of
~30 min, and ended further off (+10.4 % valid, search_charlstm-512x2-v6.json); hence pooled stays
the default.

A trial that stops early is COMPLETE in Optuna with its proxy values (a loss that more
fine-tuning would lower) and user attr `fidelity` naming its last rung; the Pareto front
and the best recipe consider only `full` trials. Optuna's own pruners do not apply:
they do not support multi-objective studies.
"""

from __future__ import annotations

import math

RUNGS = ("oneshot", "proxy", "full")  # with proxy_rungs > 1: proxy2, proxy3, ... between proxy and full


def proxy_rung_name(k: int) -> str:
    return "proxy" if k == 0 else f"proxy{k + 1}"


def rung_plan(stages: list[dict], proxy_steps: int, proxy_rungs: int = 1,
              growth: float = 3.0) -> list[tuple[str, list[dict]]]:
    """[(rung name, stage mappings)] for a trial's full stage list: oneshot, the proxy rungs
    (proxy_steps * growth^k steps, k < proxy_rungs, each shorter than the trial's fine-tune), full."""
    ft = [i for i, s in enumerate(stages) if s.get("kind") in ("finetune", "qat")]
    if not ft:
        return [("full", stages)]
    i = ft[-1]
    qat = stages[i]["kind"] == "qat"
    field = "steps" if qat else "max_steps"  # a qat stage counts its training in `steps`
    steps = int(stages[i].get(field) or 0)
    plan = [("oneshot", stages[:i] + ([ptq_of(stages[i])] if qat and not _after_ptq(stages[:i]) else [])
             + stages[i + 1:])]
    for k in range(proxy_rungs):
        short = int(round(proxy_steps * growth ** k))
        if short >= steps:
            break
        plan.append((proxy_rung_name(k), stages[:i] + [{**stages[i], field: short}] + stages[i + 1:]))
    plan.append(("full", stages))
    return [(name, s) for name, s in plan if s]  # a recipe of only a fine-tune has no oneshot rung


def _after_ptq(earlier: list[dict]) -> bool:
    """A qat stage after a weight-only quantize stage continues on its grid (rnnslim.quantize.qat):
    its zero-step rung is the recipe without it."""
    return any(s.get("kind") in ("quantize_weights", "quantize_gptq") for s in earlier)


def ptq_of(qat: dict) -> dict:
    """A qat stage's zero-step rung: quantize_weights in the same stored format (no training)."""
    keep = ("bits", "group_size", "symmetric", "clip", "targets", "entropy_coding")
    return {"kind": "quantize_weights", **{k: v for k, v in qat.items() if k in keep}}


def recovery_family(stages: list[dict]) -> str:
    """What a trial's training recovers from, e.g. "sparse+finetune", "dense+qat": trials of one
    family have comparable losses before their training ends (module docstring)."""
    sparse = any(s.get("kind", "").startswith("prune") and s.get("kind") != "prune_units" for s in stages)
    train = [s["kind"] for s in stages if s.get("kind") in ("finetune", "qat")]
    return f"{'sparse' if sparse else 'dense'}+{train[-1] if train else 'none'}"


def _within(record: dict, caps: dict) -> bool:
    for key in ("bytes", "latency_ms"):
        if key in caps and (record.get(key) is None or record[key] > caps[key]):
            return False
    return True


def _score(record: dict, higher_is_better: bool) -> float:
    loss = record.get("loss")
    if loss is None or not math.isfinite(loss):
        return math.inf
    return -loss if higher_is_better else loss


def _dominates(a: dict, b: dict, higher_is_better: bool) -> bool:
    """a has a strictly better loss with no more bytes and (when both measured) no more latency."""
    if _score(a, higher_is_better) >= _score(b, higher_is_better) or a["bytes"] > b["bytes"]:
        return False
    la, lb = a.get("latency_ms"), b.get("latency_ms")
    return la is None or lb is None or la <= lb


def promote(record: dict, peers: list[dict], caps: dict, eta: float = 3.0,
            higher_is_better: bool = False) -> tuple[bool, str]:
    """Whether a trial with rung record {loss, bytes, latency_ms[, family]} goes on to the next rung;
    (yes, why). With a `family` the peers are those of the same family only."""
    if not _within(record, caps):
        return False, "over the bytes/latency cap (fine-tuning does not change them)"
    peers = [p for p in peers if _within(p, caps)]
    if record.get("family") is not None:
        peers = [p for p in peers if p.get("family") == record["family"]]
    if not any(_dominates(p, record, higher_is_better) for p in peers):
        return True, f"on the rung's Pareto front ({len(peers)} peers)"
    mine = _score(record, higher_is_better)
    rank = sum(1 for p in peers if _score(p, higher_is_better) < mine)  # 0 = best
    keep = max(1, math.ceil((len(peers) + 1) / eta))
    if rank < keep:
        return True, f"loss rank {rank + 1} of {len(peers) + 1} (top 1/{eta:g})"
    return False, f"dominated; loss rank {rank + 1} of {len(peers) + 1} (promotes the top {keep})"


def pareto_front(points: list[dict], keys: tuple[str, ...], signs: tuple[int, ...]) -> list[int]:
    """Indices of the non-dominated points (each minimizes sign*value for every key)."""
    vals = [[s * p[k] for k, s in zip(keys, signs)] for p in points]
    front = []
    for i, a in enumerate(vals):
        if not any(all(x <= y for x, y in zip(b, a)) and any(x < y for x, y in zip(b, a))
                   for j, b in enumerate(vals) if j != i):
            front.append(i)
    return front
