"""Flexible-dimension edge sweep: each component's program at its lower bound, lower bound + 1, upper bound and
lengths across the range, against NeMo on the same inputs; lists the lengths that fail or drift.

Inputs per length come from the clip (its samples repeated to the length) through NeMo's own components, so
every point has an exact reference: the preprocessor sweeps samples, the encoder feature frames, the joint its T
axis (U = 1, random encoder frames) and its U axis (T = 1). Packages must follow the tool's I/O contract (its own,
or `--packages` with the same tensor names); fixed windows (a padded length input) are not swept yet. A point is
`ok` (output shape equals NeMo's, finite, within the tolerances of the program's precision), `drift` (out of tolerance),
`fail` (the program raised, gave non-finite values or the wrong length), `nemo-fails` (NeMo itself refuses that
length: nothing to compare) or `skipped` (longer than `max_seconds` of audio, to bound the time the interpreter
takes; the skipped bound is listed). Numbers are "Core ML program, MIL interpreter".
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rnnt_tui.core.checkpoint import LoadedModel
from rnnt_tui.core.components import ENCODER, JOINT, PREPROCESSOR
from rnnt_tui.core.errors import CancelledError, RnntTuiError
from rnnt_tui.core.progress import Progress, no_progress
from rnnt_tui.core.tolerances import FP16, FP32

LABEL = "Core ML program, MIL interpreter"
STATUSES = ("ok", "drift", "fail", "nemo-fails", "skipped")
SECONDS = (1.0, 4.0, 15.0, 30.0, 60.0)


@dataclass(frozen=True)
class EdgePoint:
    component: str
    axis: str
    length: int
    seconds: float
    status: str
    max_diff: float | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        diff = self.max_diff if self.max_diff is None or np.isfinite(self.max_diff) else str(self.max_diff)
        return {"component": self.component, "axis": self.axis, "length": self.length,
                "seconds": round(self.seconds, 3), "status": self.status, "max_diff": diff, "detail": self.detail}


@dataclass(frozen=True)
class EdgeSweep:
    component: str
    package: str
    bounds: dict[str, tuple[int, int]]
    points: tuple[EdgePoint, ...] = field(default_factory=tuple)
    error: str | None = None

    @property
    def problems(self) -> list[EdgePoint]:
        return [p for p in self.points if p.status in ("drift", "fail")]

    def to_json(self) -> dict[str, Any]:
        return {"component": self.component, "label": LABEL, "package": self.package,
                "bounds": {k: list(v) for k, v in self.bounds.items()}, "error": self.error,
                "problems": [p.to_json() for p in self.problems], "points": [p.to_json() for p in self.points]}


def _lengths(lo: int, hi: int, per_second: float) -> list[int]:
    inside = [round(s * per_second) for s in SECONDS]
    return sorted({v for v in (lo, lo + 1, *inside, hi) if lo <= v <= hi})


class _Sweeper:
    def __init__(self, loaded: LoadedModel, samples: np.ndarray, max_seconds: float) -> None:
        from rnnt_tui.core.coreml.convert import geometry
        from rnnt_tui.core.coreml.wrappers import wrap

        self.model = loaded.eval()
        self.g = geometry(loaded)
        self.wrap = {c: wrap(self.model, c) for c in (PREPROCESSOR, ENCODER, JOINT)}
        self.samples = np.asarray(samples, np.float32)
        self.max_seconds = max_seconds
        self.rate = self.g.sample_rate

    def audio(self, n: int) -> np.ndarray:
        return np.resize(self.samples, n).astype(np.float32)[None]

    def nemo(self, component: str, *args: np.ndarray) -> tuple[np.ndarray, ...]:
        import torch

        with torch.inference_mode():
            out = self.wrap[component](*(torch.from_numpy(np.ascontiguousarray(a)) for a in args))
        return tuple(o.numpy() for o in (out if isinstance(out, tuple) else (out,)))

    def features(self, frames: int) -> tuple[np.ndarray, np.ndarray]:
        n = max(self.g.hop, frames * self.g.hop)
        feats, _ = self.nemo(PREPROCESSOR, self.audio(n), np.array([n], np.int32))
        feats = feats[:, :, :frames]
        return feats, np.array([feats.shape[2]], np.int32)


def _point(sweeper: _Sweeper, program: Any, component: str, axis: str, length: int, seconds: float,
           feeds: dict[str, np.ndarray], main: str, tol: Any) -> EdgePoint:
    try:
        reference = sweeper.nemo(component, *feeds.values())
    except Exception as exc:  # noqa: BLE001 - NeMo's refusal of a length is reported, not raised
        return EdgePoint(component, axis, length, seconds, "nemo-fails", None, f"{type(exc).__name__}: {exc}")
    try:
        out = program.run(feeds)
    except (RnntTuiError, ValueError, MemoryError) as exc:
        return EdgePoint(component, axis, length, seconds, "fail", None, str(exc))
    got, ref = np.asarray(out[main], np.float64), np.asarray(reference[0], np.float64)
    if got.shape != ref.shape:
        return EdgePoint(component, axis, length, seconds, "fail", None,
                         f"{main} shape {list(got.shape)}, NeMo gives {list(ref.shape)}")
    if not np.isfinite(got).all():
        return EdgePoint(component, axis, length, seconds, "fail", float("inf"), f"{main} has NaN/Inf")
    diff = float(np.abs(got - ref).max()) if got.size else 0.0
    if got.size == 0:
        return EdgePoint(component, axis, length, seconds, "fail", None, f"{main} is empty")
    ok = bool(np.all(np.abs(got - ref) <= tol.atol + tol.rtol * np.abs(ref)))
    return EdgePoint(component, axis, length, seconds, "ok" if ok else "drift", diff,
                     "" if ok else f"out of tolerance (atol {tol.atol:g}, rtol {tol.rtol:g})")


def sweep_component(loaded: LoadedModel, component: str, package: Path, samples: np.ndarray,
                    max_seconds: float = 60.0, cancel: threading.Event | None = None) -> EdgeSweep:
    """Sweep one component's package (the tool's I/O contract) over its flexible (or length) inputs."""
    from rnnt_tui.core.coreml.spec import read_spec
    from rnnt_tui.core.mil import MilProgram

    spec = read_spec(package)
    program = MilProgram.load(package)
    tol = (FP32 if program.precision == "fp32" else FP16)[component]
    sweeper = _Sweeper(loaded, samples, max_seconds)
    g = sweeper.g
    frame_s = g.hop / g.sample_rate
    points: list[EdgePoint] = []
    bounds: dict[str, tuple[int, int]] = {}
    plan: list[tuple[str, int, float, Any]] = []
    if component == PREPROCESSOR:
        lo, hi = spec.input("audio_signal").bounds(1)
        hi = hi if hi > 0 else int(600 * g.sample_rate)
        bounds["audio_signal"] = (lo, hi)
        for n in _lengths(lo, hi, g.sample_rate):
            plan.append(("audio_signal", n, n / g.sample_rate, lambda n=n: {
                "audio_signal": sweeper.audio(n), "length": np.array([n], np.int32)}))
    elif component == ENCODER:
        lo, hi = spec.input("features").bounds(2)
        hi = hi if hi > 0 else g.max_features
        bounds["features"] = (lo, hi)
        for n in _lengths(lo, hi, 1 / frame_s):
            def feeds(n: int = n) -> dict[str, np.ndarray]:
                feats, length = sweeper.features(n)
                return {"features": feats, "features_length": length}
            plan.append(("features", n, n * frame_s, feeds))
    elif component == JOINT:
        enc_lo, enc_hi = spec.input("encoded").bounds(2)
        dec_lo, dec_hi = spec.input("decoder_output").bounds(2)
        bounds = {"encoded": (enc_lo, enc_hi), "decoder_output": (dec_lo, dec_hi)}
        rng = np.random.default_rng(0)
        for n in _lengths(enc_lo, enc_hi, 1 / (frame_s * g.factor)):
            plan.append(("encoded", n, n * frame_s * g.factor, lambda n=n: {
                "encoded": rng.standard_normal((1, g.d_model, n)).astype(np.float32),
                "decoder_output": rng.standard_normal((1, g.pred_hidden, 1)).astype(np.float32)}))
        for n in sorted({dec_lo, dec_lo + 1, 16, dec_hi}):
            if dec_lo <= n <= dec_hi:
                plan.append(("decoder_output", n, 0.0, lambda n=n: {
                    "encoded": rng.standard_normal((1, g.d_model, 1)).astype(np.float32),
                    "decoder_output": rng.standard_normal((1, g.pred_hidden, n)).astype(np.float32)}))
    else:
        return EdgeSweep(component, str(package), {}, (), None)
    main = {PREPROCESSOR: "features", ENCODER: "encoded", JOINT: "logits"}[component]
    for axis, n, seconds, make in plan:
        if cancel is not None and cancel.is_set():
            raise CancelledError("cancelled during the edge sweep")
        if seconds > max_seconds:
            points.append(EdgePoint(component, axis, n, seconds, "skipped", None,
                                    f"{seconds:.0f} s of audio: longer than the sweep's {max_seconds:g} s"))
            continue
        points.append(_point(sweeper, program, component, axis, n, seconds, make(), main, tol))
    return EdgeSweep(component, str(package), bounds, tuple(points))


def sweep(loaded: LoadedModel, packages: dict[str, Path], samples: np.ndarray, max_seconds: float = 60.0,
          progress: Progress = no_progress, cancel: threading.Event | None = None) -> list[EdgeSweep]:
    """Sweep every flexible component in `packages`; one that cannot be read reports its error, the rest go on."""
    out = []
    wanted = [c for c in (PREPROCESSOR, ENCODER, JOINT) if c in packages]
    for i, component in enumerate(wanted):
        progress(f"Edge sweep: {component} ({LABEL})", i / max(1, len(wanted)))
        try:
            out.append(sweep_component(loaded, component, packages[component], samples, max_seconds, cancel))
        except CancelledError:
            raise
        except (RnntTuiError, ValueError, KeyError, StopIteration) as exc:
            out.append(EdgeSweep(component, str(packages[component]), {}, (), f"{type(exc).__name__}: {exc}"))
    progress("Edge sweep: done", 1.0)
    return out
