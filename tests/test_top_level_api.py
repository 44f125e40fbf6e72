"""One verb per family at the top level: rnnslim.prune_ / rnnslim.quantize_ with any config."""

from __future__ import annotations

import subprocess
import sys

import torch

import rnnslim


def test_one_verb_per_family():
    spec = rnnslim.ModelSpec(cell="lstm", input_kind="embedding", input_size=20, embed_size=16,
                             layers=[{"hidden_size": 32}] * 2, output_size=20)
    x = torch.randint(0, 20, (6, 2))
    for cfg in (rnnslim.StructuredPruning(ratio=0.5), rnnslim.UnstructuredPruning(sparsity=0.5),
                rnnslim.NMPruning(n=2, m=4), rnnslim.BlockPruning(sparsity=0.5)):
        m = rnnslim.SequenceModel(spec).eval()
        rnnslim.prune_(m, cfg)
        assert m(x)[0].shape == (6, 2, 20)
    for cfg in (rnnslim.WeightOnly(bits=4), rnnslim.Int8Config(mode="dynamic")):
        m = rnnslim.SequenceModel(spec).eval()
        rnnslim.quantize_(m, cfg)
        assert m(x)[0].shape == (6, 2, 20)


def test_import_is_lazy():
    code = "import sys, rnnslim; assert 'torch' not in sys.modules; rnnslim.__version__"
    subprocess.run([sys.executable, "-c", code], check=True)
