"""The one pipeline every front end drives: checkpoint → summary → clip → reference → candidate → session → steps.

`Pipeline.open(request)` reads the summary (config only), loads the clip (a bad one is refused before the slow
restore), restores the model through NeMo (`reference.NemoReference`), or takes a recorded reference when given
one (`reference=`, e.g. `core.bundle.replay.open_recording`), prepares the candidate (`driver.prepare_candidate`:
one verdict per failure kind) and returns a `Session`; `run_steps` runs steps on it through the one driver
(`driver.run_steps`). Every stage emits a plain event (`pipeline.events`): the CLI renders them, the app's engine
process forwards them over its pipe. The model is restored and the candidate prepared once: `session_for(clip)`
makes a session on another clip with the same runtimes (corpus runs, recordings, replays), `rebuild` swaps the
clip, candidate or settings on the restored model (the app's Runtimes tab).

A candidate that cannot be prepared is not an error of the comparison: the reference still runs, the reason is
the session's `candidate_unavailable` (and `candidate_failed` when preparing crashed), and `CandidateFailed`
carries the traceback for whoever shows details.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnt_tui.core.errors import CancelledError
from rnnt_tui.core.names import REFERENCE
from rnnt_tui.core.pipeline import events as ev
from rnnt_tui.core.pipeline.context import error_text
from rnnt_tui.core.pipeline.driver import NO_CANDIDATE, CandidateState, new_session, open_candidate, run_steps
from rnnt_tui.core.pipeline.reference import REFERENCE_RUNTIME, NemoReference, ReferenceProvider, load_clip
from rnnt_tui.core.pipeline.request import Request
from rnnt_tui.core.pipeline.session import Session
from rnnt_tui.core.progress import Progress
from rnnt_tui.core.summary import read_summary

if TYPE_CHECKING:
    from rnnt_tui.core.checkpoint import LoadedModel
    from rnnt_tui.core.pipeline.facts import ModelFacts
    from rnnt_tui.core.pipeline.request import Settings
    from rnnt_tui.core.runtimes.base import Runtime

__all__ = ["REFERENCE_RUNTIME", "Pipeline", "RuntimeChoice", "check_runtimes", "load_clip", "open_session"]


@dataclass(frozen=True)
class RuntimeChoice:
    """A candidate runtime as a picker shows it: whether it can run here and why not."""

    name: str
    label: str
    ok: bool
    reason: str = ""


def check_runtimes() -> dict[str, RuntimeChoice]:
    """Each candidate runtime's availability here; a runtime whose module cannot load reads as unavailable."""
    from rnnt_tui.core.runtimes import CANDIDATES, get_runtime_class

    out: dict[str, RuntimeChoice] = {}
    for name in CANDIDATES:
        try:
            cls = get_runtime_class(name)
            availability = cls.availability()
            out[name] = RuntimeChoice(name, cls.label, availability.ok, availability.reason)
        except (ImportError, AttributeError) as exc:
            out[name] = RuntimeChoice(name, name, False, f"its runtime module is not available ({exc})")
        except Exception as exc:  # noqa: BLE001 - a broken runtime must not break the others; say why
            out[name] = RuntimeChoice(name, name, False, error_text(exc))
    return out


