"""rnnslim.quantize's lazy exports: every name resolves to the object of its module, the result
types of quantize_ / apply_plan_ included, and the package docstring lists every module."""

from pathlib import Path

import rnnslim.quantize as quantize
from rnnslim.quantize.api import QuantizeResult
from rnnslim.quantize.mixed import MixedPrecisionResult


def test_every_export_resolves_and_the_result_types_are_there():
    for name in quantize.__all__:
        assert getattr(quantize, name) is not None, name
    assert quantize.QuantizeResult is QuantizeResult
    assert quantize.MixedPrecisionResult is MixedPrecisionResult
    assert issubclass(quantize.MixedPrecisionResult, quantize.QuantizeResult)


def test_docstring_lists_every_module_of_the_package():
    folder = Path(quantize.__file__).parent
    for path in folder.glob("*.py"):
        if path.name != "__init__.py":
            assert f"- {path.name} " in quantize.__doc__ or f"; {path.name} " in quantize.__doc__, path.name
