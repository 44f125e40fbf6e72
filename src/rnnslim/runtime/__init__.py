"""Torch-free runtime for exported models: numpy + the compiled C library.

    from rnnslim.runtime import ExportedModel
    model = ExportedModel("exported/")      # a directory written by `rnnslim export --format c`
    ids = model.tokens.encode("To be")      # a char / word model's text -> ids (TokenTable), as on the device

Importing this package never imports torch (a test checks it).
"""

from rnnslim.runtime.build import CompilerUnavailable
from rnnslim.runtime.exported import ExportedModel, ExportError, build_library, read_manifest, verify_export
from rnnslim.runtime.tokens import TokenTable

__all__ = ["CompilerUnavailable", "ExportError", "ExportedModel", "TokenTable", "build_library", "read_manifest",
           "verify_export"]