class Pipeline:
    """A reference (restored or recorded), its prepared candidate and the current session; emits what happens to
    `emit`."""

    def __init__(self, emit: ev.Emit = ev.ignore) -> None:
        self.emit = emit
        self.request: Request | None = None
        self.reference: ReferenceProvider | None = None
        self.candidate: Runtime | None = None
        self.candidate_state: CandidateState = NO_CANDIDATE
        self.session: Session | None = None

    # -- what front ends read -----------------------------------------------------------------------
    @property
    def loaded(self) -> LoadedModel | None:
        """The model NeMo restored (None before opening, and for a recorded reference)."""
        if self.reference is None or self.reference.recorded:
            return None
        loaded: LoadedModel = self.reference.loaded
        return loaded

    @property
    def facts(self) -> ModelFacts | None:
        return self.reference.facts if self.reference is not None else None

    @property
    def candidate_note(self) -> str | None:
        return self.candidate_state.note

    # -- opening ------------------------------------------------------------------------------------
    def open(self, request: Request, cancel: threading.Event | None = None, loaded: LoadedModel | None = None,
             reference: ReferenceProvider | None = None) -> Session:
        """Summary, clip, restore (unless `loaded` is given; nothing restored when `reference` is a recording),
        runtimes, preparation: a session ready to run. With a recording, the session is on the recorded clip the
        request's clip names (else its first)."""
        from rnnt_tui.core.checkpoint import restore
        from rnnt_tui.paths import cache_dir

        request = request.resolved()
        if reference is None:
            summary = loaded.summary if loaded is not None else read_summary(request.checkpoint)
            self.emit(ev.SummaryRead(request.checkpoint, summary))
            audio = load_clip(request.clip, summary)
            self.emit(ev.ClipLoaded(audio.info()))
            if loaded is None:
                self.emit(ev.Progress("model", f"Restoring {request.checkpoint.name} with NeMo (importing torch "
                                               f"and NeMo takes a few seconds)…"))
                started = time.perf_counter()
                loaded = restore(request.checkpoint, summary, cache_dir=cache_dir(), cancel=cancel)
                self.emit(ev.ModelRestored(request.checkpoint, time.perf_counter() - started, tuple(loaded.notes)))
            _check_cancel(cancel, "after restoring the model")
            self.close()
            reference = NemoReference(loaded, request.settings.joint_mode, self._progress("prepare"), cancel,
                                      first=audio)
        else:
            self.close()
            self.emit(ev.SummaryRead(request.checkpoint, reference.facts.summary, recorded=reference.recorded))
        self.reference = reference
        self.request = replace(request, settings=reference.settings(request.settings))
        self._prepare_candidate(self.request, cancel)
        session = self._new_session(request.clip)
        if reference.recorded:
            self.emit(ev.ClipLoaded(session.audio.info()))
        self.emit(ev.SessionReady(self.view()))
        return session

    def rebuild(self, request: Request, cancel: threading.Event | None = None) -> Session:
        """Another clip, candidate, option or setting on the opened reference (restores nothing)."""
        if self.reference is None or self.request is None or self.session is None:
            raise RuntimeError("no model is restored yet")
        request = request.resolved()
        request = replace(request, settings=self.reference.settings(request.settings))
        old, self.request = self.request, request
        if (request.against, request.options) != (old.against, old.options):
            if self.candidate is not None:
                self.candidate.close()
            self._prepare_candidate(request, cancel)
        which: Path | int = request.clip if request.clip != old.clip else self.session.audio.path
        session = self._new_session(which)
        if request.clip != old.clip:
            self.emit(ev.ClipLoaded(session.audio.info()))
        self.emit(ev.SessionReady(self.view()))
        return session

    def session_for(self, clip: Path | int, settings: Settings | None = None) -> Session:
        """A fresh session on another clip (a path; a recording's clip index) with the prepared runtimes (nothing
        restored, exported or loaded); `settings` (how steps run: a corpus times each call once) default to the
        opened request's. The pipeline's current session stays as it was."""
        if self.reference is None or self.request is None:
            raise RuntimeError("open a model first")
        return self._session(clip, self.reference.settings(settings) if settings is not None else None)

    def _prepare_candidate(self, request: Request, cancel: threading.Event | None) -> None:
        assert self.reference is not None
        self.candidate, self.candidate_state = None, NO_CANDIDATE
        if request.against is None:
            return
        reference, against = self.reference, request.against
        self.candidate, self.candidate_state = open_candidate(
            against, lambda: reference.candidate(against, request.options), self.emit, cancel)

    def _session(self, which: Path | int, settings: Settings | None = None) -> Session:
        assert self.reference is not None and self.request is not None
        clip = self.reference.clip(which)
        return new_session(self.reference.facts, clip.audio, clip.runtime, self.candidate,
                           settings or self.request.settings, {REFERENCE: clip.prepared}, self.candidate_state,
                           clip.overrides, clip.after_step)

    def _new_session(self, which: Path | int) -> Session:
        self.session = self._session(which)
        return self.session

    def view(self) -> ev.SessionView:
        """What a front end shows of the current session."""
        session = self._current()
        candidate = session.candidate
        runs_on: str | None = None
        inventory: tuple[dict[str, Any], ...] = ()
        if candidate is not None and session.candidate_unavailable is None:
            described = candidate.describe()
            runs_on = described.get("runs_on") or candidate.label
            inventory = tuple(dict(e) for e in described.get("inventory") or ())
        return ev.SessionView(path=session.facts.path, summary=session.facts.summary, audio=session.audio.info(),
                              reference_label=session.reference.label,
                              candidate_label=candidate.label if candidate is not None else None,
                              candidate_note=session.candidate_unavailable, fuse=session.fuse(),
                              runs=session.settings.runs, warmup=session.settings.warmup,
                              options=self.request, candidate_runs_on=runs_on, candidate_inventory=inventory)

    # -- running ------------------------------------------------------------------------------------
    def run_steps(self, names: list[str] | tuple[str, ...], cancel: threading.Event | None = None) -> Session:
        """Run steps in order on the current session through the one driver, emitting each result as it lands."""
        return run_steps(self._current(), names, self.emit, cancel)

    def set_joint_mode(self, mode: str, rerun: bool = False, cancel: threading.Event | None = None) -> None:
        """Switch the reference joint's mode, say what joint(enc, dec) now returns, rerun the joint if asked."""
        from rnnt_tui.core.components import JOINT

        session = self._current()
        view = session.set_joint_mode(mode)
        if self.request is not None:
            self.request = replace(self.request, settings=session.settings)
        self.emit(ev.FuseChanged(view))
        self.emit(ev.StepCleared(JOINT))
        if rerun:
            self.run_steps([JOINT], cancel)

    def close(self) -> None:
        """Release the candidate and the reference (the restored model goes with the pipeline; a recording is
        closed)."""
        if self.candidate is not None:
            self.candidate.close()
        if self.reference is not None:
            self.reference.close()
        self.candidate, self.reference, self.session = None, None, None
        self.candidate_state = NO_CANDIDATE

    def _current(self) -> Session:
        if self.session is None:
            raise RuntimeError("the model is still loading")
        return self.session

    def _progress(self, job: str) -> Progress:
        return ev.progress_of(self.emit, job)


def _check_cancel(cancel: threading.Event | None, where: str) -> None:
    if cancel is not None and cancel.is_set():
        raise CancelledError(f"cancelled {where}")


def open_session(request: Request, emit: ev.Emit = ev.ignore, cancel: threading.Event | None = None,
                 loaded: LoadedModel | None = None, reference: ReferenceProvider | None = None) -> Session:
    """Open `request` in a new pipeline and return its session (for one-shot front ends and tests)."""
    return Pipeline(emit).open(request, cancel, loaded, reference)
