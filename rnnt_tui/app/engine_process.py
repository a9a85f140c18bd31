"""The app's engine in a child process, so the UI process never imports torch, NeMo or the runtimes and its event
loop never waits for the GIL while they work.

Why a process: a worker thread cannot keep the event loop answering through native code that holds the GIL for
hundreds of milliseconds or seconds - loading libtorch, torch.onnx's graph serialisation, coremltools' package
writer, the cyclic GC walking a model's objects (bench/stalls.py measured 0.4 s on the demo, 3.2 s on a 120 M
Conformer). `ProcessEngine` has `engine.Engine`'s methods and runs one `Engine` in a child Python process, started
with subprocess and spoken to over a socket pair through multiprocessing's `Connection` (multiprocessing's spawn
needs a real `sys.stderr` for its resource tracker, and Textual has replaced it). Each call crosses with an id and
runs in its own thread there (the engine's lock serialises them as before); the events it emits (`engine.Envelope`:
the core's plain event, its call, session and sequence number; the child never imports Textual) come back as
they happen and are posted to the app by the one reader thread, so the app receives them in the order the engine
emitted them whatever call they belong to; the caller's cancel flag is forwarded. `stop()` kills the child, so
quitting mid-import or mid-conversion is immediate (the artifact cache is atomic: a killed build leaves nothing).
A child that dies is reported to the calls that were sent to it (not to calls already sent to its replacement);
until the next open, a call that needs the model it held fails the same way; a fresh child starts on the next
call.
"""

from __future__ import annotations

import contextlib
import importlib
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
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnt_tui.app.engine import ActiveWorkers, Post
from rnnt_tui.core.errors import CancelledError, RnntTuiError

if TYPE_CHECKING:
    from rnnt_tui.core.corpus.subset import Subset
    from rnnt_tui.core.pipeline.pipeline import RuntimeChoice as Availability
    from rnnt_tui.core.pipeline.request import Request
    from rnnt_tui.core.sweep import SweepRow

POLL_S = 0.05  # how often a waiting caller looks at its cancel flag
_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding this rnnt_tui package
_CHILD = ("import sys; sys.path.insert(0, sys.argv[1]); from rnnt_tui.app.engine_process import main; "
          "main(sys.argv[2], sys.argv[3], int(sys.argv[4]))")
NUMBERS_PER_CHILD = 10**12  # each child numbers its sessions and events from its own block
#: the calls that use the model a child holds: after that child died they fail until the next open
NEEDS_MODEL = ("rebuild", "run_steps", "set_joint_mode", "sweep", "run_corpus", "precision", "export", "run_stream",
               "coreai_drift")
ENGINE = "rnnt_tui.app.engine:Engine"  # what the child serves


class EngineStoppedError(RnntTuiError):
    """The engine process ended while a call was waiting on it (it crashed or was killed)."""


@dataclass
class _Call:
    """A call waiting on the child: its reply box, where its events go, and the child it was sent to."""

    inbox: queue.Queue[tuple[str, Any]]
    post: Post | None
    conn: Connection


