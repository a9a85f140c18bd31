"""The component contract every runtime honours: names, tensor names, layouts and dtypes.

All tensors cross the runtime seam as numpy arrays, batch 1:

- preprocessor: audio_signal [1,S] f32, length [1] i64 -> features [1,F,Tf] f32, features_length [1] i64
- encoder: features [1,F,Tf] f32, features_length [1] i64 -> encoded [1,D,T] f32, encoded_length [1] i64
- decoder (one step): targets [1,1] i64, h [L,1,H] f32, c [L,1,H] f32 -> decoder_output [1,H,1] f32, h, c
- joint: encoded [1,D,T] f32, decoder_output [1,H,U] f32, targets [1,U] i64 -> logits [1,T,U,C] f32,
  C = V+1 (+ the TDT durations)

The decoder step takes the previous token (blank as start-of-sequence) and never prepends a start token. The
joint's `targets` are the prediction-net inputs that produced `decoder_output` (blank first, then the emitted
tokens); a runtime whose joint graph contains its own prediction net (NeMo's ONNX `decoder_joint`) uses those
instead of `decoder_output`. Candidates may emit float16; statistics upcast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PREPROCESSOR = "preprocessor"
ENCODER = "encoder"
DECODER = "decoder"
JOINT = "joint"
COMPONENTS = (PREPROCESSOR, ENCODER, DECODER, JOINT)
STEPS = (*COMPONENTS, "decode")

INPUTS = {
    PREPROCESSOR: ("audio_signal", "length"),
    ENCODER: ("features", "features_length"),
    DECODER: ("targets", "h", "c"),
    JOINT: ("encoded", "decoder_output", "targets"),
}
OUTPUTS = {
    PREPROCESSOR: ("features", "features_length"),
    ENCODER: ("encoded", "encoded_length"),
    DECODER: ("decoder_output", "h", "c"),
    JOINT: ("logits",),
}
LENGTH_OUTPUTS = frozenset({"features_length", "encoded_length"})


@dataclass(frozen=True)
class TensorInfo:
    """A tensor's name, shape and dtype, as shown in tables and JSON."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @classmethod
    def of(cls, name: str, array: Any) -> TensorInfo:
        if not hasattr(array, "shape"):
            import numpy as np  # only for lists; the app's process reads these without importing numpy

            array = np.asarray(array)
        arr = array
        return cls(name=name, shape=tuple(int(d) for d in arr.shape), dtype=str(arr.dtype).replace("torch.", ""))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


def describe(arrays: dict[str, Any]) -> list[TensorInfo]:
    return [TensorInfo.of(name, value) for name, value in arrays.items()]
