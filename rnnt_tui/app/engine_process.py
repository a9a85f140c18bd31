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
The child's side is `engine_child` (it imports what an open needs, `Engine.PRELOAD`, before it serves).
`rnnt-tui BUNDLE` starts its child before it imports Textual (`start(urgent=True)`, its output going to the app's
log) and sends the app's first open as soon as the app object exists (`send_ahead`: its events are held until the
app, on its first frame, makes that same call), so a replay's light open overlaps the app's start-up instead of
following its first frame.
A child that dies is reported to the calls that were sent to it (not to calls already sent to its replacement);
until the next open, a call that needs the model it held fails the same way; a fresh child starts on the next
call.
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
from collections.abc import Iterator
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnt_tui.app.engine import ActiveWorkers, Envelope, Post
from rnnt_tui.app.engine_child import ENGINE, NICENESS
from rnnt_tui.core.errors import CancelledError, RnntTuiError

if TYPE_CHECKING:
    from rnnt_tui.core.corpus.subset import Subset
    from rnnt_tui.core.pipeline.pipeline import RuntimeChoice as Availability
    from rnnt_tui.core.pipeline.request import Request
    from rnnt_tui.core.sweep import SweepRow

POLL_S = 0.05  # how often a waiting caller looks at its cancel flag
_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding this rnnt_tui package
#: the child's command line: its nice value (`engine_child.NICENESS`) is set first thing, so the child's own
#: start-up never competes with the app's first frame either - unless it was started `urgent` (a bundle's light
#: open, sent ahead): then once its first call is done (`engine_child.serve`)
_CHILD = ("import os, sys\n"
          "if sys.argv[5] != 'urgent' and hasattr(os, 'nice'):\n"
          f"    try:\n        os.nice({NICENESS})\n    except OSError:\n        pass\n"
          "sys.path.insert(0, sys.argv[1]); from rnnt_tui.app.engine_child import main; "
          "main(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == 'urgent')")
NUMBERS_PER_CHILD = 10**12  # each child numbers its sessions and events from its own block
#: the calls that use the model a child holds: after that child died they fail until the next open
NEEDS_MODEL = ("rebuild", "run_steps", "set_joint_mode", "sweep", "run_corpus", "precision", "export", "run_stream",
               "run_windows", "coreai_drift")


class EngineStoppedError(RnntTuiError):
    """The engine process ended while a call was waiting on it (it crashed or was killed)."""


@dataclass
class _Call:
    """A call waiting on the child: its reply box, where its events go, and the child it was sent to."""

    inbox: queue.Queue[tuple[str, Any]]
    post: Post | None
    conn: Connection


