"""Model files: safetensors weights + a versioned JSON manifest. No pickle anywhere.

Two formats, both a directory holding one JSON manifest and one safetensors file, both
written atomically (a temporary directory renamed into place), both integrity-checked
(weights_sha256 is required when loading):

1. The model directory (io/format.py: save_model / load_model): a SequenceModel, rebuilt
   from its description alone.

       model.json          format "rnnslim-model", version 1
         spec              ModelSpec (architecture, per-layer sizes)
         task              task metadata (task name, vocabulary, classes, normalisation, ...)
         tensors           {name: {encoding, shape, dtype, parts, ...}} (dense, sparse, quantized, ...)
         modules           [{path, kind, config}] non-torch modules (quantized layers) to rebuild
         history           records of what produced this model (stages, structural edits)
         capture           (optional) rnnslim.capture's record of the user module it came from
         weights_file, weights_sha256
       model.safetensors   the tensors' stored parts (io/encodings.py: one part per suffix)

   The reference models in ../shared/models (NAME.json + NAME.safetensors, no "format"
   field) load through the same function.

2. The edited directory (io/edited.py: save_edited / restore_edited, rnnslim.load_edited): a
   user's own nn.Module after rnnslim edited it. Its class cannot be described, so loading
   starts from a fresh instance of the user's code and replays the structural history.

       edited.json         format "rnnslim-edited", version 1
         history           the structural records (prune_units, remove_layers, prune_vocab) + notes
         tensors, modules, weights_file, weights_sha256   as in model.json
       weights.safetensors

Tensor encodings (io/encodings.py: dense, sparse_bitmap, sparse_csr, sparse_auto, lzma, and
the transform codes of io/transform_encoding.py) and module kinds (io/modules.py) are shared
by both formats and are registries, so a new storage plugs in without a format change.
"""
