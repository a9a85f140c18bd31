"""The inputs a component's first call had in a session that has run, for a drift search on that one call.

Reads a pipeline session (its clip, the reference's upstream data and the candidate's restored model), so it lives
with the pipeline, not with the Core AI conversion: `core.coreai.drift.find_drift` takes the arrays and reads no
session. The component's step must have run in the session (its upstream data is read). Nothing here runs a
model.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def drift_inputs(session: Any, component: str) -> dict[str, np.ndarray]:
    """The contract-named inputs of `component`'s first call in a session that has run (the reference's upstream
    data), shaped as the Core AI export takes them: time axes zero-padded to the declared multiple, lengths real."""
    from rnnt_tui.core.coreai.convert import time_multiple  # the conversion's own rule, only for a Core AI search

    loaded = session.candidate.loaded
    up = session.ctx.upstream

    def padded(value: np.ndarray, axis: int, multiple: int) -> np.ndarray:
        size = max(-(-value.shape[axis] // multiple), 2) * multiple
        pad = [(0, 0)] * value.ndim
        pad[axis] = (0, size - value.shape[axis])
        return np.pad(value, pad)

    if component == "preprocessor":
        signal = session.ctx.audio.samples[None, :].astype(np.float32)  # the preprocessor's contract inputs
        return {"audio_signal": padded(signal, 1, time_multiple(loaded, component)),
                "length": np.array([signal.shape[1]], dtype=np.int32)}
    if component == "encoder":
        feats = up.features
        return {"features": padded(feats["features"], 2, time_multiple(loaded, component)),
                "features_length": np.asarray(feats["features_length"]).astype(np.int32)}
    if component == "decoder":
        state = session.reference.initial_state()
        h = np.asarray(state[0].detach() if hasattr(state[0], "detach") else state[0], dtype=np.float32)
        c = np.asarray(state[1].detach() if hasattr(state[1], "detach") else state[1], dtype=np.float32)
        return {"targets": np.array([[session.facts.summary.blank_id]], dtype=np.int32), "h": h, "c": c}
    encoded = up.encoded["encoded"]
    return {"encoded": encoded[:, :, : min(encoded.shape[2], 32)],
            "decoder_output": np.asarray(up.decoder["decoder_output"], dtype=np.float32)}
