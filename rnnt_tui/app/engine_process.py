"""The app's engine in a child process, so the UI process never imports torch, NeMo or the runtimes and its event
loop never waits for the GIL while they work.

Why a process: a worker thread cannot keep the event loop answering through native code that holds the GIL for
hundreds of milliseconds or seconds - loading libtorch, torch.onnx's graph serialisation, coremltools' package
writer, the cyclic GC walking a model's objects (bench/stalls.py measured 0.4 s on the demo, 3.2 s on a 120 M
Conformer). `ProcessEngine` has `engine.Engine`'s methods and runs one `Engine` in a child Python process, started
with subprocess and spoken to over a socket pair through multiprocessing's `Connection` (multiprocessing's spawn
needs a real `sys.stderr` for its resource tracker, and Textual has replaced it). Each call crosses with an id and
runs in its own thread there (the engine's lock serialises them as before); the messages it posts come back as
they happen (the core's plain pipeline events: the child never imports Textual) and are posted to the app from a
reader thread; the caller's cancel flag is forwarded. `stop()` kills
the child, so quitting mid-import or mid-conversion is immediate (the artifact cache is atomic: a killed build
leaves nothing). A child that dies is reported to the callers waiting on it; a fresh one starts on the next call.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import queue
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnt_tui.app.engine import ActiveWorkers, Engine, Post
from rnnt_tui.core.errors import CancelledError, RnntTuiError

if TYPE_CHECKING:
    from rnnt_tui.core.pipeline.pipeline import RuntimeChoice as Availability
    from rnnt_tui.core.pipeline.request import Request
    from rnnt_tui.core.sweep import SweepRow

POLL_S = 0.05  # how often a waiting caller looks at its cancel flag
_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding this rnnt_tui package
_CHILD = "import sys; sys.path.insert(0, sys.argv[1]); from rnnt_tui.app.engine_process import main; main(sys.argv[2])"


class EngineStoppedError(RnntTuiError):
    """The engine process ended while a call was waiting on it (it crashed or was killed)."""


class ProcessEngine(ActiveWorkers):
    """`engine.Engine`, run in a child process; the same methods, called from the app's worker threads."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._calls: dict[int, queue.Queue[tuple[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._stopping = False

    # -- the Engine's methods -----------------------------------------------------------------------
    def open_checkpoint(self, request: Request, post: Post, cancel: threading.Event) -> None:
        self._call("open_checkpoint", (request,), post, cancel)

    def rebuild(self, request: Request, post: Post, cancel: threading.Event) -> None:
        self._call("rebuild", (request,), post, cancel)

    def precision(self, precision: str, weights: str | None, post: Post, cancel: threading.Event) -> dict[str, Any]:
        result: dict[str, Any] = self._call("precision", (precision, weights), post, cancel)
        return result

    def run_corpus(self, manifest: Path, post: Post, cancel: threading.Event) -> None:
        self._call("run_corpus", (manifest,), post, cancel)

    def run_steps(self, names: list[str], post: Post, cancel: threading.Event) -> None:
        self._call("run_steps", (list(names),), post, cancel)

    def set_joint_mode(self, mode: str, rerun: bool, post: Post, cancel: threading.Event) -> None:
        self._call("set_joint_mode", (mode, rerun), post, cancel)

    def check_runtimes(self) -> dict[str, Availability]:
        result: dict[str, Availability] = self._call("check_runtimes", ())
        return result

    def sweep(self, post: Post, cancel: threading.Event) -> list[SweepRow]:
        result: list[SweepRow] = self._call("sweep", (), post, cancel)
        return result

    def export(self, directory: Path, stem: str) -> list[Path]:
        result: list[Path] = self._call("export", (directory, stem))
        return result

    def stop(self) -> None:
        """Kill the child (quitting): every waiting call ends with `CancelledError` at once."""
        with self._lock:
            self._stopping = True
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()

    # -- the pipe -----------------------------------------------------------------------------------
    def _call(self, method: str, args: tuple[Any, ...], post: Post | None = None,
              cancel: threading.Event | None = None) -> Any:
        inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        with self._lock:
            if self._stopping:
                raise CancelledError("the app is quitting")
            conn = self._started()
            call_id = next(self._ids)
            self._calls[call_id] = inbox
            try:
                conn.send(("call", call_id, method, args, post is not None))
            except OSError:
                inbox.put(("stopped", None))
        told_cancel = False
        try:
            while True:
                try:
                    kind, payload = inbox.get(timeout=POLL_S)
                except queue.Empty:
                    if cancel is not None and not told_cancel and cancel.is_set():
                        told_cancel = self._send(("cancel", call_id))
                    continue
                if kind == "post" and post is not None:
                    post(payload)
                elif kind == "done":
                    return payload
                elif kind == "error":
                    raise payload
                elif kind == "stopped":
                    if self._stopping or told_cancel:
                        raise CancelledError(f"stopped during {method}")
                    raise EngineStoppedError(f"the engine process stopped unexpectedly during {method} "
                                             f"(exit code {payload}); open the checkpoint again (o)")
        finally:
            with self._lock:
                self._calls.pop(call_id, None)

    def _send(self, item: tuple[Any, ...]) -> bool:
        with self._lock:
            if self._conn is None:
                return False
            try:
                self._conn.send(item)
            except OSError:
                return False
        return True

    def _started(self) -> Connection:
        """The pipe to a running child, starting one if needed (called under `_lock`)."""
        if self._proc is not None and self._proc.poll() is None and self._conn is not None:
            return self._conn
        mine, theirs = socket.socketpair()
        with theirs:
            proc = subprocess.Popen([sys.executable, "-c", _CHILD, _ROOT, str(theirs.fileno())],
                                    pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        conn = Connection(mine.detach())
        self._proc, self._conn = proc, conn
        threading.Thread(target=self._read, args=(conn, proc), name="rnnt-tui-engine-reader", daemon=True).start()
        return conn

    def _read(self, conn: Connection, proc: subprocess.Popen[bytes]) -> None:
        """Deliver what the child sends to the call it belongs to; when the child ends, tell every waiting call."""
        while True:
            try:
                kind, call_id, blob = conn.recv()
            except (EOFError, OSError):
                break
            with self._lock:
                inbox = self._calls.get(call_id)
            if inbox is None:
                continue
            try:
                payload = _decode(kind, blob)
            except Exception as exc:  # noqa: BLE001 - a result that cannot be read fails its call, not the app
                kind, payload = "error", RuntimeError(f"cannot read the engine's reply: {type(exc).__name__}: {exc}")
            inbox.put((kind, payload))
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with self._lock:
            if self._proc is proc:
                self._proc, self._conn = None, None
            waiting = list(self._calls.values())
        conn.close()
        for inbox in waiting:
            inbox.put(("stopped", proc.returncode))


def _decode(kind: str, blob: bytes) -> Any:
    return pickle.loads(blob)  # from our own child process, over a private pipe: core events and results


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


NICENESS = 10


def main(fd: str) -> None:
    """The child process's entry point: serve the app on the socket it was handed. At a lower CPU priority: on
    a machine whose cores the model's work fills (torch uses them all), the screen still gets a core at once
    when it has something to draw; when it has not, the work runs at full speed."""
    if hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(NICENESS)
    serve(Connection(int(fd)))


def serve(conn: Connection) -> None:
    """The child: one `Engine`; each call in its own thread; exits when the app's end of the pipe closes."""
    engine = Engine()
    send_lock = threading.Lock()
    cancels: dict[int, threading.Event] = {}

    def send(kind: str, call_id: int, blob: bytes) -> None:
        with send_lock:
            conn.send((kind, call_id, blob))

    def poster(call_id: int) -> Callable[[Any], None]:
        def post(event: Any) -> None:
            send("post", call_id, pickle.dumps(event))

        return post

    def run(call_id: int, method: str, args: tuple[Any, ...], with_post: bool) -> None:
        cancel = cancels[call_id]
        try:
            extra = (poster(call_id), cancel) if with_post else ()
            result = getattr(engine, method)(*args, *extra)
            send("done", call_id, pickle.dumps(result))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
            send("error", call_id, _encode_error(exc))
        finally:
            cancels.pop(call_id, None)

    while True:
        try:
            item = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            break
        if item[0] == "call":
            _, call_id, method, args, with_post = item
            cancels[call_id] = threading.Event()
            threading.Thread(target=run, args=(call_id, method, args, with_post), daemon=True,
                             name=f"rnnt-tui-engine-{method}").start()
        elif item[0] == "cancel" and item[1] in cancels:
            cancels[item[1]].set()
    os._exit(0)  # the app is gone: do not wait for a thread still inside torch or an export
