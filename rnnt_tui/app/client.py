"""The app's engine client: every call to the engine, with an id, and which events still count.

Textual-free (tested without it, `tests/test_app_state.py`). The app begins a call here (`begin`, on its own
thread), runs it in a worker thread (`run`), and each event the engine emits comes back in an `engine.Envelope`
through `sink` in the order the engine emitted it. When the app handles an event it asks `accept` first: an event
is dropped when it is out of order, when its call was cancelled or replaced by a newer call of the same kind (a
cancelled run's late `StepFinished`), or when it is about a session older than the one on screen. So the screen's
end state after a cancel is what the cancel set, whatever the engine was still finishing.

Widgets and screens never reach the engine; only this client does.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rnnt_tui.core.pipeline.events import SessionReady

if TYPE_CHECKING:
    from rnnt_tui.app.engine import Engine, Envelope
    from rnnt_tui.app.engine_process import ProcessEngine


@dataclass
class Call:
    """One call: its id, its group (one live call per group: a new one replaces the old), what to say if it is
    cancelled, and the cancel flag the core polls."""

    id: int
    group: str
    cancelled_text: str = "Cancelled"
    cancel: threading.Event = field(default_factory=threading.Event)


class EngineClient:
    """Calls to one engine (`engine.Engine` in-process, or `engine_process.ProcessEngine`)."""

    def __init__(self, engine: Engine | ProcessEngine, sink: Callable[[Envelope], object]) -> None:
        self.engine = engine
        self.sink = sink
        self._ids = itertools.count(1)
        self._live: dict[str, Call] = {}
        self._stale: set[int] = set()
        self._lock = threading.Lock()
        self.last_seq = 0
        self.session = 0  # the session whose `SessionReady` was accepted last (the one on screen)

    # -- calls (begin and cancel on the app's thread; run in a worker thread) ------------------------------
    def begin(self, group: str, cancelled_text: str = "Cancelled") -> Call:
        """A new call of `group`; a live call of the same group is cancelled (its events now stale)."""
        call = Call(next(self._ids), group, cancelled_text)
        with self._lock:
            old = self._live.get(group)
            self._live[group] = call
        if old is not None:
            self._drop(old)
        return call

    def cancel(self, groups: tuple[str, ...]) -> list[Call]:
        """Cancel the live calls of `groups`: their flags set, their events and endings dropped from now on."""
        with self._lock:
            calls = [self._live.pop(g) for g in groups if g in self._live]
        for call in calls:
            self._drop(call)
        return calls

    def _drop(self, call: Call) -> None:
        self._stale.add(call.id)
        call.cancel.set()

    def end(self, call: Call) -> None:
        with self._lock:
            if self._live.get(call.group) is call:
                del self._live[call.group]

    def live(self, group: str) -> bool:
        return group in self._live

    def is_stale(self, call: int) -> bool:
        return call in self._stale

    @contextmanager
    def running(self, call: Call) -> Iterator[None]:
        """Around a call's work in its worker thread: counted as active until it really returns."""
        with self.engine.track():
            try:
                yield
            finally:
                self.end(call)

    def run(self, call: Call, method: str, *args: Any) -> Any:
        """`engine.<method>(*args, sink, cancel, call=id)`: the call's events go to the sink."""
        return getattr(self.engine, method)(*args, self.sink, call.cancel, call=call.id)

    # -- events (on the app's thread, as each is handled) ---------------------------------------------------
    def accept(self, envelope: Envelope) -> bool:
        """Whether to apply this event: in order, from a live call, about the session on screen or a newer one."""
        if envelope.seq <= self.last_seq or envelope.call in self._stale or envelope.session < self.session:
            return False
        self.last_seq = envelope.seq
        if isinstance(envelope.event, SessionReady):
            self.session = envelope.session
        return True

    # -- calls that post no events -------------------------------------------------------------------------
    def check_runtimes(self) -> Any:
        return self.engine.check_runtimes()

    def export(self, *args: Any) -> Any:
        return self.engine.export(*args)

    @property
    def active(self) -> int:
        return self.engine.active

    def stop(self) -> None:
        self.engine.stop()
