"""Everything a search worker needs, as data (workers are separate processes, even machines).

    cfg = SearchConfig(model="m.json", out="runs/s", budget="bytes=1/20,loss=+2%", trials=30)

The parts that change what a trial *is* (space, fidelity, evaluation, seed) are hashed into
`study_key`; a worker refuses to join a study started with another key, so every trial of a
study was sampled from one space and scored the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rnnslim.search.references import ReferencePoint
from rnnslim.search.space import SearchSpace


class SearchConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    model: str = Field(description="input model path (model JSON or a directory rnnslim wrote)")
    out: str = Field(description="search directory: journal, trials/, results.json, best.yaml, pareto.png")
    data: str | None = Field(default=None, description="task data (as for `rnnslim compress --data`)")
    task: str | None = Field(default=None, description="task name (default: the model's)")
    task_options: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    budget: str = Field(default="", description="bytes=..,latency_ms=..,loss=.. (see budget.py)")
    prefer: Literal["loss", "bytes", "latency_ms"] | None = None
    trials: int = Field(default=20, ge=1, le=100_000, description="trials the study should finish (all workers)")
    storage: str | None = Field(default=None, description="journal file path or database URL (default: OUT/journal.log)")
    study_name: str = Field(default="rnnslim-search", min_length=1, max_length=200)
    sampler: Literal["tpe", "nsga2"] = "tpe"
    seed: int | None = Field(default=None, ge=0, description="sampler seed (+ worker index); None: random")
    space: SearchSpace = Field(default_factory=SearchSpace)
    eval_tokens: int = Field(default=5000, ge=10, le=10**9,
                             description="validation subset (tokens) of the proxy rungs and every pipeline row")
    full_eval_tokens: int | None = Field(default=None, ge=10,
                                         description="tokens of the full-rung evaluation (None: whole valid/test split)")
    latency: bool = Field(default=True, description="measure the step latency (third objective)")
    latency_steps: int = Field(default=100, ge=1, le=100_000)
    latency_repeats: int = Field(default=3, ge=1, le=1000)
    threads: int = Field(default=1, ge=1, le=1024, description="torch threads of training, evaluation and timing")
    eta: float = Field(default=3.0, ge=1.0, le=100.0, description="promotion rule: keep the best 1/eta per rung")
    promotion: Literal["pooled", "by_family"] = Field(
        default="pooled", description="promotion peers: every trial (pooled) or the trials of the same recovery "
                                      "family (sparse or dense x fine-tune or QAT, rnnslim.search.fidelity)")
    recipe_seed: int = Field(default=0, ge=0, description="the `seed` of every trial's recipe")
    grace_s: float = Field(default=300.0, gt=0, description="a running trial without heartbeat this long is stale")
    heartbeat_s: float = Field(default=20.0, gt=0)
    time_budget_s: float | None = Field(default=None, gt=0,
                                        description="a worker asks for no new trial after this many seconds")
    max_failures: int = Field(default=5, ge=1, description="consecutive failed trials after which a worker stops")
    enqueue: list[dict[str, int | float | str | bool]] = Field(
        default_factory=list, description="warm start: parameter sets (e.g. {width_l0: 384, bits_rnn: 3}) a new "
                                          "study tries first, before the sampler's own; missing ones are sampled")
    startup_trials: int | None = Field(default=None, ge=1, le=1000,
                                       description="TPE's random trials before it models the space (None: "
                                                   "min(10, trials / 3), at least 3)")
    size_floor: float | None = Field(
        default=None, gt=0, lt=1, description="prune before training a trial predicted under this fraction of the "
                                              "bytes cap (a prior for `prefer bytes` searches: far under the cap the "
                                              "loss cap is rarely held); None: no floor")
    references: list[ReferencePoint] = Field(
        default_factory=list, description="recipes already run (rnnslim.search.references.load_reference), drawn "
                                          "beside the trials in pareto.png and report.html; not part of the study")

    @property
    def out_dir(self) -> Path:
        return Path(self.out)

    def study_key(self) -> dict:
        """What a joining worker must agree on (not `enqueue` nor `references`: neither changes the space)."""
        key = {"space": _space_key(self.space), "eval_tokens": self.eval_tokens,
               "full_eval_tokens": self.full_eval_tokens, "latency": self.latency, "eta": self.eta,
               "recipe_seed": self.recipe_seed, "task": self.task, "task_options": self.task_options}
        for name in ("size_floor", "startup_trials"):  # added later: a study started before them keeps its key
            if getattr(self, name) is not None:
                key[name] = getattr(self, name)
        if self.promotion != "pooled":  # added later: the studies before it promoted pooled
            key["promotion"] = self.promotion
        return key


# fields added to SearchSpace after studies existed: left out of the key at the value every study
# before them had (their default, or for unit_reduce the old prune_units default), so a study started
# before them still accepts its workers (its trials were sampled the same way)
_LATER_FIELDS = {"clip": "minmax", "fold_input": False, "strip_rows": 16, "lstmp_ratios": [1.0],
                 "entropy_coding": [False], "qat": [False], "unit_reduce": "l1"}


def _space_key(space: SearchSpace) -> dict:
    key = space.model_dump(mode="json")
    for name, default in _LATER_FIELDS.items():
        if key.get(name) == default:
            key.pop(name)
    if key.get("finetune", {}).get("proxy_rungs") == 1:  # likewise, inside the fine-tune section
        key["finetune"].pop("proxy_rungs")
    return key
