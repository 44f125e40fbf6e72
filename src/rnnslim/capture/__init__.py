"""Capture a user's recurrent nn.Module as an rnnslim SequenceModel (issue 20).

    from rnnslim.capture import capture, user_view, evaluate, CaptureError

    model = capture(my_module, (x, None))        # float SequenceModel, parity-checked
    quantize_int8_(model, Int8Config(mode="integer"), calibration=batches)
    acc = evaluate(model, my_batches, my_metric)  # the user's own data loop and metric
    export_model(model, "c", "out/")             # bit-exact C, like any rnnslim model

The captured model is the one representation that the integer lowering, the C export and
the runtime consume; `model.capture_info` says how to call it the user's way (user_view).
"""

from rnnslim.capture.api import capture
from rnnslim.capture.errors import CaptureError
from rnnslim.capture.evaluate import evaluate
from rnnslim.capture.record import layout_record
from rnnslim.capture.view import UserView, user_view
from rnnslim.models.capture_info import CaptureInfo

__all__ = ["capture", "user_view", "evaluate", "CaptureError", "CaptureInfo", "UserView", "layout_record"]
