"""`prune_(model, config, example_inputs=..., calibration=...)`: the pruning verb.

It is rnnslim.verbs.prune_: one dispatch for every family, keyed by the config's class.
Each pruning config registers its method where it is defined, with
`@register(Family.PRUNE, ConfigClass)` (rnnslim.verbs); this module only names the verb
for `from rnnslim.prune import prune_`.
"""

from rnnslim.verbs import prune_

__all__ = ["prune_"]
