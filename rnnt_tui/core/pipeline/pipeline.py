"""The one pipeline every front end drives: checkpoint → summary → clip → restore → runtimes → session → steps.

`Pipeline.open(request)` reads the summary (config only), loads the clip (a bad one is refused before the slow
restore), restores the model through NeMo, builds and prepares the reference and the candidate, and returns a
`Session`; `run_steps` runs steps on it. Every stage emits a plain event (`pipeline.events`): the CLI renders
them, the app's engine process forwards them over its pipe. The model is restored and the candidate prepared
once: `session_for(clip)` makes a session on another clip with the same runtimes (corpus runs), `rebuild` swaps
the clip, candidate or settings on the restored model (the app's Runtimes tab).

A candidate that cannot be prepared is not an error of the comparison: the reference still runs, the reason is
the session's `candidate_unavailable`, and `CandidateFailed` carries the traceback for whoever shows details.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from rnnt_tui.core.audio import Audio, encoder_frame_seconds, load_audio
from rnnt_tui.core.errors import CancelledError
from rnnt_tui.core.names import CANDIDATE, REFERENCE
from rnnt_tui.core.nemo_audio import as_nemo_reads
from rnnt_tui.core.pipeline import events as ev
from rnnt_tui.core.pipeline.context import error_text
from rnnt_tui.core.pipeline.request import REFERENCE_RUNTIME, Request
from rnnt_tui.core.pipeline.session import Session
from rnnt_tui.core.summary import ModelSummary, read_summary

if TYPE_CHECKING:
    from rnnt_tui.core.bundle.format import Bundle
    from rnnt_tui.core.bundle.replay import Replay
    from rnnt_tui.core.checkpoint import LoadedModel
    from rnnt_tui.core.pipeline.facts import ModelFacts
    from rnnt_tui.core.pipeline.request import Settings
    from rnnt_tui.core.runtimes.base import PrepareReport, Runtime


def load_clip(path: Path, summary: ModelSummary) -> Audio:
    """The clip at the model's rate; refused if shorter than one encoder frame."""
    return load_audio(path, summary.sample_rate or 16000,
                      min_seconds=encoder_frame_seconds(summary.window_stride, summary.encoder.subsampling_factor))


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


def prepare_candidate(candidate: Runtime, emit: ev.Emit = ev.ignore, cancel: threading.Event | None = None
                      ) -> tuple[dict[str, PrepareReport] | None, str | None]:
    """Export / convert / load the candidate (even where it cannot run: conversion problems show on any OS).
    Returns its prepare reports and, when it cannot run, why; a crash is emitted as `CandidateFailed`."""
    availability = candidate.availability()
    try:
        reports = candidate.prepare(ev.progress_of(emit, "prepare"), cancel)
    except CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - the reference still runs; the reason and traceback are shown
        note = f"{candidate.label} could not be prepared: {error_text(exc)}"
        emit(ev.CandidateFailed(candidate.label, note, traceback.format_exc()))
        return None, note
    return {r.component: r for r in reports}, None if availability.ok else availability.reason


def with_program_tolerances(candidate: Runtime | None, settings: Settings) -> Settings:
    """`settings` with the tolerances the candidate's programs call for (their real compute precision), unless the
    user gave tolerances."""
    pick = getattr(candidate, "tolerances", None)
    if settings.tolerances_given or not callable(pick):
        return settings
    return replace(settings, tolerances=pick())


def prepare_session(facts: ModelFacts, audio: Audio, reference: Runtime, candidate: Runtime | None,
                    settings: Settings, emit: ev.Emit = ev.ignore, cancel: threading.Event | None = None) -> Session:
    """Prepare both runtimes and return a session on `audio` (for callers that bring their own runtimes)."""
    prepared = {REFERENCE: {r.component: r for r in reference.prepare(ev.progress_of(emit, "prepare"), cancel)}}
    note = None
    if candidate is not None:
        reports, note = prepare_candidate(candidate, emit, cancel)
        if reports is not None:
            prepared[CANDIDATE] = reports
            settings = with_program_tolerances(candidate, settings)
    return Session(facts, audio, reference, candidate, settings, prepared, note)


