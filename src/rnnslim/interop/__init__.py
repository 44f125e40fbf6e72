"""Import recurrent models trained elsewhere (Keras, ONNX) as rnnslim SequenceModels.

    from rnnslim.interop import import_keras, import_onnx
    model = import_keras("kws.keras")   # or import_onnx("lm.onnx")

Each importer converts the weights to torch's layout and gate order (rnnslim.interop.assemble
builds the model) and checks the result against the source framework on random inputs
(max relative error 1e-5), so the imported model goes on through compression, the integer
int8 kernel and the C export like a model trained with rnnslim. Keras and onnx/onnxruntime
are optional extras, imported only when an importer runs.
"""

from rnnslim.interop.keras import import_keras
from rnnslim.interop.onnx_import import import_onnx

__all__ = ["import_keras", "import_onnx"]
