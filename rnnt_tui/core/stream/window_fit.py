"""How much audio the candidate takes in one call, and so the window a windowed run uses.

Window-sized packages (the common Parakeet Core ML export takes a fixed 15 s of audio) are how apps run offline
models on long audio: a clip longer than the package's window runs in windows of it instead of being refused
(`stream --packages DIR`, the window read from the package when `--window` is not given). The capacity comes from
the declared shapes (`Runtime.time_capacity`) of the candidate's encoder (feature frames, turned into the longest
audio whose reference features fit, by the reference preprocessor itself) or of its fused mel+encoder (samples).
A window plus its mel left context longer than that is refused naming the file, before any window runs: the package
would refuse it at the first window anyway, after NeMo's full work on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnt_tui.core.components import ENCODER
from rnnt_tui.core.coreml.matching import MEL_ENCODER
from rnnt_tui.core.errors import BadInputError
from rnnt_tui.core.stream.config import StreamRequest

#: the shortest window `stream --window` takes (its option's lower bound)
MIN_WINDOW_S = 0.5


@dataclass(frozen=True)
class WindowFit:
    """The window a run uses, and the line that says where it came from (None: the user's `--window`)."""

    window_s: float
    note: str | None


def encoder_of(candidate: Any) -> str:
    """The component that turns the candidate's window into encoder frames: its encoder, or a fused mel+encoder
    when that is all it has (fed audio, not features)."""
    return MEL_ENCODER if ENCODER not in candidate.components and MEL_ENCODER in candidate.heads else ENCODER


def _floor_ms(seconds: float) -> float:
    return math.floor(seconds * 1000 + 1e-6) / 1000


def capacity_s(candidate: Any, features: Callable[[np.ndarray], dict[str, np.ndarray]], rate: int,
               hop: int) -> tuple[float, Any] | None:
    """(seconds of audio one call of the candidate's encoder takes, its `TimeCapacity`); None: any length."""
    component = encoder_of(candidate)
    cap = candidate.time_capacity(component)
    if cap is None:
        return None
    if component == MEL_ENCODER:
        return _floor_ms(cap.size / rate), cap
    samples = cap.size * hop
    while samples > hop and features(np.zeros(samples, np.float32))["features"].shape[2] > cap.size:
        samples -= hop
    return _floor_ms(samples / rate), cap


def fit_window(request: StreamRequest, capacity: tuple[float, Any] | None) -> WindowFit:
    """The window for `request` against a candidate taking `capacity` (from `capacity_s`); BadInputError naming the
    file when the asked window (with its mel left context) does not fit, or when none was asked and the file
    declares no one window."""
    lead = request.mel_left_s
    if capacity is None:
        if request.window_s is None:
            raise BadInputError(request.packages_dir, "its packages take any length, so they set no window: give "
                                                      "--window S")
        return _checked(request, WindowFit(request.window_s, None))
    seconds, cap = capacity
    mel = f" + --mel-left {lead:g} s" if lead else ""
    if request.window_s is None:
        if not cap.fixed:
            raise BadInputError(cap.path, f"it takes any length up to {seconds:g} s of audio, not one fixed window: "
                                          "give --window S")
        window = _floor_ms(seconds - lead)
        if window < MIN_WINDOW_S:
            raise BadInputError(cap.path, f"its fixed window holds {seconds:g} s of audio: no room for a window "
                                          f"after --mel-left {lead:g} s")
        less = f", less the {lead:g} s of mel left context fed before each window" if lead else ""
        return _checked(request, WindowFit(window, f"window {window:g} s: {cap.path.name} takes a fixed "
                                                   f"{seconds:g} s of audio per call{less}"))
    if request.window_s + lead > seconds + 1e-6:
        fixed = " (its fixed window)" if cap.fixed else ""
        raise BadInputError(cap.path, f"--window {request.window_s:g} s{mel} is longer than the {seconds:g} s of "
                                      f"audio it takes in one call{fixed}; give --window "
                                      f"{_floor_ms(seconds - lead):g} or less")
    return _checked(request, WindowFit(request.window_s, None))


def _checked(request: StreamRequest, fit: WindowFit) -> WindowFit:
    if request.overlap_s >= fit.window_s:
        raise BadInputError(None, f"--overlap {request.overlap_s:g} s must be shorter than the window "
                                  f"({fit.window_s:g} s)")
    return fit
