"""Which streaming encoder step each candidate runs: one table for the comparison, the recorder and the replay.

Its own module because the Core AI step builds on `core.stream.steps`, so the table cannot live there.
"""

from __future__ import annotations

from rnnt_tui.core.stream.coreai_step import CoreAIStateStreamStep, CoreAIStreamStep
from rnnt_tui.core.stream.state_step import CoreMLStateStreamStep, MilStateStreamStep
from rnnt_tui.core.stream.steps import CoreMLStreamStep, MilStreamStep, OnnxStreamStep, StreamStep

#: each candidate's streaming encoder step
STEPS: dict[str, type[StreamStep]] = {"onnx": OnnxStreamStep, "mil": MilStreamStep, "coreml": CoreMLStreamStep,
                                      "coreai": CoreAIStreamStep}
#: the candidates whose step can carry the caches in Core ML or Core AI states instead (`--cache-states`)
STATE_STEPS: dict[str, type[StreamStep]] = {"mil": MilStateStreamStep, "coreml": CoreMLStateStreamStep,
                                            "coreai": CoreAIStateStreamStep}