class ProcessEngine(ActiveWorkers):
    """`engine.Engine`, run in a child process; the same methods, called from the app's worker threads."""

    def __init__(self, engine: str = ENGINE) -> None:
        """`engine`: the engine class the child runs, as `module:Class` (tests run a scripted one)."""
        super().__init__()
        self._engine = engine
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._calls: dict[int, _Call] = {}
        self._ids = itertools.count(1)
        self._children = 0
        self._lost: int | None = None  # exit code of a child that died holding the model (until the next open)
        self._stopping = False

    # -- the Engine's methods -----------------------------------------------------------------------
    def open_checkpoint(self, request: Request, post: Post, cancel: threading.Event, call: int = 0) -> None:
        self._call("open_checkpoint", (request,), post, cancel, call)

    def rebuild(self, request: Request, post: Post, cancel: threading.Event, call: int = 0) -> None:
        self._call("rebuild", (request,), post, cancel, call)

    def precision(self, precision: str, weights: str | None, runtime: str, post: Post, cancel: threading.Event,
                  call: int = 0) -> dict[str, Any]:
        result: dict[str, Any] = self._call("precision", (precision, weights, runtime), post, cancel, call)
        return result

    def run_corpus(self, manifest: Path, stream: bool, subset: Subset | None, post: Post,
                   cancel: threading.Event, call: int = 0) -> None:
        self._call("run_corpus", (manifest, stream, subset), post, cancel, call)

    def run_steps(self, names: list[str], post: Post, cancel: threading.Event, call: int = 0) -> None:
        self._call("run_steps", (list(names),), post, cancel, call)

    def set_joint_mode(self, mode: str, rerun: bool, post: Post, cancel: threading.Event, call: int = 0) -> None:
        self._call("set_joint_mode", (mode, rerun), post, cancel, call)

    def check_runtimes(self) -> dict[str, Availability]:
        result: dict[str, Availability] = self._call("check_runtimes", ())
        return result

    def sweep(self, drift: bool, post: Post, cancel: threading.Event, call: int = 0) -> list[SweepRow]:
        result: list[SweepRow] = self._call("sweep", (drift,), post, cancel, call)
        return result

    def run_stream(self, post: Post, cancel: threading.Event, call: int = 0) -> dict[str, Any]:
        result: dict[str, Any] = self._call("run_stream", (), post, cancel, call)
        return result

    def coreai_drift(self, components: list[str], post: Post, cancel: threading.Event,
                     call: int = 0) -> dict[str, Any]:
        result: dict[str, Any] = self._call("coreai_drift", (list(components),), post, cancel, call)
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
    def invoke(self, method: str, *args: Any, post: Post | None = None, cancel: threading.Event | None = None,
             call: int = 0) -> Any:
        """Any method of the child's engine by name (what the named methods above use)."""
        return self._call(method, args, post, cancel, call)

    def _call(self, method: str, args: tuple[Any, ...], post: Post | None = None,
              cancel: threading.Event | None = None, call: int = 0) -> Any:
        """Send one call and wait for its reply. Its events are not handled here: the reader posts every event
        of every call itself, in the order the child sent them (one thread, so one order)."""
        inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        with self._lock:
            if self._stopping:
                raise CancelledError("the app is quitting")
            if self._proc is not None and self._proc.poll() is not None and self._lost is None:
                self._lost = self._proc.returncode  # died since the last call: its reader may not know yet
            if method == "open_checkpoint":
                self._lost = None
            elif self._lost is not None and method in NEEDS_MODEL:  # a fresh child would not hold the model
                raise EngineStoppedError(f"the engine process stopped unexpectedly (exit code {self._lost}) and "
                                         f"the model went with it; open the checkpoint again (o)")
            conn = self._started()
            pipe_id = next(self._ids)
            self._calls[pipe_id] = _Call(inbox, post, conn)
            try:
                conn.send(("call", pipe_id, method, args, {"call": call} if post is not None else None))
            except OSError:
                inbox.put(("stopped", None))
        told_cancel = False
        try:
            while True:
                try:
                    kind, payload = inbox.get(timeout=POLL_S)
                except queue.Empty:
                    if cancel is not None and not told_cancel and cancel.is_set():
                        told_cancel = self._send(conn, ("cancel", pipe_id))
                    continue
                if kind == "done":
                    return payload
                if kind == "error":
                    raise payload
                if kind == "stopped":
                    if self._stopping or told_cancel:
                        raise CancelledError(f"stopped during {method}")
                    raise EngineStoppedError(f"the engine process stopped unexpectedly during {method} "
                                             f"(exit code {payload}); open the checkpoint again (o)")
        finally:
            with self._lock:
                self._calls.pop(pipe_id, None)

    def _send(self, conn: Connection, item: tuple[Any, ...]) -> bool:
        """Send to the child the call went to (never to a replacement: it does not know the call)."""
        with self._lock:
            if self._conn is not conn:
                return False
            try:
                conn.send(item)
            except OSError:
                return False
        return True

    def _started(self) -> Connection:
        """The pipe to a running child, starting one if needed (called under `_lock`)."""
        if self._proc is not None and self._proc.poll() is None and self._conn is not None:
            return self._conn
        mine, theirs = socket.socketpair()
        self._children += 1
        numbering = str(self._children * NUMBERS_PER_CHILD)
        with theirs:
            proc = subprocess.Popen([sys.executable, "-c", _CHILD, _ROOT, str(theirs.fileno()), self._engine,
                                     numbering], pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        conn = Connection(mine.detach())
        self._proc, self._conn = proc, conn
        threading.Thread(target=self._read, args=(conn, proc), name="rnnt-tui-engine-reader", daemon=True).start()
        return conn

    def _read(self, conn: Connection, proc: subprocess.Popen[bytes]) -> None:
        """Post each event as it arrives (this one thread: the child's order is kept) and hand each reply to its
        call; when the child ends, tell the calls that were sent to *this* child, and no other."""
        while True:
            try:
                kind, pipe_id, blob = conn.recv()
            except (EOFError, OSError):
                break
            with self._lock:
                call = self._calls.get(pipe_id)
            if call is None:
                continue
            try:
                payload = _decode(kind, blob)
            except Exception as exc:  # noqa: BLE001 - a result that cannot be read fails its call, not the app
                kind, payload = "error", RuntimeError(f"cannot read the engine's reply: {type(exc).__name__}: {exc}")
            if kind == "post":
                if call.post is not None:
                    call.post(payload)
            else:
                call.inbox.put((kind, payload))
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with self._lock:
            if self._proc is proc:
                self._proc, self._conn = None, None
                if not self._stopping:
                    self._lost = proc.returncode
            waiting = [c.inbox for c in self._calls.values() if c.conn is conn]
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


def main(fd: str, engine: str = ENGINE, numbering_from: int = 0) -> None:
    """The child process's entry point: serve the app on the socket it was handed. At a lower CPU priority: on
    a machine whose cores the model's work fills (torch uses them all), the screen still gets a core at once
    when it has something to draw; when it has not, the work runs at full speed."""
    if hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(NICENESS)
    module, _, name = engine.partition(":")
    serve(Connection(int(fd)), getattr(importlib.import_module(module), name)(numbering_from))


def serve(conn: Connection, engine: Any) -> None:
    """The child: one engine; each call in its own thread; exits when the app's end of the pipe closes. Events
    are numbered and sent under the engine's one order lock (`Engine.emitter`), so the pipe carries them in
    order; a call's reply is sent after its last event."""
    send_lock = threading.Lock()
    cancels: dict[int, threading.Event] = {}

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
