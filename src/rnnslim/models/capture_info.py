"""CaptureInfo: how a captured SequenceModel relates to the user's own nn.Module.

rnnslim.capture lowers a user's module into a SequenceModel (time-major, logits out). This
record keeps what is needed to call the captured model the way the user called theirs
(rnnslim.capture.user_view) and to say where every tensor came from. It lives in models/ so
that save_model / load_model (rnnslim.io.format) keep it in the manifest ("capture" field)
without importing the capture package.

Axis roles: "T" time, "B" batch, "F" features (token ids have no "F" axis).
    input_axes  ["B", "T", "F"]            the user's data input, here batch first
    output_axes [["T", "B"], ["F"]]        the user's main output: time and batch merged into one
                                           axis (word_language_model's decoded.view(-1, ntoken))
    arguments   ["data", "state:0"]        role of each of forward's positional arguments (names in
                                           argument_names): the data, the state of recurrent
                                           module 0 (torch layout), or "unused"
    returns     ["out", "state:0"]         forward's result: a tensor "out", or a list (a tuple
                                           in the user's code) of "out" / "state:k"
    modules     [[0, 2], [2, 3]]           stack layers [first, end) of each user recurrent module
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from rnnslim.models.sequence import OutputActivation


class CaptureParity(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    max_rel_error: float = Field(ge=0.0, description="max |captured - user| / max |user| over the outputs")
    rtol: float = Field(gt=0.0)
    outputs_compared: int = Field(ge=1)


class CaptureInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    source_class: str
    layout: str = Field(description="batch_first, time_major, or the input's axis roles joined by commas")
    input_axes: list[str]
    output_axes: list[list[str]]
    output_activation: OutputActivation = OutputActivation.NONE
    arguments: list[str]
    argument_names: list[str]
    returns: str | list[str]
    modules: list[tuple[int, int]] = Field(default_factory=list)
    module_kinds: list[str] = Field(default_factory=list, description="per user recurrent module: torch (nn.LSTM "
                                    "/ GRU / RNN, one state tensor set) or per_layer (rnnslim's stack of unequal layers)")
    tensor_names: dict[str, str] = Field(default_factory=dict, description="user tensor -> rnnslim tensor; "
                                         "'(folded into X)' where a normalisation was folded")
    state_input: str = Field(default="none", description="how the example's state inputs looked: none / zeros "
                             "(the captured model starts from zeros unless a state is passed)")
    parity: CaptureParity | None = None
    notes: list[str] = Field(default_factory=list)
