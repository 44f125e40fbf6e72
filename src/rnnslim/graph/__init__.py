"""Discovery of recurrent layers and of the modules that consume their units.

    from rnnslim.graph import discover_coupling, build_groups
    graph = discover_coupling(model, example_inputs=(x,))   # CouplingGraph; print(graph)
    groups = build_groups(model, graph)                      # UnitGroup per layer; print(group)
    graph.sources                                            # embedding / input Linear feeding layer 0
"""

from rnnslim.graph.coupling import (
                                    Consumer,
                                    ConsumerKind,
                                    CouplingError,
                                    CouplingGraph,
                                    FeatureSource,
                                    GroupKind,
                                    RecurrentModule,
                                    SourceKind,
)
from rnnslim.graph.discover import DiscoveryMethod, discover_coupling, find_recurrent
from rnnslim.graph.groups import Cut, TensorSlice, UnitGroup, build_groups

__all__ = ["Consumer", "ConsumerKind", "CouplingError", "CouplingGraph", "Cut", "DiscoveryMethod", "FeatureSource",
           "GroupKind", "RecurrentModule", "SourceKind", "TensorSlice", "UnitGroup", "build_groups", "discover_coupling",
           "find_recurrent"]
