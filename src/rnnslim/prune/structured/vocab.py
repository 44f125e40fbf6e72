"""Drop vocabulary entries that the data never uses (embedding rows, decoder rows + bias).

    result = prune_vocab_(model, task)          # every token of the task's splits
    result = prune_vocab_(model, [0, 5, 7, 9])  # or the used token ids
    new_ids = result.remap(old_ids)

The logits of kept tokens are unchanged (their rows are untouched); the softmax is now
over the kept tokens only, so a model's loss on text made of kept tokens can only
improve. Token ids change: kept token i gets id rank(i); for a SequenceModel
`model.task_meta["vocab"]` and the ModelSpec sizes follow, so CharLMTask.for_model maps
text to the new ids. Text with a dropped token cannot be fed afterwards, so the default
collects tokens from all splits, not only the training split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnslim.prune.structured import append_history, n_params
from rnnslim.prune.structured.units import rebuild_module, replace_module
from rnnslim.results import EditResult
from rnnslim.utils.atomic import atomic_verb

SPLITS = ("train", "valid", "test")


@dataclass
class VocabResult(EditResult):
    keep: list[int]  # old ids, ascending; new id = position in this list
    size_before: int
    params_before: int
    params_after: int

    def remap(self, ids: Tensor) -> Tensor:
        """Old token ids -> new ids (raises on a dropped token)."""
        table = torch.full((self.size_before,), -1, dtype=torch.long)
        table[torch.tensor(self.keep)] = torch.arange(len(self.keep))
        out = table.to(ids.device)[ids]
        if (out < 0).any():
            raise ValueError("the ids contain tokens that were pruned from the vocabulary")
        return out


def used_tokens(data, splits: Sequence[str] = SPLITS) -> list[int]:
    """Sorted token ids that occur in `data`: a Task (inputs and targets of its splits), a tensor, or ids."""
    if isinstance(data, Tensor):
        return torch.unique(data).tolist()
    if hasattr(data, "batches"):
        seen: set[int] = set()
        for split in splits:
            if hasattr(data, "split"):  # token-stream tasks (charlm / wordlm): the whole split at once
                seen |= set(torch.unique(data.split(split)).tolist())
                continue
            for b in data.batches(split, 64, 256):
                seen |= set(torch.unique(b.inputs).tolist())
                if not b.targets.is_floating_point():
                    seen |= set(torch.unique(b.targets).tolist())
        return sorted(seen)
    return sorted({int(i) for i in data})


@atomic_verb
def prune_vocab_(model: nn.Module, data, splits: Sequence[str] = SPLITS, embedding: str = "embedding",
                 decoder: str | None = "decoder") -> VocabResult:
    """Keep only the tokens that occur in `data` (see module docstring)."""
    emb = model.get_submodule(embedding)
    if not isinstance(emb, nn.Embedding):
        raise TypeError(f"'{embedding}' is a {type(emb).__name__}, not an nn.Embedding")
    V = emb.num_embeddings
    keep = used_tokens(data, splits)
    if emb.padding_idx is not None and emb.padding_idx not in keep:
        keep = sorted(set(keep) | {emb.padding_idx})
    if not keep or keep[0] < 0 or keep[-1] >= V:
        raise ValueError(f"token ids must be in [0, {V}); got {keep[:3]}...{keep[-3:]}")
    idx = torch.tensor(keep, device=emb.weight.device)
    before = n_params(model)
    dec = model.get_submodule(decoder) if decoder else None
    is_lm = isinstance(dec, nn.Linear) and dec.out_features == V
    tied = is_lm and dec.weight is emb.weight
    new_emb = rebuild_module(emb, {"weight": emb.weight.detach().index_select(0, idx).clone()})
    if emb.padding_idx is not None:
        new_emb.padding_idx = keep.index(emb.padding_idx)
    replace_module(model, embedding, new_emb)
    if is_lm:
        new = {"weight": dec.weight.detach().index_select(0, idx).clone()}
        if dec.bias is not None:
            new["bias"] = dec.bias.detach().index_select(0, idx).clone()
        new_dec = rebuild_module(dec, new)
        if tied:
            new_dec.weight = new_emb.weight
        replace_module(model, decoder, new_dec)
    _update_meta(model, keep, V, is_lm)
    append_history(model, {"op": "prune_vocab", "keep": keep, "size": V, "embedding": embedding, "decoder": decoder})
    return VocabResult(keep, V, before, n_params(model))


def _update_meta(model: nn.Module, keep: list[int], V: int, is_lm: bool) -> None:
    spec = getattr(model, "spec", None)
    if spec is not None and hasattr(spec, "input_size"):
        update = {"input_size": len(keep)}
        if is_lm:
            update["output_size"] = len(keep)
        model.spec = type(spec).model_validate({**spec.model_dump(), **update})
    meta = getattr(model, "task_meta", None)
    if isinstance(meta, dict) and isinstance(meta.get("vocab"), list) and len(meta["vocab"]) == V:
        meta["vocab"] = [meta["vocab"][i] for i in keep]
