"""The Textual messages of the app: one per core event, and the app's own few.

The engine (in its child process) emits plain core events in `engine.Envelope`s (call, session, order); the
client posts each as the message of its event's type (`message_for`, keyed by the event class itself: a renamed
or new event fails `tests/test_app_state.py`, never silently goes unshown), and the app handles each type in its
own `on_<name>` handler. A `Progress` can replace an earlier, not yet handled `Progress` of the same job and call,
so a fast export cannot pile up hundreds of updates in the queue.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.message import Message

from rnnt_tui.core.pipeline import events as ev

if TYPE_CHECKING:
    from rnnt_tui.app.engine import Envelope
    from rnnt_tui.core.pipeline.pipeline import RuntimeChoice


class EngineEvent(Message):
    """One enveloped core event; subclasses name the event's type (so Textual routes it to its handler)."""

    def __init__(self, envelope: Envelope) -> None:
        super().__init__()
        self.envelope = envelope

    @property
    def event(self) -> Any:
        return self.envelope.event


class SummaryRead(EngineEvent):
    """The checkpoint's config was read."""


class ClipLoaded(EngineEvent):
    """The clip was read and resampled."""


class ModelRestored(EngineEvent):
    """NeMo restored the model."""


class Progress(EngineEvent):
    """Work under way."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, Progress) and message.envelope.call == self.envelope.call \
            and message.event.job == self.event.job


class CandidateFailed(EngineEvent):
    """The candidate could not be prepared."""


class SessionReady(EngineEvent):
    """A new session: runtimes prepared, nothing run yet."""


class StepStarted(EngineEvent):
    """A step started."""


class StepFinished(EngineEvent):
    """A step finished: its result only."""


class StepCleared(EngineEvent):
    """A step's result no longer holds."""


class FuseChanged(EngineEvent):
    """The reference joint's mode changed."""


class SweepUnitStarted(EngineEvent):
    """The compute-unit sweep started on one unit."""


class SweepUnitFinished(EngineEvent):
    """The compute-unit sweep finished one unit (its row, whatever happened on it)."""


class CorpusPlanned(EngineEvent):
    """A corpus run is planned (what is done already, what is left)."""


class UtteranceStarted(EngineEvent):
    """A corpus utterance started."""


class UtteranceFinished(EngineEvent):
    """A corpus utterance finished."""


class CorpusFinished(EngineEvent):
    """A corpus run ended."""


PIPELINE_MESSAGES: dict[type[ev.Event], type[EngineEvent]] = {
    ev.SummaryRead: SummaryRead, ev.ClipLoaded: ClipLoaded, ev.ModelRestored: ModelRestored,
    ev.Progress: Progress, ev.CandidateFailed: CandidateFailed, ev.SessionReady: SessionReady,
    ev.StepStarted: StepStarted, ev.StepFinished: StepFinished, ev.StepCleared: StepCleared,
    ev.FuseChanged: FuseChanged, ev.SweepUnitStarted: SweepUnitStarted, ev.SweepUnitFinished: SweepUnitFinished,
}


@functools.cache
def corpus_messages() -> dict[type[ev.Event], type[EngineEvent]]:
    """The corpus runner's events (its module loads numpy: only once a corpus event arrived, which unpickling it
    has imported already)."""
    from rnnt_tui.core.corpus import runner

    return {runner.CorpusPlanned: CorpusPlanned, runner.UtteranceStarted: UtteranceStarted,
            runner.UtteranceFinished: UtteranceFinished, runner.CorpusFinished: CorpusFinished}


class ChunkCompared(EngineEvent):
    """One chunk of a streaming comparison compared."""


class WindowCompared(EngineEvent):
    """One window of a fixed-window comparison compared."""


@functools.cache
def stream_messages() -> dict[type[ev.Event], type[EngineEvent]]:
    """The streaming and fixed-window comparisons' events (their modules load numpy: only once such an event
    arrived, which unpickling it has imported already)."""
    from rnnt_tui.core.stream import compare, windows

    return {compare.ChunkCompared: ChunkCompared, windows.WindowCompared: WindowCompared}


def message_for(envelope: Envelope) -> EngineEvent:
    """The message of the envelope's event type (a bare `EngineEvent`, which nothing handles, for an event the
    app has no message for: the tests list every event class so that never ships)."""
    kind = type(envelope.event)
    cls = PIPELINE_MESSAGES.get(kind) or corpus_messages().get(kind) or stream_messages().get(kind, EngineEvent)
    return cls(envelope)


@dataclass
class RuntimesChecked(Message):
    """Which candidate runtimes can run here, their labels, and why not."""

    availability: dict[str, RuntimeChoice]


@dataclass
class StreamDone(Message):
    """A streaming comparison ended: its whole report (`StreamResult.to_json`). `call`: the client's call id (a
    report of a call cancelled or replaced since is not shown)."""

    report: dict[str, Any]
    call: int = 0


@dataclass
class WindowsDone(Message):
    """A fixed-window comparison ended: its whole report (`WindowsResult.to_json`); `call` as `StreamDone`'s."""

    report: dict[str, Any]
    call: int = 0


@dataclass
class JobDone(Message):
    """A job ended (finished or cancelled), so the status line can settle. `call`: the client's call id (a job
    the user cancelled, or that a newer one replaced, settled the screen already: its end is not shown)."""

    job: str
    text: str
    cancelled: bool = False
    call: int = 0


@dataclass
class Exported(Message):
    """A report was written; the paths to tell the user."""

    paths: list[Path]