class Pipeline:
    """A restored model, its prepared runtimes and the current session; emits what happens to `emit`."""

    def __init__(self, emit: ev.Emit = ev.ignore) -> None:
        self.emit = emit
        self.request: Request | None = None
        self.loaded: LoadedModel | None = None
        self.facts: ModelFacts | None = None
        self.reference: Runtime | None = None
        self.candidate: Runtime | None = None
        self.candidate_note: str | None = None
        self.prepared: dict[str, dict[str, PrepareReport]] = {}
        self.session: Session | None = None
        self.replay: Replay | None = None

    # -- opening ------------------------------------------------------------------------------------
    def open(self, request: Request, cancel: threading.Event | None = None,
             loaded: LoadedModel | None = None) -> Session:
        """Summary, clip, restore (unless `loaded` is given), runtimes, preparation: a session ready to run."""
        from rnnt_tui.core.checkpoint import restore
        from rnnt_tui.core.pipeline.facts import NemoFacts
        from rnnt_tui.paths import cache_dir

        request = request.resolved()
        from rnnt_tui.core.bundle.format import is_bundle

        if loaded is None and is_bundle(request.checkpoint):
            return self.open_recorded(request, cancel)
        summary = loaded.summary if loaded is not None else read_summary(request.checkpoint)
        self.emit(ev.SummaryRead(request.checkpoint, summary))
        audio = load_clip(request.clip, summary)
        self.emit(ev.ClipLoaded(audio))
        if loaded is None:
            self.emit(ev.Progress("model", f"Restoring {request.checkpoint.name} with NeMo (importing torch and "
                                           f"NeMo takes a few seconds)…"))
            started = time.perf_counter()
            loaded = restore(request.checkpoint, summary, cache_dir=cache_dir(), cancel=cancel)
            self.emit(ev.ModelRestored(request.checkpoint, time.perf_counter() - started, tuple(loaded.notes)))
        _check_cancel(cancel, "after restoring the model")
        self.close()
        self.loaded, self.request = loaded, request
        self.facts = NemoFacts(loaded, request.settings.joint_mode)
        self.reference = _runtime(REFERENCE_RUNTIME, loaded, request)
        self.prepared = {REFERENCE: {r.component: r for r in self.reference.prepare(self._progress("prepare"),
                                                                                    cancel)}}
        self._prepare_candidate(request, cancel)
        return self._new_session(audio)

    def open_recorded(self, request: Request, cancel: threading.Event | None = None) -> Session:
        """A bundle opened like a checkpoint: NeMo's side as recorded (no torch, no NeMo), the candidate prepared,
        a session on the bundle's first clip (the request's clip is not used: the bundle holds its clips)."""
        from rnnt_tui.core.bundle.replay import Replay, open_for_replay, recorded_settings

        bundle, options = open_for_replay(request.checkpoint, request.against or "mil", None,
                                          request.options.packages_dir, request.options.compute_units)
        try:
            self.close()
            settings = recorded_settings(bundle, None if not request.settings.tolerances_given
                                         else request.settings.tolerances, request.settings.runs,
                                         request.settings.warmup)
            self.emit(ev.SummaryRead(request.checkpoint, bundle_summary(bundle), recorded=True))
            replay = Replay(bundle, request.against or "mil", options, settings, self._progress("prepare"), cancel)
        except BaseException:
            bundle.close()
            raise
        self.replay, self.request = replay, replace(request, settings=settings)  # options: as asked
        self.facts, self.candidate, self.candidate_note = replay.facts, replay.candidate, replay.candidate_note
        self.prepared = dict(replay.prepared)
        session = replay.session(0)
        self.reference = session.reference
        self.emit(ev.ClipLoaded(session.audio))
        self.session = session
        self.emit(ev.SessionReady(self.view()))
        return session

    def rebuild(self, request: Request, cancel: threading.Event | None = None) -> Session:
        """Another clip, candidate, option or setting on the restored model (restores nothing)."""
        if self.replay is not None:
            return self.open_recorded(replace(request, checkpoint=self.replay.bundle.path), cancel)
        if self.loaded is None or self.request is None or self.session is None:
            raise RuntimeError("no model is restored yet")
        request = request.resolved()
        audio = self.session.audio
        if request.clip != self.request.clip:
            audio = load_clip(request.clip, self.loaded.summary)
            self.emit(ev.ClipLoaded(audio))
        old = self.request
        self.request = request
        if (request.against, request.options) != (old.against, old.options):
            if self.candidate is not None:
                self.candidate.close()
            self._prepare_candidate(request, cancel)
        return self._new_session(audio)

    def session_for(self, clip: Path, settings: Settings | None = None) -> Session:
        """A fresh session on another clip with the prepared runtimes (nothing restored, exported or loaded);
        `settings` (how steps run: a corpus times each call once) default to the opened request's."""
        if self.loaded is None or self.facts is None or self.reference is None or self.request is None:
            raise RuntimeError("open a model first")
        audio = as_nemo_reads(self.loaded, load_clip(clip.expanduser().resolve(), self.loaded.summary))
        return Session(self.facts, audio, self.reference, self.candidate, self._settings(settings),
                       self.prepared, self.candidate_note)

    def _settings(self, settings: Settings | None = None) -> Settings:
        """The request's settings (or `settings`), with the tolerances a prepared candidate's programs call for."""
        assert self.request is not None
        chosen = settings or self.request.settings
        return with_program_tolerances(self.candidate, chosen) if CANDIDATE in self.prepared else chosen

    def _prepare_candidate(self, request: Request, cancel: threading.Event | None) -> None:
        assert self.loaded is not None
        self.candidate, self.candidate_note = None, None
        self.prepared.pop(CANDIDATE, None)
        if request.against is None:
            return
        try:
            self.candidate = _runtime(request.against, self.loaded, request)
        except (ImportError, AttributeError) as exc:
            self.candidate_note = f"{request.against} is not available: {exc}"
            return
        reports, self.candidate_note = prepare_candidate(self.candidate, self.emit, cancel)
        if reports is not None:
            self.prepared[CANDIDATE] = reports

    def _new_session(self, audio: Audio) -> Session:
        assert self.facts is not None and self.reference is not None and self.request is not None
        audio = as_nemo_reads(self.loaded, audio) if self.loaded is not None else audio
        session = Session(self.facts, audio, self.reference, self.candidate, self._settings(), self.prepared,
                          self.candidate_note)
        self.session = session
        self.emit(ev.SessionReady(self.view()))
        return session

    def view(self) -> ev.SessionView:
        """What a front end shows of the current session."""
        session = self._current()
        return ev.SessionView(path=session.facts.path, summary=session.facts.summary, audio=session.audio,
                              reference_label=session.reference.label,
                              candidate_label=session.candidate.label if session.candidate is not None else None,
                              candidate_note=session.candidate_unavailable, fuse=session.fuse(),
                              runs=session.settings.runs, warmup=session.settings.warmup,
                              options=self.request)

    # -- running ------------------------------------------------------------------------------------
    def run_steps(self, names: list[str] | tuple[str, ...], cancel: threading.Event | None = None) -> Session:
        """Run steps in order on the current session, emitting each result as it lands."""
        session = self._current()
        for name in names:
            self.emit(ev.StepStarted(name))
            result = session.run_step(name, self._progress("step"), cancel)
            self.emit(ev.StepFinished(name, result, session.decode_comparison if name == "decode" else None,
                                      session.audio.duration_s))
        return session

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
        """Release the runtimes (the restored model goes with the pipeline) and an open bundle."""
        for runtime in (self.candidate, self.reference):
            if runtime is not None:
                runtime.close()
        if self.replay is not None:
            self.replay.bundle.close()
        self.candidate = self.reference = self.replay = None
        self.session = None

    def _current(self) -> Session:
        if self.session is None:
            raise RuntimeError("the model is still loading")
        return self.session

    def _progress(self, job: str) -> ev.ProgressCallback:
        return ev.progress_of(self.emit, job)


def bundle_summary(bundle: Bundle) -> ModelSummary:
    from rnnt_tui.core.bundle.facts import summary_from_json

    return summary_from_json(bundle.meta["model"]["summary"])


def _runtime(name: str, loaded: LoadedModel, request: Request) -> Runtime:
    from rnnt_tui.core.runtimes import get_runtime_class

    return get_runtime_class(name)(loaded, request.options)


def _check_cancel(cancel: threading.Event | None, where: str) -> None:
    if cancel is not None and cancel.is_set():
        raise CancelledError(f"cancelled {where}")


def open_session(request: Request, emit: ev.Emit = ev.ignore, cancel: threading.Event | None = None,
                 loaded: LoadedModel | None = None) -> Session:
    """Open `request` in a new pipeline and return its session (for one-shot front ends and tests)."""
    return Pipeline(emit).open(request, cancel, loaded)
