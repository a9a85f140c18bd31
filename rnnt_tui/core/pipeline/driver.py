"""The one driver: how a candidate is prepared, how a session is built and how its steps run, for every front end.

`run_steps(session, steps, emit, cancel)` is the only loop over steps: `compare`, `run`, corpus runs, `record`,
`replay`, the compute-unit sweep and the app (through `Pipeline.run_steps`) all call it, so every front end sees
the same `StepStarted` / `Progress` / `StepFinished` events in the same order. `prepare_candidate` is the only place
a candidate is exported / converted / loaded, with one verdict per failure kind:

- bad input (`BadInputError`: a missing package folder, a corrupt file) propagates: exit 2, nothing compared;
- the candidate cannot run here (its module does not load, `availability()` says no, or preparing raised
  `RuntimeUnavailableError`): `CandidateState.unavailable`, status "unavailable", exit 3; the reference runs;
- the export / conversion / load crashed: `CandidateFailed` (reason and traceback), `CandidateState.failed`,
  status "failed", exit 4; the reference runs.

`new_session` is the only place a `Session` is constructed.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from rnnt_tui.core.components import STEPS
from rnnt_tui.core.errors import BadInputError, CancelledError, RuntimeUnavailableError
from rnnt_tui.core.names import CANDIDATE
from rnnt_tui.core.pipeline import events as ev
from rnnt_tui.core.pipeline.context import error_text
from rnnt_tui.core.pipeline.session import DECODE, Session, Step

if TYPE_CHECKING:
    from rnnt_tui.core.audio import Audio
    from rnnt_tui.core.pipeline.facts import ModelFacts
    from rnnt_tui.core.pipeline.request import Settings
    from rnnt_tui.core.runtimes.base import PrepareReport, Runtime
    from rnnt_tui.core.stats.results import StepResult

Reports = dict[str, "PrepareReport"]


@dataclass(frozen=True)
class CandidateState:
    """How preparing the candidate went: its reports when it prepared, else why it does not run. `unavailable`:
    it cannot run here (exit 3); `failed`: preparing it crashed (exit 4, `details` holds the traceback)."""

    reports: dict[str, PrepareReport] | None = None
    unavailable: str | None = None
    failed: str | None = None
    details: str | None = None

    @property
    def note(self) -> str | None:
        """Why the candidate does not run (None: it runs)."""
        return self.failed or self.unavailable


NO_CANDIDATE = CandidateState()


def prepare_candidate(candidate: Runtime, emit: ev.Emit = ev.ignore, cancel: threading.Event | None = None
                      ) -> CandidateState:
    """Export / convert / load `candidate` (even where it cannot run: conversion problems show on any OS); the
    one verdict per failure kind is the module docstring's."""
    availability = candidate.availability()
    try:
        reports = candidate.prepare(ev.progress_of(emit, "prepare"), cancel)
    except (CancelledError, BadInputError):
        raise
    except RuntimeUnavailableError as exc:
        return CandidateState(unavailable=str(exc) or availability.reason or f"{candidate.label} cannot run here")
    except Exception as exc:  # noqa: BLE001 - the reference still runs; the reason and traceback are shown
        note = f"{candidate.label} could not be prepared: {error_text(exc)}"
        details = traceback.format_exc()
        emit(ev.CandidateFailed(candidate.label, note, details))
        return CandidateState(failed=note, details=details)
    by_component = {r.component: r for r in reports}
    return CandidateState(by_component, None if availability.ok else availability.reason)


def open_candidate(name: str, make: Callable[[], Runtime], emit: ev.Emit = ev.ignore,
                   cancel: threading.Event | None = None) -> tuple[Runtime | None, CandidateState]:
    """Build the candidate `name` with `make` and prepare it: (the runtime or None, how it went). A runtime whose
    module does not load here is unavailable."""
    try:
        candidate = make()
    except (ImportError, AttributeError) as exc:
        return None, CandidateState(unavailable=f"{name} is not available: {exc}")
    return candidate, prepare_candidate(candidate, emit, cancel)


def with_program_tolerances(candidate: Runtime | None, settings: Settings) -> Settings:
    """`settings` with the tolerances the candidate's programs call for (their real compute precision), unless the
    user gave tolerances."""
    if settings.tolerances_given or candidate is None:
        return settings
    picked = candidate.tolerances()
    return settings if picked is None else replace(settings, tolerances=picked)


def new_session(facts: ModelFacts, audio: Audio, reference: Runtime, candidate: Runtime | None, settings: Settings,
                prepared: dict[str, Reports], state: CandidateState = NO_CANDIDATE,
                overrides: dict[str, Step] | None = None,
                after_step: Callable[[StepResult], None] | None = None) -> Session:
    """A session: the clip, both runtimes as prepared, and the settings (with the candidate's program tolerances
    when it prepared)."""
    prepared = dict(prepared)
    if candidate is not None and state.reports is not None:
        prepared[CANDIDATE] = state.reports
        settings = with_program_tolerances(candidate, settings)
    else:
        prepared.pop(CANDIDATE, None)
    return Session(facts, audio, reference, candidate, settings, prepared, state.note, overrides, after_step,
                   candidate_failed=state.failed is not None)


def prepare_session(facts: ModelFacts, audio: Audio, reference: Runtime, candidate: Runtime | None,
                    settings: Settings, emit: ev.Emit = ev.ignore, cancel: threading.Event | None = None) -> Session:
    """Prepare both runtimes and return a session on `audio` (for callers that bring their own runtimes)."""
    prepared = {"reference": {r.component: r for r in reference.prepare(ev.progress_of(emit, "prepare"), cancel)}}
    state = prepare_candidate(candidate, emit, cancel) if candidate is not None else NO_CANDIDATE
    return new_session(facts, audio, reference, candidate, settings, prepared, state)


def run_steps(session: Session, steps: Sequence[str] = STEPS, emit: ev.Emit = ev.ignore,
              cancel: threading.Event | None = None) -> Session:
    """Run `steps` in order on `session` (each one's upstream first if needed), emitting `StepStarted`, the
    step's `Progress` and `StepFinished` with that step's result as it lands. The only loop over steps."""
    progress = ev.progress_of(emit, "step")
    for name in steps:
        emit(ev.StepStarted(name))
        result = session.run_step(name, progress, cancel)
        emit(ev.StepFinished(name, result, session.decode_comparison if name == DECODE else None,
                             session.audio.duration_s))
    return session
