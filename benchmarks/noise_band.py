"""How much of a test-loss difference is noise: the noise band every BENCHMARKS.md table uses.

    python benchmarks/noise_band.py --model charlstm-512x2

The definition is the one in ../shared/docs/BENCHMARKING.md ("for a loss, the spread ... over
disjoint halves of the split"): the change between the fp32 model and a slightly perturbed copy
(weight-only int4 g64, a typical compressed model) is measured on disjoint halves of the test
split, and the band is how far the halves disagree. The split is one text cut into 50 contiguous
blocks; two halvings are taken (first 25 blocks vs last 25; even vs odd blocks) and the band is
the larger disagreement: `noise_band`. A change within +-noise_band is "equal", never "better".
(se_loss / se_paired, block standard errors, stay in the JSON as diagnostics; tables do not use them.)
Writes benchmarks/results/noise_band.json (merged per model).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, MODELS, RESULTS, update_results  # noqa: E402

from rnnslim.io.format import load_model  # noqa: E402
from rnnslim.quantize.api import WeightOnly, quantize_  # noqa: E402
from rnnslim.tasks.charlm import CharLMTask  # noqa: E402

BLOCKS = 50


@torch.no_grad()
def token_nll(model, d: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Per-character NLL of d[1:] given d[:-1], batch 1, state carried."""
    model.eval()
    out, state = [], None
    x_all, y_all = d[:-1], d[1:]
    for t in range(0, len(x_all), chunk):
        logits, state = model(x_all[t: t + chunk, None], state)
        out.append(F.cross_entropy(logits[:, 0].float(), y_all[t: t + chunk], reduction="none"))
    return torch.cat(out)


def block_se(values: torch.Tensor) -> float:
    n = values.numel() // BLOCKS * BLOCKS
    means = values[:n].view(BLOCKS, -1).double().mean(1)
    return float(means.std(unbiased=True) / BLOCKS ** 0.5)


def halves(diff: torch.Tensor) -> dict:
    """The paired change on disjoint halves of the split (per-token differences, in BLOCKS blocks)."""
    n = diff.numel() // BLOCKS * BLOCKS
    means = diff[:n].view(BLOCKS, -1).double().mean(1)
    first, second = float(means[: BLOCKS // 2].mean()), float(means[BLOCKS // 2:].mean())
    even, odd = float(means[0::2].mean()), float(means[1::2].mean())
    return {"first_half": first, "second_half": second, "even_blocks": even, "odd_blocks": odd,
            "spread": max(abs(first - second), abs(even - odd))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="charlstm-512x2")
    args = ap.parse_args()
    torch.set_num_threads(2)
    base = load_model(MODELS / f"{args.model}.json")
    d = CharLMTask.for_model(base, DATA).split("test")
    a = token_nll(base, d)
    other = quantize_(copy.deepcopy(base), WeightOnly(bits=4, group_size=64))
    b = token_nll(other, d)
    result = {"test_loss": float(a.mean()), "blocks": BLOCKS, "characters": int(a.numel()),
              "se_loss": block_se(a), "se_paired": block_se(b - a), "paired_with": "weight-only int4 g64",
              "paired_difference": float((b - a).mean())}
    result["noise_band_2se"] = 2 * result["se_paired"]  # a diagnostic; the band is the halves' spread
    result["halves"] = halves(b - a)
    result["noise_band"] = result["halves"]["spread"]
    update_results(RESULTS / "noise_band.json", args.model, result)
    print({k: round(v, 5) if isinstance(v, float) else v for k, v in result.items()})


if __name__ == "__main__":
    main()
