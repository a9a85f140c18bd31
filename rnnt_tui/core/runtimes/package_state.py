"""A stateful decoder's Core ML state, carried from step to step of a decode by `PackageRuntime`.

A stateful decoder package (`ct.StateType`, `description.state`, macOS 15+) keeps the prediction net's h and c in
Core ML states: `predict(feed, state=)` reads them and updates them in place, so h and c are neither fed nor
returned. The engine's state object (`MLModel.make_state()` on a Mac, coremltools 9.0's `MLState`; the MIL
interpreter's `ProgramState` elsewhere - both have `read_state(name)` / `write_state(name, value)`) is made once
per decode by `initial_state`, which also writes the reference's start state (zeros) into it, as NeMo starts
each utterance from zeros.

Greedy decoding's contract is functional: `decoder_step(token, state)` returns the next state and leaves `state`
usable, because the decoder state advances only on a non-blank token - a caller that gets blank from the joint
steps again from the old state (NeMo's own loop does; rnnt-tui's greedy loop keeps the pending decoder output
instead). An in-place state cannot give that by itself, so each step reads h and c back (`read_state`, two small
reads: what the stateless path gets as its h_out / c_out outputs) into a `DecoderState`, and a step from a state
the engine no longer holds first writes that state's h and c back (`write_state`): a rollback, counted in
`StateCarrier.rollbacks`. A decode that only moves forward never writes.

Must not: know which engine runs the program (the runtime passes its state object and feed dtypes in).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from rnnt_tui.core.coreml.matching import PackageInfo

#: the contract's names of the two states
STATE_KEYS = ("h", "c")


class StateCarrier:
    """One engine state object (of one decode, or of one bound call) and the `DecoderState` it holds now."""

    def __init__(self, engine: Any, info: PackageInfo, feed_dtypes: dict[str, Any]) -> None:
        self.engine = engine
        self.names = {k: info.states[k] for k in STATE_KEYS}
        specs = {k: info.spec.state(name) for k, name in self.names.items()}
        self.shapes = {k: s.shape for k, s in specs.items()}
        self.declared = {k: np.dtype(s.dtype) for k, s in specs.items()}
        #: what the engine's `write_state` accepts (Core ML: float32 for a float16 state; it converts itself)
        self.fed = {k: np.dtype(feed_dtypes.get(s.dtype, np.float32)) for k, s in specs.items()}
        self.holds: DecoderState | None = None
        self.rollbacks = 0

    def write(self, h: np.ndarray, c: np.ndarray) -> None:
        for key, value in zip(STATE_KEYS, (h, c), strict=True):
            self.engine.write_state(self.names[key], np.ascontiguousarray(np.asarray(value), dtype=self.fed[key]))

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """h and c as the states hold them (Core ML hands float16 buffers over as float32: cast back, exactly)."""
        h, c = (np.asarray(self.engine.read_state(self.names[k])).astype(self.declared[k]) for k in STATE_KEYS)
        return h, c

    def start(self) -> DecoderState:
        """Write the start state (zeros, as the reference starts) and return it as the state held."""
        h, c = (np.zeros(self.shapes[k], self.declared[k]) for k in STATE_KEYS)
        self.write(h, c)
        self.holds = DecoderState(self, h, c)
        return self.holds

    def enter(self, state: DecoderState) -> None:
        """Make the engine hold `state` before a step: a rollback (write_state) when it holds another one."""
        if self.holds is not state:
            self.write(state.h, state.c)
            self.rollbacks += 1
            self.holds = state

    def advanced(self) -> DecoderState:
        """After a step: the state the engine now holds, read back."""
        self.holds = DecoderState(self, *self.read())
        return self.holds


class DecoderState:
    """A point of one decode's prediction-net state: h and c (read back after the step that made them) and the
    carrier whose engine state they live in. Unpacks and indexes like the stateless path's (h, c) pair."""

    __slots__ = ("c", "carrier", "h")

    def __init__(self, carrier: StateCarrier, h: np.ndarray, c: np.ndarray) -> None:
        self.carrier, self.h, self.c = carrier, h, c

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.h, self.c))

    def __getitem__(self, index: int) -> np.ndarray:
        return (self.h, self.c)[index]

    def __len__(self) -> int:
        return 2


def bound_step(carrier: StateCarrier, h: np.ndarray, c: np.ndarray, execute: Callable[[Any], dict[str, Any]],
               outputs: Callable[[dict[str, Any]], dict[str, np.ndarray]]
               ) -> tuple[Callable[[], Any], Callable[[Any], dict[str, np.ndarray]]]:
    """(call, convert) of one decoder step bound to given h and c, as the stateless contract has it: each call
    writes h and c into `carrier`'s state first (so repeated timed calls start from the same state), executes
    (`execute(engine state)`), and reads them back; `convert` gives the outputs plus h and c."""
    h, c = np.asarray(h), np.asarray(c)

    def call() -> tuple[dict[str, Any], tuple[np.ndarray, np.ndarray]]:
        carrier.write(h, c)
        raw = execute(carrier.engine)
        return raw, carrier.read()

    def convert(result: tuple[dict[str, Any], tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
        raw, (h_out, c_out) = result
        return {**outputs(raw), "h": h_out, "c": c_out}

    return call, convert
