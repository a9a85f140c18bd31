"""Kernels of MIL's state ops (iOS18 opset: `read_state`, `coreml_update_state`, `write_state`), for stateful
programs (`ct.StateType`, Core ML states, macOS 15+).

A state is held in a `StateBox` the caller feeds under the state's name (`MilProgram` makes them); `read_state`
returns a copy of its value, `coreml_update_state` / `write_state` replace it (cast to the state's dtype) and the
caller reads the boxes back after the run. `ProgramState` is the interpreter's counterpart of Core ML's `MLState`
(`MilProgram.make_state`): boxes that live across runs, updated in place by each run, with the same
`read_state` / `write_state` as coremltools 9.0's `MLState`. Semantics from coremltools' op definitions
(`converters/mil/mil/ops/defs/iOS18/states.py`, `coreml_dialect/ops.py`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnt_tui.core.mil.kernels_base import Args, OpMeta, kernel


class StateBox:
    """One state buffer of a stateful program, read and written by the state ops of one run."""

    def __init__(self, value: np.ndarray) -> None:
        self.value = np.array(value)

    def write(self, value: Any) -> None:
        new = np.asarray(value)
        if new.shape != self.value.shape:
            raise ValueError(f"state of shape {list(self.value.shape)} written with shape {list(new.shape)}")
        self.value = new.astype(self.value.dtype)


class ProgramState:
    """The state buffers of one stateful program across runs (what `MLModel.make_state()` gives on a Mac)."""

    def __init__(self, boxes: dict[str, StateBox]) -> None:
        self.boxes = boxes

    def read_state(self, name: str) -> np.ndarray:
        """A copy of the state's current value (`MLState.read_state`)."""
        return np.array(self._box(name).value)

    def write_state(self, name: str, value: np.ndarray) -> None:
        """Replace the state's value, cast to its dtype (`MLState.write_state`)."""
        self._box(name).write(value)

    def _box(self, name: str) -> StateBox:
        if name not in self.boxes:
            raise KeyError(f"no state named {name!r} (the program has {', '.join(self.boxes) or 'none'})")
        return self.boxes[name]


@kernel("read_state")
def _read_state(a: Args, m: OpMeta) -> Any:
    return np.array(a["input"].value)


@kernel("coreml_update_state")
def _coreml_update_state(a: Args, m: OpMeta) -> Any:
    a["state"].write(a["value"])
    return np.asarray(a["value"])


@kernel("write_state")
def _write_state(a: Args, m: OpMeta) -> Any:
    a["input"].write(a["data"])
    return ()
