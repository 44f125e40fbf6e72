"""Find the recurrent modules of any nn.Module and what consumes their units.

    graph = discover_coupling(model)                              # torch.fx
    graph = discover_coupling(model, example_inputs=(x,))        # fx + shapes, or a traced run
    graph = discover_coupling(model, consumers={"lstm": ["fc"]})  # declared by hand
    print(graph)

Order of attempts (method=AUTO): torch.fx symbolic tracing (with ShapeProp shapes when
example inputs are given); if fx cannot trace the forward (data-dependent control flow,
PackedSequence, ...) and example inputs are given, a run with forward hooks that reads
data flow from gradients (graph/trace.py). Declared consumers replace whatever was found
for those recurrent modules; when every recurrent module is declared nothing is traced.
Then the embedding / input Linear feeding recurrent layer 0 is found from the same fx
trace (graph/sources.py, `graph.sources`); that step never raises (a note says why none
was found).
"""

from __future__ import annotations

from enum import Enum

from torch import nn

from rnnslim.graph.coupling import (
    Consumer,
    ConsumerKind,
    CouplingError,
    CouplingGraph,
    RecurrentModule,
)


class DiscoveryMethod(str, Enum):
    AUTO = "auto"
    FX = "fx"
    TRACE = "trace"


def find_recurrent(model: nn.Module) -> dict[str, RecurrentModule]:
    """Every torch.nn.LSTM / GRU / RNN in `model`, by module path, in module order."""
    return {path: RecurrentModule.from_module(path, m) for path, m in model.named_modules()
            if isinstance(m, nn.RNNBase) and type(m) in (nn.LSTM, nn.GRU, nn.RNN)}


def _declared(model: nn.Module, recurrent: dict[str, RecurrentModule], consumers: dict[str, list[str]]
              ) -> dict[str, Consumer]:
    out: dict[str, Consumer] = {}
    for rpath, names in consumers.items():
        if rpath not in recurrent:
            raise CouplingError(f"consumers: '{rpath}' is not a torch.nn.LSTM/GRU/RNN of this model; recurrent "
                                f"modules: "
                                f"{list(recurrent)}")
        rm = recurrent[rpath]
        feats = rm.out_feats()
        for name in [names] if isinstance(names, str) else names:
            try:
                m = model.get_submodule(name)
            except AttributeError:
                raise CouplingError(f"consumers['{rpath}']: the model has no module '{name}'") from None
            if isinstance(m, nn.Linear):
                kind, width = ConsumerKind.LINEAR, m.in_features
            elif isinstance(m, nn.Conv1d) and m.groups == 1:
                kind, width = ConsumerKind.CONV1D, m.in_channels
            elif isinstance(m, nn.RNNBase):
                kind, width = ConsumerKind.RECURRENT, m.input_size
            else:
                raise CouplingError(f"consumers['{rpath}']: '{name}' is a {type(m).__name__}; a declared consumer must "
                                    "be an nn.Linear, nn.Conv1d (groups=1) or nn.LSTM/GRU/RNN")
            if width != len(feats):
                raise CouplingError(f"consumers['{rpath}']: '{name}' takes {width} input features but '{rpath}' "
                                    f"outputs {len(feats)}; a declared consumer must read exactly its output features")
            if name in out:
                raise CouplingError(f"consumers: '{name}' is declared for two recurrent modules")
            out[name] = Consumer(name, kind, feats)
    return out


