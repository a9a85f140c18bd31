"""Greedy RNNT decoding across chunks: the candidate's own decoder and joint, its own state carried over.

The frame loop is `core.decode.greedy_decode`'s (NeMo's greedy: up to max_symbols labels per frame, the
prediction net advanced only on a label), but the decoder state, the last label and its pending decoder output
survive between `advance` calls, the way NeMo's partial hypotheses carry them between streaming steps. TDT
models are not streamed here (none of NeMo's cache-aware recipes is TDT).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnt_tui.core.runtimes.base import Runtime


class ChunkGreedy:
    """Tokens and their absolute encoder frames, decoded chunk by chunk through `runtime`'s steps."""

    def __init__(self, runtime: Runtime, blank_id: int, max_symbols: int | None = 10) -> None:
        self.runtime = runtime
        self.blank_id = blank_id
        self.max_symbols = max_symbols
        self.state: Any = runtime.initial_state()
        self.last = blank_id
        self.pending: tuple[Any, Any] | None = None
        self.tokens: list[int] = []
        self.frames: list[int] = []
        self.offset = 0  # encoder frames decoded so far

    def advance(self, encoded: np.ndarray, length: int) -> list[int]:
        """Decode the first `length` frames of `encoded` [1,D,T]; returns the tokens this chunk emitted."""
        emitted: list[int] = []
        for t in range(length):
            frame = encoded[:, :, t:t + 1]
            symbols = 0
            while self.max_symbols is None or symbols < self.max_symbols:
                if self.pending is None:
                    self.pending = self.runtime.decoder_step(self.last, self.state)
                g, next_state = self.pending
                row = self.runtime.joint_step(frame, g)
                k = int(np.argmax(row))
                symbols += 1
                if k == self.blank_id:
                    break
                emitted.append(k)
                self.tokens.append(k)
                self.frames.append(self.offset + t)
                self.state, self.last, self.pending = next_state, k, None
        self.offset += length
        return emitted
