"""The engine process's own side (what `engine_process.ProcessEngine` starts): serve one engine over the socket the
app handed it.

Imported only in the child (and for its constants by `engine_process`): no Textual, nothing heavy at import. The
child imports what an open needs (the engine class's `PRELOAD`) before it serves; each call runs in its own
thread; events and replies are pickled back in the engine's order. It runs at `NICENESS` - from its first
instruction (`engine_process._CHILD`), or, started `urgent` (a bundle's light open, sent ahead while the app
builds its first frame), once its first call is done.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from rnnt_tui.core.errors import RnntTuiError

ENGINE = "rnnt_tui.app.engine:Engine"  # what the child serves
#: the child's CPU priority (a nice increment): on a machine whose cores the model's work fills (torch uses them
#: all), the screen still gets a core at once when it has something to draw; when it has not, the work runs at full
#: speed
NICENESS = 10


def _encode_error(exc: BaseException) -> bytes:
    """The exception itself when it pickles (the app's handler tells bad files, cancels and write errors apart
    by type), else a RuntimeError with its text; unexpected ones carry the child's traceback as a note."""
    if not isinstance(exc, RnntTuiError | OSError):
        exc.add_note("In the engine process:\n" + "".join(traceback.format_exception(exc)).rstrip())
    try:
        blob = pickle.dumps(exc)
        pickle.loads(blob)  # checks the exception can be rebuilt
    except Exception:  # noqa: BLE001
        fallback = RuntimeError(f"{type(exc).__name__}: {exc}")
        fallback.__notes__ = list(getattr(exc, "__notes__", []))
        blob = pickle.dumps(fallback)
    return blob


def main(fd: str, engine: str = ENGINE, numbering_from: int = 0, urgent: bool = False) -> None:
    """The child process's entry point (at `NICENESS`, set by `_CHILD`, unless `urgent`): serve the app on the
    socket it was handed, once it has imported what the first open needs (`PRELOAD` of the engine class)."""
    module, _, name = engine.partition(":")
    served = getattr(importlib.import_module(module), name)
    for preload in getattr(served, "PRELOAD", ()):  # a call sent meanwhile waits in the socket
        with contextlib.suppress(Exception):  # a module that cannot load fails the call that needs it, with why
            importlib.import_module(preload)
    serve(Connection(int(fd)), served(numbering_from), urgent)


def lower_priority() -> None:
    """`NICENESS` for every thread of this process (Linux keeps a nice value per thread; macOS per process)."""
    if not hasattr(os, "setpriority"):
        return
    target = os.getpriority(os.PRIO_PROCESS, 0) + NICENESS
    tasks = Path("/proc/self/task")
    for tid in [int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [0]:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, target)


def serve(conn: Connection, engine: Any, urgent: bool = False) -> None:
    """The child: one engine; each call in its own thread; exits when the app's end of the pipe closes. Events
    are numbered and sent under the engine's one order lock (`Engine.emitter`), so the pipe carries them in
    order; a call's reply is sent after its last event. `urgent`: the process lowers its priority once its
    first call is done."""
    send_lock = threading.Lock()
    cancels: dict[int, threading.Event] = {}
    lowered = threading.Lock() if urgent else None  # held once the priority is lowered

    def send(kind: str, pipe_id: int, blob: bytes) -> None:
        with send_lock:
            conn.send((kind, pipe_id, blob))

    def poster(pipe_id: int) -> Callable[[Any], None]:
        def post(envelope: Any) -> None:
            send("post", pipe_id, pickle.dumps(envelope))

        return post

    def run(pipe_id: int, cancel: threading.Event, method: str, args: tuple[Any, ...],
            kwargs: dict[str, Any] | None) -> None:
        try:
            if kwargs is None:
                result = getattr(engine, method)(*args)
            else:
                result = getattr(engine, method)(*args, poster(pipe_id), cancel, **kwargs)
            send("done", pipe_id, pickle.dumps(result))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
            send("error", pipe_id, _encode_error(exc))
        finally:
            cancels.pop(pipe_id, None)
            if lowered is not None and lowered.acquire(blocking=False):  # the first call to end: once
                lower_priority()

    while True:
        try:
            item = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            break
        if item[0] == "call":
            _, pipe_id, method, args, kwargs = item
            cancel = cancels[pipe_id] = threading.Event()
            threading.Thread(target=run, args=(pipe_id, cancel, method, args, kwargs), daemon=True,
                             name=f"rnnt-tui-engine-{method}").start()
        elif item[0] == "cancel":
            flag = cancels.get(item[1])  # one look-up: the call's thread may drop it at any moment
            if flag is not None:
                flag.set()
    os._exit(0)  # the app is gone: do not wait for a thread still inside torch or an export
