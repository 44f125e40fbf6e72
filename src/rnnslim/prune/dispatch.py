"""`prune_(model, config, example_inputs=..., calibration=...)`: the pruning verb.

It is rnnslim.verbs.prune_: one dispatch for every family, keyed by the config's class.
Each pruning config registers its method where it is defined, with
`@register(Family.PRUNE, ConfigClass)` (rnnslim.verbs); this module only names the verb
for `from rnnslim.prune import prune_`.
"""

from collections.abc import Callable

from rnnslim.verbs import Family, prune_, register


def register_pruner(config_cls: type) -> Callable[[Callable], Callable]:
    """Older spelling of `register(Family.PRUNE, config_cls)` (the same registry)."""
    return register(Family.PRUNE, config_cls)


__all__ = ["prune_", "register_pruner"]
