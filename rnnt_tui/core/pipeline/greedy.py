"""Greedy RNNT and TDT decoding driven by any runtime's decoder step and joint step.

Mirrors NeMo's `GreedyRNNTInfer` / `GreedyTDTInfer` frame loop (max symbols per frame, the TDT duration skip and
its blank-with-duration-0 rule) so that, on the reference runtime, the tokens equal NeMo's own greedy decoding.

A runtime that decodes through a joint-decision head (`decodes_through_decision` true, e.g. a package folder with
a single-step `token_id` / `duration` head - what apps built on those packages decode with) is asked for each
step's decision with `decide_step(frame, decoder_output) -> (token, duration bin, probability)` instead of a
logits row, so its transcript comes from that head. Every other runtime goes through `joint_step` as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from rnnt_tui.core.errors import CancelledError, StepFailedError


@dataclass(frozen=True)
class DecodeResult:
    """Tokens, their frames (and TDT durations), and the prediction-net inputs the decode used."""

    tokens: list[int]
    frames: list[int]
    durations: list[int] = field(default_factory=list)
    steps: int = 0
    via: str = "joint"  # what gave each step's decision: "joint" (logits) or "decision head"

    @property
    def prednet_inputs(self) -> list[int]:
        """Blank (start) followed by every emitted token: the U axis of the joint grid."""
        return self.tokens


Decide = Callable[[np.ndarray, Any], tuple[int, int, float]]


class GreedySteps(Protocol):
    """What greedy decoding calls: every `Runtime` has it (`core.runtimes.base`), and so do the precision tools'
    program decoders and the recorder's tap."""

    @property
    def decodes_through_decision(self) -> bool: ...

    def initial_state(self) -> Any: ...

    def decoder_step(self, token: int, state: Any) -> tuple[Any, Any]: ...

    def joint_step(self, frame: np.ndarray, decoder_output: Any) -> np.ndarray: ...

    def decide_step(self, frame: np.ndarray, decoder_output: Any) -> tuple[int, int, float]: ...


def _decider(runtime: GreedySteps) -> Decide | None:
    """The runtime's decision-head step, when it decodes through one."""
    return runtime.decide_step if runtime.decodes_through_decision else None


def greedy_decode(runtime: GreedySteps, encoded: np.ndarray, length: int, blank_id: int,
                  durations: list[int] | None = None, max_symbols: int | None = 10,
                  cancel: threading.Event | None = None) -> DecodeResult:
    """Decode `encoded` [1,D,T] (first `length` frames) greedily through `runtime`'s steps."""
    tokens: list[int] = []
    frames: list[int] = []
    token_durations: list[int] = []
    state = runtime.initial_state()
    last = blank_id
    pending: tuple[Any, Any] | None = None  # decoder output for `last`, cached until a token is emitted
    n_dur = len(durations) if durations else 0
    decide = _decider(runtime)
    steps = 0
    t = 0
    while t < length:
        if cancel is not None and cancel.is_set():
            raise CancelledError("cancelled during greedy decoding")
        frame = encoded[:, :, t:t + 1]
        symbols = 0
        skip = 1
        need_loop = True
        while need_loop and (max_symbols is None or symbols < max_symbols):
            if pending is None:
                pending = runtime.decoder_step(last, state)
            g, next_state = pending
            steps += 1
            if decide is not None:
                k, bin_index, _ = decide(frame, g)
                if n_dur and not 0 <= bin_index < n_dur:
                    raise StepFailedError(f"the decision head gave duration bin {bin_index} at frame {t}; the model "
                                          f"has {n_dur} durations {durations}")
                if n_dur:
                    skip = int(durations[bin_index])  # type: ignore[index]
            else:
                row = runtime.joint_step(frame, g).astype(np.float32, copy=False)
                token_row = row[: row.shape[0] - n_dur] if n_dur else row
                k = int(np.argmax(token_row))
                if n_dur:
                    skip = int(durations[int(np.argmax(row[row.shape[0] - n_dur:]))])  # type: ignore[index]
            if k != blank_id:
                tokens.append(k)
                frames.append(t)
                if n_dur:
                    token_durations.append(skip)
                state, last, pending = next_state, k, None
            symbols += 1
            if n_dur:
                t += skip
                need_loop = skip == 0
            else:
                need_loop = k != blank_id
        if n_dur:
            if max_symbols is not None and symbols == max_symbols:
                t += 1
        else:
            t += 1
    return DecodeResult(tokens=tokens, frames=frames, durations=token_durations, steps=steps,
                        via="decision head" if decide is not None else "joint")
