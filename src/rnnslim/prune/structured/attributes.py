"""Size attributes of the user's own modules after a cut: update them, or name them.

A user's module keeps the sizes it was built with and reads them later, e.g. the PyTorch
word-language-model example:

    self.nhid, self.nlayers = nhid, nlayers
    def init_hidden(self, bsz):
        weight = next(self.parameters())
        return weight.new_zeros(self.nlayers, bsz, self.nhid)

After a cut `self.nhid` names the old size and the user's own loop breaks. An attribute
is updated to the new size when all of these hold:
- it is a plain int on one of the user's own modules (not torch's or rnnslim's), the
  module that holds the edited recurrent / embedding module or one above it;
- it equals the old size of groups the cut changed, and they all have one new size, and
  no recurrent module it holds still has that size of that kind (an untouched encoder of
  the same width, a layer the cut left alone: one number cannot name both);
- its name says it is that kind of size (SIZE_NAMES: `nhid`, `hidden_size`, `n_hidden`,
  ... for hidden units; `proj_size`, ... for LSTM projections; `ninp`, `emsize`,
  `embed_dim`, ... for the embedding width; `nlayers`, `num_layers`, ... for the layer
  count of a torch module remove_layers_ shortened);
- the class's methods read it (`self.nhid` outside `__init__`): it is used as that size.
  When the class source cannot be read (defined in an interactive session), the name is
  taken as the evidence.
Every update is an entry of StructuredResult.updated_attributes, a line of the result's
warnings and an entry of the history record ("attributes": {"WordLM.nhid": [200, 100]});
anything else equal to an old size is reported (StructuredResult.stale_attributes, a
"check:" warning) for the user to judge.
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
import textwrap
from dataclasses import dataclass

from torch import nn

from rnnslim.graph.coupling import GroupKind

LAYERS = "layers"  # SizeChange.kind of a layer count (remove_layers_)
SIZE_NAMES: dict[str, re.Pattern] = {
    GroupKind.HIDDEN.value: re.compile(r"^(n_?hid(den)?|hid(den)?(_(size|dim|units|features))?|n_?hidden_?units|"
                                 r"(rnn|lstm|gru|state)_(size|dim|hidden|units)|num_hidden|d_hidden|units)$", re.I),
    GroupKind.PROJ.value: re.compile(r"^(n_?proj|proj(ection)?(_(size|dim))?)$", re.I),
    GroupKind.EMBED.value: re.compile(r"^(ninp|n_?emb(ed)?|emsize|em?b(ed(ding)?)?(_(size|dim|width))?)$", re.I),
    LAYERS: re.compile(r"^(n_?layers?|num_?layers|(rnn|lstm|gru)_?(n_?)?layers|depth)$", re.I),
}

# sizes torch's own modules keep (a user class deriving from one holds them as torch's)
_TORCH_SIZE_ATTRS = {"input_size", "hidden_size", "proj_size", "num_layers", "in_features", "out_features",
                     "num_embeddings", "embedding_dim", "in_channels", "out_channels"}
_TORCH_SIZED = (nn.RNNBase, nn.Linear, nn.Embedding, nn.modules.conv._ConvNd)


@dataclass(frozen=True)
class SizeChange:
    """One group the edit resized: its kind (a GroupKind or LAYERS), the module path it belongs
    to, old and new size."""

    group: str
    kind: GroupKind | str
    module: str
    before: int
    after: int


def _users_own(mod: nn.Module) -> bool:
    return not (type(mod).__module__.startswith("torch.") or getattr(type(mod), "rnnslim_kind", None))


def _size_attributes(mod: nn.Module) -> dict[str, int]:
    torch_sized = isinstance(mod, _TORCH_SIZED)
    return {a: v for a, v in vars(mod).items()
            if not a.startswith("_") and type(v) is int and not (torch_sized and a in _TORCH_SIZE_ATTRS)}


@functools.lru_cache(maxsize=64)
def _reads_of(cls: type) -> frozenset[str] | None:
    """`self.X` names read by the methods of `cls` and its user-defined bases (not __init__);
    None when the source cannot be read."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass.__module__.startswith(("torch", "rnnslim", "builtins")):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            return None
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and fn.name != "__init__":
                names |= {n.attr for n in ast.walk(fn) if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Load)
                          and isinstance(n.value, ast.Name) and n.value.id == "self"}
    return frozenset(names)


