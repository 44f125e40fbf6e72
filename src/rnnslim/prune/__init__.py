"""Pruning: importance criteria, masks that hold during training, unstructured / N:M /
block patterns, AGP schedules, sensitivity analysis (structured pruning: structured/).

One verb for every pruning config (rnnslim.verbs): prune_(model, config, example_inputs=...,
calibration=..., task=..., data=...). Configs: UnstructuredPruning, NMPruning, BlockPruning,
StructuredPruning, LayerRemoval, VocabPruning, GradualPruning, GroupLassoPruning, and
OBSPruning (rnnslim.reconstruct). The older per-method verbs (prune_units_, remove_layers_,
prune_gradual_, ...) stay for their extra arguments.

Re-exports only; heavy work happens in the submodules.
"""

from rnnslim.prune.common import PruneResult
from rnnslim.prune.dispatch import prune_
from rnnslim.prune.gradual import GradualPruning, GradualResult, prune_gradual_

# structured (physically smaller) pruning; imported last, it registers with prune_
from rnnslim.prune.group_lasso import GroupLasso, GroupLassoPruning, GroupLassoResult, remove_dead_units_  # noqa: E402
from rnnslim.prune.importance import (
    Calibration,
    Criterion,
    activation_scores,
    as_calibration,
    fisher_scores,
    magnitude,
    magnitude_scores,
    per_gate_row,
    per_unit,
    score_model,
    taylor_scores,
)
from rnnslim.prune.masks import (
    apply_masks_,
    mark_sparse_,
    mask_hook,
    masks_from_model,
    sparsity_report,
)
from rnnslim.prune.patterns import (
    BlockPruning,
    NMPruning,
    block_mask,
    nm_mask,
    prune_block_,
    prune_nm_,
)
from rnnslim.prune.schedules import AGPSchedule, agp_sparsity
from rnnslim.prune.sensitivity import sensitivity
from rnnslim.prune.structured import (  # noqa: E402
    StructuredPruning,
    StructuredResult,
    keep_units_,
    prune_units_,
)
from rnnslim.prune.structured.edits import LayerRemoval, LayerRemovalResult, VocabPruning  # noqa: E402
from rnnslim.prune.structured.history import load_edited, replay, save_edited  # noqa: E402
from rnnslim.prune.structured.layers import remove_layers_  # noqa: E402
from rnnslim.prune.structured.vocab import prune_vocab_  # noqa: E402
from rnnslim.prune.targets import TargetKind, prunable_tensors
from rnnslim.prune.unstructured import Scope, UnstructuredPruning, prune_unstructured_

__all__ = [
    "AGPSchedule", "BlockPruning", "Calibration", "Criterion", "GradualPruning", "NMPruning", "PruneResult", "Scope",
    "TargetKind", "UnstructuredPruning", "activation_scores", "agp_sparsity", "apply_masks_", "as_calibration",
    "block_mask", "fisher_scores", "magnitude", "magnitude_scores", "mark_sparse_", "mask_hook", "masks_from_model",
    "nm_mask", "per_gate_row", "per_unit", "prunable_tensors", "prune_", "prune_block_", "prune_gradual_", "prune_nm_",
    "prune_unstructured_", "score_model", "sensitivity", "sparsity_report", "taylor_scores",
    "GradualResult", "GroupLasso", "GroupLassoPruning", "GroupLassoResult", "LayerRemoval", "LayerRemovalResult",
    "VocabPruning", "StructuredPruning", "StructuredResult", "keep_units_", "load_edited", "prune_units_",
    "prune_vocab_",
    "remove_dead_units_", "remove_layers_", "replay", "save_edited",
]
