"""Greedy RNNT and TDT decoding driven by any runtime's decoder step and joint step.

Mirrors NeMo's `GreedyRNNTInfer` / `GreedyTDTInfer` frame loop (max symbols per frame, the TDT duration skip and
its blank-with-duration-0 rule) so that, on the reference runtime, the tokens equal NeMo's own greedy decoding.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rnnt_tui.core.errors import CancelledError
from rnnt_tui.core.runtimes.base import Runtime


@dataclass(frozen=True)
class DecodeResult:
    """Tokens, their frames (and TDT durations), and the prediction-net inputs the decode used."""

    tokens: list[int]
    frames: list[int]
    durations: list[int] = field(default_factory=list)
    steps: int = 0

    @property
    def prednet_inputs(self) -> list[int]:
        """Blank (start) followed by every emitted token: the U axis of the joint grid."""
        return self.tokens


def greedy_decode(runtime: Runtime, encoded: np.ndarray, length: int, blank_id: int,
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
            row = runtime.joint_step(frame, g).astype(np.float32, copy=False)
            steps += 1
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
    return DecodeResult(tokens=tokens, frames=frames, durations=token_durations, steps=steps)
