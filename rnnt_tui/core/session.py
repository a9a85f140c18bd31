"""One comparison as a sequence of steps: preprocessor -> encoder -> decoder -> joint -> decode.

Each step runs the component on the reference runtime and, when there is one, the candidate runtime with the same
inputs (the reference's upstream outputs, so each diff isolates one component), compares the outputs and times
both. The final step decodes end to end through each runtime and against NeMo's own greedy decoding. Steps can
run one at a time (the app's "next step") or all together (the CLI); a step computes the upstream data it needs
if an earlier step has not. A candidate that raises marks its step failed and the rest goes on.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rnnt_tui.core import fuse as fuse_mode
from rnnt_tui.core.audio import Audio
from rnnt_tui.core.checkpoint import LoadedModel
from rnnt_tui.core.compare_ops import compare_outputs, samples, status_of
from rnnt_tui.core.components import (
    DECODER,
    ENCODER,
    INPUTS,
    JOINT,
    OUTPUTS,
    PREPROCESSOR,
    STEPS,
    TensorInfo,
    describe,
)
from rnnt_tui.core.errors import CancelledError, RuntimeUnavailableError
from rnnt_tui.core.grid import compare_joint_grid
from rnnt_tui.core.results import DONE, FAILED, MISMATCH, REFERENCE_ONLY, StepResult
from rnnt_tui.core.runtimes.base import PrepareReport, Progress, Runtime, no_progress
from rnnt_tui.core.stats import per_frame_max
from rnnt_tui.core.timing import Timings, measure
from rnnt_tui.core.tolerances import Tolerance, defaults

DECODE = "decode"


@dataclass(frozen=True)
class SessionSettings:
    """How a comparison runs. `joint_chunk_frames` 0 means the whole T x U grid at once."""

    runs: int = 5
    warmup: int = 1
    joint_mode: str = fuse_mode.VALIDATION
    tolerances: dict[str, Tolerance] = field(default_factory=defaults)
    joint_chunk_frames: int = 32
    topk: int = 5


def _err(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Session:
    """Holds the runtimes, the clip and every intermediate result of one comparison."""

    def __init__(self, loaded: LoadedModel, audio: Audio, reference: Runtime, candidate: Runtime | None = None,
                 settings: SessionSettings | None = None) -> None:
        self.loaded = loaded
        self.audio = audio
        self.reference = reference
        self.candidate = candidate
        self.settings = settings or SessionSettings()
        self.fuse = fuse_mode.fuse_mode_of(loaded.model)
        self.fuse.set(self.settings.joint_mode)
        self.results: dict[str, StepResult] = {}
        self.prepare_reports: dict[str, dict[str, PrepareReport]] = {}
        self.candidate_unavailable: str | None = None
        self.data: dict[str, Any] = {}
        self.decode_comparison: Any = None

    # -- setup -----------------------------------------------------------------------------------
    def set_joint_mode(self, mode: str) -> None:
        """Switch the reference joint's mode; drops the results that depend on it."""
        self.fuse.set(mode)
        self.settings = SessionSettings(**{**self.settings.__dict__, "joint_mode": mode})
        self.results.pop(JOINT, None)

    def prepare(self, progress: Progress = no_progress, cancel: threading.Event | None = None) -> None:
        """Prepare the reference, then the candidate (export/convert even where it cannot run)."""
        self.prepare_reports["reference"] = {r.component: r for r in self.reference.prepare(progress, cancel)}
        if self.candidate is None:
            return
        try:
            reports = self.candidate.prepare(progress, cancel)
        except CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the reference still runs; the reason is shown
            self.candidate_unavailable = f"{self.candidate.label} could not be prepared: {_err(exc)}"
            return
        self.prepare_reports["candidate"] = {r.component: r for r in reports}
        availability = self.candidate.availability()
        if not availability.ok:
            self.candidate_unavailable = availability.reason

    @property
    def comparing(self) -> bool:
        return self.candidate is not None and self.candidate_unavailable is None

    # -- steps -----------------------------------------------------------------------------------
    def run_step(self, name: str, progress: Progress = no_progress,
                 cancel: threading.Event | None = None) -> StepResult:
        """Run one step (its upstream data first if needed) and keep its result."""
        if name not in STEPS:
            raise ValueError(f"unknown step {name!r}; steps are {', '.join(STEPS)}")
        if cancel is not None and cancel.is_set():
            raise CancelledError(f"cancelled before {name}")
        runner: Callable[[Progress, threading.Event | None], StepResult] = {
            PREPROCESSOR: self._preprocessor, ENCODER: self._encoder, DECODER: self._decoder,
            JOINT: self._joint, DECODE: self._decode,
        }[name]
        try:
            result = runner(progress, cancel)
        except (CancelledError, RuntimeUnavailableError):
            raise
        except Exception as exc:  # noqa: BLE001 - a failing step is shown as failed; the others still run
            result = StepResult(name=name, status=FAILED, error=_err(exc),
                                notes=[traceback.format_exc(limit=4)])
        self.results[name] = result
        return result

    def run_all(self, progress: Progress = no_progress, cancel: threading.Event | None = None,
                on_result: Callable[[StepResult], None] | None = None) -> list[StepResult]:
        out = []
        for name in STEPS:
            progress(f"running {name}", None)
            result = self.run_step(name, progress, cancel)
            out.append(result)
            if on_result is not None:
                on_result(result)
        return out

    def _timed(self, runtime: Runtime, component: str,
               inputs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], Timings]:
        bound = runtime.bind(component, inputs)
        raw, timings = measure(bound, runs=self.settings.runs, warmup=self.settings.warmup)
        return bound.outputs(raw), timings

    def _with_prepare(self, side: str, component: str, timings: Timings | None) -> Timings | None:
        report = self.prepare_reports.get(side, {}).get(component)
        if timings is None or report is None:
            return timings
        cached = report.cached if side == "candidate" else None
        return Timings(**{**timings.__dict__, "prepare_ms": report.prepare_ms, "load_ms": report.load_ms,
                          "cached": cached})

    def _component_step(self, name: str, inputs: dict[str, np.ndarray], logits: bool = False) -> StepResult:
        ref_out, ref_t = self._timed(self.reference, name, inputs)
        result = StepResult(name=name, status=DONE, inputs=describe(inputs), reference_outputs=describe(ref_out),
                            timings={"reference": self._with_prepare("reference", name, ref_t)},
                            samples={"reference": samples(ref_out)})
        self.data[f"{name}.reference"] = ref_out
        if self.candidate is None:
            return result
        if not self.comparing:
            result.status = REFERENCE_ONLY
            result.notes.append(f"candidate not run: {self.candidate_unavailable}")
            return result
        if name not in self.candidate.components:
            result.status = REFERENCE_ONLY
            result.notes.append(f"{self.candidate.label} has no {name}; the next component is fed the reference's "
                                f"output")
            return result
        try:
            cand_out, cand_t = self._timed(self.candidate, name, inputs)
        except Exception as exc:  # noqa: BLE001 - the candidate failing is the finding
            result.status, result.error = FAILED, f"{self.candidate.label}: {_err(exc)}"
            return result
        self.data[f"{name}.candidate"] = cand_out
        result.candidate_outputs = describe(cand_out)
        result.timings["candidate"] = self._with_prepare("candidate", name, cand_t)
        result.samples["candidate"] = samples(cand_out)
        result.comparisons = compare_outputs(ref_out, cand_out, OUTPUTS[name], self.settings.tolerances[name],
                                             logits=logits, topk=self.settings.topk)
        result.status = DONE if status_of(result.comparisons) else MISMATCH
        return result

    def _preprocessor(self, progress: Progress, cancel: threading.Event | None) -> StepResult:
        signal = self.audio.samples[None, :].astype(np.float32)
        inputs: dict[str, np.ndarray] = {"audio_signal": signal, "length": np.array([signal.shape[1]], dtype=np.int64)}
        result = self._component_step(PREPROCESSOR, inputs)
        result.notes.extend(self.audio.notes())
        return result

    def _features(self) -> dict[str, np.ndarray]:
        if f"{PREPROCESSOR}.reference" not in self.data:
            self.run_step(PREPROCESSOR)
        out: dict[str, np.ndarray] = self.data[f"{PREPROCESSOR}.reference"]
        return out

    def _encoder(self, progress: Progress, cancel: threading.Event | None) -> StepResult:
        result = self._component_step(ENCODER, dict(self._features()))
        cand = self.data.get(f"{ENCODER}.candidate")
        ref = self.data[f"{ENCODER}.reference"]
        if cand is not None and cand["encoded"].shape == ref["encoded"].shape:
            result.maps["per_frame_max_abs"] = per_frame_max(ref["encoded"], cand["encoded"], axis=-1)
        return result

    def _encoded(self) -> tuple[np.ndarray, int]:
        if f"{ENCODER}.reference" not in self.data:
            self.run_step(ENCODER)
        ref = self.data[f"{ENCODER}.reference"]
        return ref["encoded"], int(ref["encoded_length"].reshape(-1)[0])

    def _reference_tokens(self, cancel: threading.Event | None = None) -> list[int]:
        if "tokens.reference" not in self.data:
            from rnnt_tui.core.decode import greedy_decode
            from rnnt_tui.core.nemo_decoding import max_symbols

            encoded, length = self._encoded()
            decoded = greedy_decode(self.reference, encoded, length, self.loaded.summary.blank_id,
                                    self.loaded.summary.durations, max_symbols(self.loaded), cancel)
            self.data["tokens.reference"] = decoded
        return list(self.data["tokens.reference"].tokens)

    def _decoder(self, progress: Progress, cancel: threading.Event | None) -> StepResult:
        from rnnt_tui.core.decoder_chain import compare_decoder_chain

        tokens = self._reference_tokens(cancel)
        targets = [self.loaded.summary.blank_id, *tokens]
        result, g_ref = compare_decoder_chain(self, targets, cancel)
        self.data["decoder.g"] = g_ref
        self.data["decoder.targets"] = np.array([targets], dtype=np.int64)
        return result

    def _joint(self, progress: Progress, cancel: threading.Event | None) -> StepResult:
        if "decoder.g" not in self.data:
            self.run_step(DECODER, progress, cancel)
        encoded, length = self._encoded()
        candidate = self.candidate if self.comparing else None
        result = compare_joint_grid(self.reference, candidate, encoded[:, :, :length], self.data["decoder.g"],
                                    self.data["decoder.targets"], self.settings, progress, cancel)
        for side in ("reference", "candidate"):
            result.timings[side] = self._with_prepare(side, JOINT, result.timings.get(side))
        if self.candidate is not None and not self.comparing:
            result.status = REFERENCE_ONLY if result.status == DONE else result.status
            result.notes.append(f"candidate not run: {self.candidate_unavailable}")
        probe = fuse_mode.probe_joint(self.loaded.model)
        result.notes.insert(0, f"joint mode {self.fuse.name}: joint(encoder_outputs, decoder_outputs) → "
                               f"{probe.describe()}")
        return result

    def _decode(self, progress: Progress, cancel: threading.Event | None) -> StepResult:
        from rnnt_tui.core.decode_step import decode_step

        return decode_step(self, progress, cancel)

    # -- inputs of the component contract, for the detail view -------------------------------------
    @staticmethod
    def input_names(component: str) -> tuple[str, ...]:
        return INPUTS.get(component, ())

    def tensor_infos(self, key: str) -> list[TensorInfo]:
        return describe(self.data.get(key, {}))
