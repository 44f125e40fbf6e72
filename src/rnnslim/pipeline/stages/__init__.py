"""The built-in stages: each module turns one technique's verb into a recipe stage (a typed
config registered with pipeline.stage.register_stage). The techniques (prune, quantize,
reconstruct, early_exit, lowrank) know nothing of the pipeline; the pipeline imports them here.

    prune.py        prune, prune_nm, prune_block, prune_sensitivity
    structured.py   prune_units, remove_layers, prune_vocab, group_lasso
    quantize.py     quantize_weights, ternary_weights, kmeans, half_weights, mixed_precision, qat
    int8.py         int8_dynamic, int8_static, int8_integer
    delta.py        delta (delta-network thresholds of an integer model: the kernel's delta step)
    reconstruct.py  prune_obs, quantize_gptq
    lowrank.py      lowrank, to_lstmp
    transform.py    dct_sparsify, block_circulant
    early_exit.py   early_exit
    student.py      student (replace the model by a compact student; then finetune with distillation)
"""
