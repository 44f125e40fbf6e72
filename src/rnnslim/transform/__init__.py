"""Transform-domain compression: weights stored as sparse DCT coefficients or as
block-circulant matrices, rebuilt into dense weights for the unchanged torch kernels.

    dct_sparsify_(model, DCTSparsity(target_bytes_fraction=0.2, block=(8, 8), bits=8))
    block_circulant_(model, BlockCirculant(block=8))
    rnnslim.factorize_(model, BlockCirculant(block=8))    # the same through the factorization verb
    hook = projection_hook(model)     # fine-tuning that stays in the subspace

Re-exports only; storage is rnnslim.io.transform_encoding.
"""

from rnnslim.transform.circulant import BlockCirculant, block_circulant_
from rnnslim.transform.common import TransformResult
from rnnslim.transform.dct import DCTSparsity, ScaleMode, dct_sparsify_
from rnnslim.transform.projection import ProjectionHook, projection_hook, reproject_

__all__ = ["BlockCirculant", "DCTSparsity", "ProjectionHook", "ScaleMode", "TransformResult", "block_circulant_",
           "dct_sparsify_", "projection_hook", "reproject_"]