def discover_coupling(model: nn.Module, example_inputs: tuple | None = None,
                      consumers: dict[str, list[str]] | None = None, method: DiscoveryMethod = DiscoveryMethod.AUTO,
                      strict: bool = True) -> CouplingGraph:
    """The CouplingGraph of `model`; with strict, raise CouplingError for unresolved modules."""
    method = DiscoveryMethod(method)
    recurrent = find_recurrent(model)
    if not recurrent:
        raise CouplingError(f"{type(model).__name__} contains no torch.nn.LSTM, GRU or RNN module")
    if example_inputs is not None and not isinstance(example_inputs, tuple):
        example_inputs = (example_inputs,)
    subclasses = [p for p, m in model.named_modules() if isinstance(m, nn.RNNBase) and p not in recurrent]
    declared = _declared(model, recurrent, consumers or {})
    done = set((consumers or {}).keys())
    gm = None
    if done == set(recurrent):
        graph = CouplingGraph(recurrent=recurrent, method="declared")
    else:
        graph, gm = _found(model, recurrent, example_inputs, method)
    if done:  # declarations win for their recurrent modules
        group_owner = {rm.group_name(layer, kind): rm.path for rm in recurrent.values()
                       for layer in range(rm.num_layers) for kind in (rm.out_kind,)}
        for name, c in list(graph.consumers.items()):
            if any(group_owner.get(g) in done for g in c.groups()):
                del graph.consumers[name]
        graph.exposed = {g: w for g, w in graph.exposed.items() if group_owner.get(g) not in done}
        for p in done:
            graph.unresolved.pop(p, None)
        for name, c in declared.items():
            if name in graph.consumers:
                raise CouplingError(f"declared consumer '{name}' also reads another recurrent module's output "
                                    f"({graph.consumers[name].groups()}); declare that module too")
            graph.consumers[name] = c
        if graph.method != "declared":
            graph.method += " + declared"
    graph.notes += [f"'{p}' is a subclass of a torch recurrent module; rnnslim does not prune it" for p in subclasses]
    _add_sources(model, graph, gm, example_inputs)
    if strict:
        graph.check()
    return graph


def _add_sources(model: nn.Module, graph: CouplingGraph, gm, example_inputs) -> None:
    """graph.sources: the embedding / input Linear feeding recurrent layer 0 (graph/sources.py; fx only)."""
    from rnnslim.graph.fx_trace import trace_fx
    from rnnslim.graph.sources import find_sources

    if not any(type(m) in (nn.Embedding, nn.Linear) for m in model.modules()):
        return
    try:  # after the traced fallback: fx without shapes (ShapeProp may be what failed)
        gm = gm if gm is not None else trace_fx(model, None if graph.method.startswith("trace") else example_inputs)
        graph.sources = find_sources(model, graph, gm)
        return
    except Exception as e:  # never let source discovery break hidden-unit pruning
        reason = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
    if any(type(m) is nn.Embedding for m in model.modules()):
        graph.notes.append(f"the embedding width cannot be pruned: no feature source found ({reason})")


def _found(model, recurrent, example_inputs, method: DiscoveryMethod) -> tuple[CouplingGraph, object]:
    """(graph, fx GraphModule or None when the traced fallback ran)."""
    from rnnslim.graph.fx_trace import fx_coupling, trace_fx
    from rnnslim.graph.trace import trace_coupling

    if method is DiscoveryMethod.TRACE:
        if example_inputs is None:
            raise CouplingError("method='trace' needs example_inputs")
        return trace_coupling(model, recurrent, example_inputs), None
    try:
        gm = trace_fx(model, example_inputs)
        return fx_coupling(model, recurrent, example_inputs, gm), gm
    except CouplingError:
        raise
    except Exception as e:  # fx raises TraceError, TypeError, RuntimeError... for untraceable code
        if method is DiscoveryMethod.FX or example_inputs is None:
            first = next(iter(recurrent))
            raise CouplingError(
                f"torch.fx cannot trace {type(model).__name__}.forward "
                f"({type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}). "
                f"Pass example_inputs=(x, ...) so rnnslim can trace a real forward pass, or declare the consumers of "
                f"each recurrent module by hand, e.g. consumers={{'{first}': ['fc']}} (recurrent modules: "
                f"{list(recurrent)})") from e
        return trace_coupling(model, recurrent, example_inputs), None