def _owns(path: str, module: str) -> bool:
    return path == "" or module == path or module.startswith(path + ".")


def _where(mod: nn.Module, path: str, attr: str) -> str:
    return f"{type(mod).__name__}{'.' + path if path else ''}.{attr}"


_RECURRENT_SIZE = {GroupKind.HIDDEN.value: "hidden_size", GroupKind.PROJ.value: "proj_size", LAYERS: "num_layers"}


def _still_sized(owner: nn.Module, fits: list[SizeChange], value: int) -> str:
    """Path (under `owner`) of a recurrent module that, after the edit, still has `value` as the
    size the changes are about; '' when none does."""
    for kind in {getattr(c.kind, "value", c.kind) for c in fits}:
        name = _RECURRENT_SIZE.get(kind)
        if name is None:
            continue
        for path, m in owner.named_modules():
            recurrent = isinstance(m, nn.RNNBase) or getattr(type(m), "rnnslim_kind", None) == "torch_contract_stack"
            sizes = [getattr(layer, name, None) for layer in getattr(m, "layers", [m])] if name != "num_layers" else [
                getattr(m, name, None)]
            if recurrent and value in sizes:
                return path or type(m).__name__
    return ""


def update_size_attributes_(model: nn.Module, changes: list[SizeChange]) -> tuple[dict[str, list[int]], list[str]]:
    """Update the attributes that name a changed size and are used as one (module docstring).

    Returns ({"WordLM.nhid": [old, new]} for the updated ones, lines naming the others that
    equal an old size)."""
    changes = [c for c in changes if c.before != c.after]
    updated: dict[str, list[int]] = {}
    stale: list[str] = []
    if not changes:
        return updated, stale
    for path, mod in model.named_modules():
        if not _users_own(mod):
            continue
        for attr, value in _size_attributes(mod).items():
            same = [c for c in changes if c.before == value]
            if not same:
                continue
            where = _where(mod, path, attr)
            fits = [c for c in same if _owns(path, c.module) and SIZE_NAMES[getattr(c.kind, "value", c.kind)].match(attr)]
            reads = _reads_of(type(mod))
            new = {c.after for c in fits}
            kept = _still_sized(mod, fits, value)
            if fits and len(new) == 1 and not kept and (reads is None or attr in reads):
                setattr(mod, attr, new.pop())
                updated[where] = [value, getattr(mod, attr)]
                continue
            why = "; ".join(f"{c.group} {c.before} -> {c.after}" for c in same)
            if kept:
                why += f": {kept} still has {value}, one number cannot name both"
            elif len(new) > 1:
                module = next(c.module for c in fits)
                why += (": the layers now differ in size, one number cannot name them; build the state with "
                        f"rnnslim.recurrent.torch_contract.zero_state(model.{module}, batch) (a list, one entry per "
                        "layer) or pass None")
            stale.append(f"{where} = {value} names an old size ({why})")
    return updated, stale


def stale_size_attributes(model: nn.Module, sizes: dict[str, tuple[int, int]]) -> list[str]:
    """Integer attributes of the user's own modules equal to a size this cut changes (without
    updating anything): each is a line naming the attribute and the groups."""
    changed: dict[int, list[str]] = {}
    for group, (before, after) in sizes.items():
        if before != after:
            changed.setdefault(before, []).append(f"{group} {before} -> {after}")
    out = []
    for path, mod in model.named_modules():
        if not _users_own(mod):
            continue
        for attr, value in _size_attributes(mod).items():
            if value in changed:
                out.append(f"{_where(mod, path, attr)} = {value} names an old size ({'; '.join(changed[value])})")
    return out
