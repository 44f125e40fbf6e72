"""Reconstruction from calibration data: second-order (OBS-family) one-shot pruning and
error-compensating quantization of LSTM/GRU/RNN and Linear weights, and least-squares
re-fits of the consumers of removed hidden units.

    from rnnslim.reconstruct import prune_obs_, OBSPruning, quantize_gptq_, GPTQ
    prune_obs_(model, OBSPruning(sparsity=0.7), calibration=task)     # SparseGPT-style
    quantize_gptq_(model, GPTQ(bits=2, group_size=64), calibration=task)
    gptq_int8_weights_(model, task)      # then quantize_int8_: the int8 paths run GPTQ's codes
    refit_after_cut_(model, original, prune_units_(model, cfg), task)   # after a structured cut
"""

from rnnslim.reconstruct.gptq import GPTQ, quantize_gptq_
from rnnslim.reconstruct.gptq_int8 import gptq_int8_weights_
from rnnslim.reconstruct.refit import refit_after_cut_
from rnnslim.reconstruct.sparsegpt import OBSPattern, OBSPruning, prune_obs_

__all__ = ["GPTQ", "OBSPattern", "OBSPruning", "gptq_int8_weights_", "prune_obs_", "quantize_gptq_",
           "refit_after_cut_"]
