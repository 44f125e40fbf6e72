"""Reconstruction from calibration data: second-order (OBS-family) one-shot pruning and
error-compensating quantization of LSTM/GRU/RNN and Linear weights, and least-squares
re-fits of the consumers of removed hidden units.

    from rnnslim.reconstruct import prune_obs_, OBSPruning, quantize_gptq_, GPTQ
    prune_obs_(model, OBSPruning(sparsity=0.7), calibration=task)     # SparseGPT-style
    quantize_gptq_(model, GPTQ(bits=2, group_size=64), calibration=task)
"""

from rnnslim.reconstruct.gptq import GPTQ, quantize_gptq_
from rnnslim.reconstruct.sparsegpt import OBSPattern, OBSPruning, prune_obs_

__all__ = ["GPTQ", "OBSPattern", "OBSPruning", "prune_obs_", "quantize_gptq_"]
