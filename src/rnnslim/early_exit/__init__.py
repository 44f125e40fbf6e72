"""Early exit for stacked recurrent classifiers: a small head after each recurrent layer, and
inference that stops a sample at the first confident exit, really skipping the upper layers
(and, streaming, the rest of the sequence).

    from rnnslim.early_exit import EarlyExit, add_exits_, train_exits_, calibrate_exits_, exit_predict

    add_exits_(model, EarlyExit(train_mode="joint"))          # model.exits: L - 1 heads
    train_exits_(model, task, EarlyExit(), TrainConfig(max_steps=300))
    cal = calibrate_exits_(model, task, max_drop=0.01)              # threshold: <= 1 point lost on valid
    r = exit_predict(model, x)                                # r.logits, r.exit_layer, r.fraction
    save_model(model, "out")                                  # heads + thresholds travel with it

Confidence: the largest softmax probability of an exit. Works on rnnslim SequenceModels with
2 or more recurrent layers (LSTM, GRU, RNN) and readout "last" or "mean"; language models,
forecasters, single-layer models and other modules get a clear error. The pipeline stage is
`early_exit` (rnnslim.pipeline.stages.early_exit); `rnnslim eval` / `measure` report the exit
metrics of a calibrated model (rnnslim.early_exit.tally).
"""

from rnnslim.early_exit.calibrate import Calibration, calibrate_exits_
from rnnslim.early_exit.config import EarlyExit, TrainMode
from rnnslim.early_exit.heads import ExitHeads, add_exits_, exits_of
from rnnslim.early_exit.infer import ExitResult, exit_predict
from rnnslim.early_exit.tally import exit_tally  # registers the exits' evaluation metrics with rnnslim.tasks
from rnnslim.early_exit.timing import measure_exit_speed
from rnnslim.early_exit.training import train_exits_

__all__ = ["Calibration", "EarlyExit", "ExitHeads", "ExitResult", "TrainMode", "add_exits_", "calibrate_exits_",
           "exit_predict", "exit_tally", "exits_of", "measure_exit_speed", "train_exits_"]
