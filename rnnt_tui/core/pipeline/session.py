"""One comparison on one clip: the steps preprocessor → encoder → decoder → joint → decode, run on demand.

A step computes the upstream data it needs if an earlier step has not run (the app's "run the joint" right after
opening), records its `StepResult`, and never raises for a runtime's failure: a failing step is a result with its
error (and the traceback in its notes) and the rest goes on. Cancellation and an unavailable runtime do raise.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from rnnt_tui.core.components import DECODER, ENCODER, JOINT, PREPROCESSOR, STEPS
from rnnt_tui.core.errors import CancelledError, RuntimeUnavailableError
from rnnt_tui.core.names import Status
from rnnt_tui.core.pipeline.components import encoder_step, preprocessor_step
from rnnt_tui.core.pipeline.context import StepContext, error_text
from rnnt_tui.core.pipeline.decode_step import decode_step, reference_decode
from rnnt_tui.core.pipeline.decoder_chain import decoder_step
from rnnt_tui.core.pipeline.joint_grid import joint_step
from rnnt_tui.core.progress import Progress, no_progress
from rnnt_tui.core.stats.results import DecodeComparison, StepResult

if TYPE_CHECKING:
    from rnnt_tui.core.audio import Audio
    from rnnt_tui.core.pipeline.facts import FuseView, ModelFacts
    from rnnt_tui.core.pipeline.request import Settings
    from rnnt_tui.core.runtimes.base import PrepareReport, Runtime

DECODE = "decode"
Step = Callable[[StepContext], StepResult]


class Session:
    """The runtimes, the clip, every step's result and the upstream data of one comparison."""

    def __init__(self, facts: ModelFacts, audio: Audio, reference: Runtime, candidate: Runtime | None,
                 settings: Settings, prepared: dict[str, dict[str, PrepareReport]] | None = None,
                 candidate_note: str | None = None, overrides: dict[str, Step] | None = None,
                 after_step: Callable[[StepResult], None] | None = None, candidate_failed: bool = False) -> None:
        """Built by `driver.new_session` only. `candidate_note`: why the candidate does not run (`candidate_failed`:
        because preparing it crashed, else because it cannot run here); `overrides`: steps run differently for
        this session (a recorded reference that holds only the decode path's joint cells); `after_step`: applied
        to each result (a recording's own reference timings)."""
        self.ctx = StepContext(facts=facts, audio=audio, reference=reference, candidate=candidate,
                               candidate_note=candidate_note, settings=settings, prepared=prepared or {})
        self.overrides = overrides or {}
        self.after_step = after_step
        self.candidate_failed = candidate_failed
        self.results: dict[str, StepResult] = {}
        self.decode_comparison: DecodeComparison | None = None

    # -- what the front ends read -----------------------------------------------------------------
    @property
    def facts(self) -> ModelFacts:
        return self.ctx.facts

    @property
    def audio(self) -> Audio:
        return self.ctx.audio

    @property
    def reference(self) -> Runtime:
        return self.ctx.reference

    @property
    def candidate(self) -> Runtime | None:
        return self.ctx.candidate

    @property
    def candidate_unavailable(self) -> str | None:
        """Why the candidate does not run (it cannot run here, or preparing it failed: `candidate_failed`)."""
        return self.ctx.candidate_note

    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    @property
    def prepare_reports(self) -> dict[str, dict[str, PrepareReport]]:
        return self.ctx.prepared

    @property
    def comparing(self) -> bool:
        return self.ctx.comparing

    def fuse(self) -> FuseView:
        return self.facts.fuse()

    def set_joint_mode(self, mode: str) -> FuseView:
        """Switch the reference joint's mode; drops the joint's result, which depends on it."""
        view = self.facts.set_joint_mode(mode)
        self.ctx.settings = replace(self.ctx.settings, joint_mode=mode)
        self.results.pop(JOINT, None)
        return view

    # -- steps -----------------------------------------------------------------------------------
    def run_step(self, name: str, progress: Progress = no_progress,
                 cancel: threading.Event | None = None) -> StepResult:
        """Run one step (its upstream first if needed) and keep its result."""
        if name not in STEPS:
            raise ValueError(f"unknown step {name!r}; steps are {', '.join(STEPS)}")
        if cancel is not None and cancel.is_set():
            raise CancelledError(f"cancelled before {name}")
        self.ctx.progress, self.ctx.cancel = progress, cancel
        try:
            self._needs(name, progress, cancel)
            candidate = self.ctx.candidate
            if candidate is not None and self.ctx.comparing:  # what prepare left to the first call loads now
                candidate.load_for(name, progress, cancel)
            result = self._run(name)
        except (CancelledError, RuntimeUnavailableError):
            raise
        except Exception as exc:  # noqa: BLE001 - a failing step is shown as failed; the others still run
            result = StepResult(name=name, status=Status.FAILED, error=error_text(exc),
                                notes=[traceback.format_exc(limit=6)])
        if self.after_step is not None:
            self.after_step(result)
        self.results[name] = result
        return result

    def _run(self, name: str) -> StepResult:
        if name == DECODE:
            result, self.decode_comparison = decode_step(self.ctx)
            return result
        step = self.overrides.get(name) or {PREPROCESSOR: preprocessor_step, ENCODER: encoder_step,
                                            DECODER: decoder_step, JOINT: joint_step}[name]
        return step(self.ctx)

    def _needs(self, name: str, progress: Progress, cancel: threading.Event | None) -> None:
        """Compute what `name` consumes if no earlier step has; a failed upstream step is not run again."""
        up = self.ctx.upstream
        wanted = {ENCODER: (PREPROCESSOR,), DECODER: (PREPROCESSOR, ENCODER), JOINT: (PREPROCESSOR, ENCODER, DECODER),
                  DECODE: (PREPROCESSOR, ENCODER)}.get(name, ())
        def produced(dependency: str) -> object:
            return {PREPROCESSOR: up.features, ENCODER: up.encoded, DECODER: up.decoder}[dependency]

        for dependency in wanted:
            if produced(dependency) is not None:
                continue
            if dependency in self.results:
                raise RuntimeError(f"the reference {dependency} failed, so the {name} has no input")
            self.run_step(dependency, progress, cancel)
            self.ctx.progress, self.ctx.cancel = progress, cancel
            if produced(dependency) is None:
                raise RuntimeError(f"the reference {dependency} failed, so the {name} has no input")
        if name == DECODER and up.decode is None:
            reference_decode(self.ctx)
