"""A scripted engine for the engine-process transport tests (`test_app_engine.py`): the real `Engine` class (its
envelopes, numbering and order lock) with `run_steps` driven by a script instead of the core, so a test can send
a burst of events, block until cancelled, hang until killed, or read the child's `sys.modules`. Imported only by
the child process those tests start; never by the package."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence

from rnnt_tui.app.engine import Engine, Post
from rnnt_tui.core.errors import CancelledError
from rnnt_tui.core.pipeline import events as ev


class ScriptedEngine(Engine):
    """`run_steps(["burst:N", "block", "hang"])`: N progress events, a step that waits for its cancel flag, a
    step that never returns. No engine lock: concurrent calls interleave, as the transport must survive."""

    PRELOAD = ()  # the transport needs none of the core

    def run_steps(self, names: Sequence[str], post: Post, cancel: threading.Event, call: int = 0) -> None:
        emit = self.emitter(post, call, self.session_id)
        for name in names:
            kind, _, arg = name.partition(":")
            if kind == "burst":
                for i in range(int(arg)):
                    emit(ev.Progress("step", str(i)))
            elif kind in ("block", "hang"):
                emit(ev.StepStarted(kind))
                deadline = time.monotonic() + (3600 if kind == "hang" else 60)
                while time.monotonic() < deadline:
                    if kind == "block" and cancel.wait(0.005):
                        raise CancelledError("cancelled mid-step")
                    time.sleep(0.005)
            emit(ev.StepFinished(kind, None))  # type: ignore[arg-type]

    def open_checkpoint(self, request: object, post: Post, cancel: threading.Event, call: int = 0) -> None:
        """`request`: how many progress events to send (a fresh child needs an open before anything else)."""
        self.run_steps([f"burst:{request}"], post, cancel, call)

    def modules(self) -> list[str]:
        return sorted(sys.modules)