class _Held:
    """The sink of a call sent ahead (`ProcessEngine.send_ahead`): its events are kept until the app makes the same
    call (`adopt`), then posted to the app's sink under the app's call id, in the order the child sent them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[Envelope] = []
        self.post: Post | None = None
        self.call = 0

    def __call__(self, envelope: Envelope) -> None:
        with self.lock:  # the reader's next event waits while `adopt` posts the held ones
            if self.post is None:
                self.events.append(envelope)
                return
            post, call = self.post, self.call
        post(replace(envelope, call=call))

    def adopt(self, post: Post, call: int) -> None:
        with self.lock:
            for envelope in self.events:
                post(replace(envelope, call=call))
            self.events.clear()
            self.post, self.call = post, call


class ProcessEngine(ActiveWorkers):
    """`engine.Engine`, run in a child process; the same methods, called from the app's worker threads."""

    def __init__(self, engine: str = ENGINE, output: Path | None = None) -> None:
        """`engine`: the engine class the child runs, as `module:Class` (tests run a scripted one). `output`: a
        file for what the child writes to its stdout and stderr (native libraries' warnings), appended to; None:
        this process's own (the app points them at its log while it runs)."""
        super().__init__()
        self._engine = engine
        self._output = output
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._calls: dict[int, _Call] = {}
        self._ids = itertools.count(1)
        self._children = 0
        self._lost: int | None = None  # exit code of a child that died holding the model (until the next open)
        self._stopping = False
        self._ahead: tuple[str, tuple[Any, ...], int, _Held] | None = None  # a call sent before it was made
        self._urgent = False  # the next child runs its first call at normal priority

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

    def run_stream(self, cache_states: bool, post: Post, cancel: threading.Event, call: int = 0) -> dict[str, Any]:
        result: dict[str, Any] = self._call("run_stream", (cache_states,), post, cancel, call)
        return result

    def run_windows(self, window_s: float, overlap_s: float, mel_left_s: float, post: Post,
                    cancel: threading.Event, call: int = 0) -> dict[str, Any]:
        result: dict[str, Any] = self._call("run_windows", (window_s, overlap_s, mel_left_s), post, cancel, call)
        return result

    def coreai_drift(self, components: list[str], post: Post, cancel: threading.Event,
                     call: int = 0) -> dict[str, Any]:
        result: dict[str, Any] = self._call("coreai_drift", (list(components),), post, cancel, call)
        return result

    def export(self, directory: Path, stem: str) -> list[Path]:
        result: list[Path] = self._call("export", (directory, stem))
        return result

    def start(self, urgent: bool = False) -> None:
        """Start the child now rather than on the first call (what the app does for a bundle before it imports
        Textual). `urgent`: its first call (a bundle's open, `send_ahead`) runs at normal priority, so that it is
        done by the time the first frame is: a replay's open is light; NeMo's restore would not be."""
        with self._lock:
            if not self._stopping:
                self._urgent = urgent
                self._started()

    def send_ahead(self, method: str, *args: Any) -> None:
        """Send `method(*args)` to the child now, before the app makes that call (its first open, while its first
        frame is built). Its events are held; when the app makes the same call, it waits for this one and gets
        its events then; if it makes another call first, this one is cancelled."""
        with self._lock:
            if self._stopping:
                return
            conn = self._started()
            pipe_id, held = next(self._ids), _Held()
            self._calls[pipe_id] = _Call(queue.Queue(), held, conn)
            self._ahead = (method, args, pipe_id, held)
            try:
                conn.send(("call", pipe_id, method, args, {"call": 0}))
            except OSError:
                self._calls[pipe_id].inbox.put(("stopped", None))

    def _take_ahead(self, method: str, args: tuple[Any, ...], post: Post | None, call: int) -> tuple[int, _Call] | None:
        """The call sent ahead, if it is this one (called under `_lock`): its events now go to `post`. Another
        call: the one sent ahead is cancelled and forgotten."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        sent, pipe_id, held = ahead[:2], ahead[2], ahead[3]
        entry = self._calls.get(pipe_id)
        if entry is not None and sent == (method, args) and entry.conn is self._conn:
            if post is not None:
                held.adopt(post, call)
            return pipe_id, entry
        self._calls.pop(pipe_id, None)
        if entry is not None and entry.conn is self._conn:
            with contextlib.suppress(OSError):
                entry.conn.send(("cancel", pipe_id))
        return None

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
            ahead = self._take_ahead(method, args, post, call)
            if ahead is not None:
                pipe_id, entry = ahead
                inbox, conn = entry.inbox, entry.conn
            else:
                conn = self._started()
                pipe_id, inbox = next(self._ids), queue.Queue()
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
        urgent, self._urgent = self._urgent, False  # a replacement child never is
        with theirs, _output_file(self._output) as out:
            proc = subprocess.Popen([sys.executable, "-c", _CHILD, _ROOT, str(theirs.fileno()), self._engine,
                                     numbering, "urgent" if urgent else "low"], pass_fds=(theirs.fileno(),),
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=out)
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


@contextlib.contextmanager
def _output_file(path: Path | None) -> Iterator[int | None]:
    """A descriptor appending to `path` for the child's stdout and stderr (None, or a file that cannot be opened:
    the child shares this process's)."""
    if path is None:
        yield None
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError:
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)


def _decode(kind: str, blob: bytes) -> Any:
    return pickle.loads(blob)  # from our own child process, over a private pipe: core events and results
