"""Torch-free runtime for exported models: numpy + the compiled C library.

    from rnnslim.runtime import ExportedModel
    model = ExportedModel("exported/")      # a directory written by `rnnslim export --format c`

Importing this package never imports torch (a test checks it).
"""

from rnnslim.runtime.build import CompilerUnavailable
from rnnslim.runtime.exported import ExportedModel, ExportError, build_library, read_manifest, verify_export

__all__ = ["CompilerUnavailable", "ExportError", "ExportedModel", "build_library", "read_manifest", "verify_export"]
