"""What the app's background workers do with the core: open a model, (re)build a session, run steps, switch the joint's
mode, write a report.

Everything here runs in a worker thread - of the engine process (`engine_process`) when the app runs, of the app's
own process in tests that patch the core - and talks to the UI only by posting messages (`app.messages`, plain data
that can be pickled); it never touches a widget. One lock serialises every use of the model, so a step, a mode
switch and a rebuild never run on it at once; the core polls the cancel flag and raises `CancelledError`. The app
decides nothing numeric: each result shown comes from a core call made here.

Heavy libraries (torch, NeMo, onnxruntime, coremltools) load inside these functions, never at import.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.message import Message

from rnnt_tui.app.messages import (
    AudioReady,
    CandidateFailed,
    FuseChanged,
    ModelRestored,
    Progress,
    SessionReady,
    SessionView,
    StepFinished,
    StepStarted,
    SummaryReady,
)
from rnnt_tui.core.errors import CancelledError

if TYPE_CHECKING:
    from rnnt_tui.core.audio import Audio
    from rnnt_tui.core.checkpoint import LoadedModel
    from rnnt_tui.core.runtimes.base import Availability, Runtime
    from rnnt_tui.core.session import Session
    from rnnt_tui.core.sweep import SweepRow

Post = Callable[[Message], object]

RUNTIME_LABELS = {"onnx": "ONNX Runtime", "coreml": "Core ML", "pytorch": "NeMo / PyTorch"}
COMPUTE_UNITS = ("CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL")
PRECISIONS = ("fp32", "fp16")


@dataclass(frozen=True)
class RunOptions:
    """The runtime controls: second runtime, Core ML compute unit, precision, timed runs and warm-ups."""

    against: str = "onnx"
    compute_units: str = "CPU_ONLY"
    precision: str = "fp32"
    runs: int = 5
    warmup: int = 1


def progress_to(post: Post, job: str) -> Callable[[str, float | None], None]:
    """The core's progress callback, forwarded as `Progress` messages of `job`."""

    def progress(text: str, fraction: float | None = None) -> None:
        post(Progress(job, text, fraction))

    return progress


class WorkerCancel(threading.Event):
    """The cancel flag handed to the core; also reads as set once Textual cancels the worker (restart, quit)."""

    def __init__(self, worker: Any = None) -> None:
        super().__init__()
        self._worker = worker

    def is_set(self) -> bool:
        return super().is_set() or bool(self._worker is not None and self._worker.is_cancelled)


def check_runtimes() -> dict[str, Availability]:
    """Each candidate runtime's availability here; a runtime whose module is missing reads as unavailable."""
    from rnnt_tui.core.runtimes import CANDIDATES, get_runtime_class
    from rnnt_tui.core.runtimes.base import Availability

    out: dict[str, Availability] = {}
    for name in CANDIDATES:
        try:
            out[name] = get_runtime_class(name).availability()
        except (ImportError, AttributeError) as exc:
            out[name] = Availability(ok=False, reason=f"its runtime module is not available ({exc})")
        except Exception as exc:  # noqa: BLE001 - a broken runtime must not break the app; show why
            out[name] = Availability(ok=False, reason=f"{type(exc).__name__}: {exc}")
    return out


def make_candidate(loaded: LoadedModel, options: RunOptions) -> tuple[Runtime | None, str | None]:
    """The candidate runtime for `options.against`, and a note when it cannot run here (or is missing)."""
    from rnnt_tui.core.runtimes import get_runtime_class
    from rnnt_tui.core.runtimes.base import RuntimeOptions

    label = RUNTIME_LABELS.get(options.against, options.against)
    try:
        cls = get_runtime_class(options.against)
    except (ImportError, AttributeError) as exc:
        return None, f"{label} not available: {exc}"
    availability = cls.availability()
    runtime = cls(loaded, RuntimeOptions(precision=options.precision, compute_units=options.compute_units))
    return runtime, None if availability.ok else availability.reason


def session_view(session: Session) -> SessionView:
    """What the app shows of a prepared session: plain data, so it can cross a process boundary."""
    fuse = session.fuse
    return SessionView(path=session.loaded.path, summary=session.loaded.summary, audio=session.audio,
                       reference_label=session.reference.label,
                       candidate_label=session.candidate.label if session.candidate is not None else None,
                       fuse_name=fuse.name, fuse_current=fuse.current, fuse_saved=fuse.saved,
                       runs=session.settings.runs, warmup=session.settings.warmup)


class ActiveWorkers:
    """Counts the app's worker threads inside an engine call until they really return (Textual marks a
    cancelled worker done at once, while its thread may still be inside an import that cannot be interrupted)."""

    def __init__(self) -> None:
        self._active = 0
        self._count = threading.Lock()

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        with self._count:
            self._active += 1
        try:
            yield
        finally:
            with self._count:
                self._active -= 1

    @property
    def active(self) -> int:
        return self._active


class Engine(ActiveWorkers):
    """The model, clip and session the app shows, changed only under `lock` by worker threads (in the app's
    own process here; `engine_process.ProcessEngine` runs this same class in a child process)."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.session: Session | None = None

    # -- opening ------------------------------------------------------------------------------------
    def open_checkpoint(self, path: Path, audio_path: Path, options: RunOptions, joint_mode: str, post: Post,
                        cancel: threading.Event) -> None:
        """Summary first (config only), then the clip, then NeMo's restore and the runtimes' preparation."""
        from rnnt_tui.core.summary import read_summary
        from rnnt_tui.core.workflow import load_clip

        path, audio_path = path.expanduser().resolve(), audio_path.expanduser().resolve()  # NeMo's restore chdirs
        summary = read_summary(path)
        post(SummaryReady(path, summary))
        audio = load_clip(audio_path, summary)
        post(AudioReady(audio))
        post(Progress("model", f"Restoring {path.name} with NeMo (importing torch and NeMo takes a few seconds)…"))
        with self.lock:
            from rnnt_tui.core.checkpoint import restore
            from rnnt_tui.paths import cache_dir

            started = time.perf_counter()
            loaded = restore(path, summary, cache_dir=cache_dir(), cancel=cancel)
            post(ModelRestored(path, time.perf_counter() - started, list(loaded.notes)))
            old = self.session
            self.session = self._build(loaded, audio, options, joint_mode, post, cancel)
            if old is not None:
                self._close(old)

    def rebuild(self, audio_path: Path | None, options: RunOptions, joint_mode: str, post: Post,
                cancel: threading.Event) -> None:
        """A new session on the restored model: another clip, runtime, compute unit, precision or run count."""
        from rnnt_tui.core import fuse
        from rnnt_tui.core.workflow import load_clip

        with self.lock:
            old = self.session
            if old is None:
                raise RuntimeError("no model is restored yet")
            audio = old.audio
            if audio_path is not None:
                audio = load_clip(audio_path, old.loaded.summary)
                post(AudioReady(audio))
            # A new Session reads the joint's flags as "saved": hand it the joint exactly as the checkpoint had it.
            old.fuse.set(fuse.AS_SAVED)
            try:
                self.session = self._build(old.loaded, audio, options, joint_mode, post, cancel)
            except BaseException:
                old.fuse.set(old.settings.joint_mode)
                raise
            self._close(old, keep_model=True)

    def _build(self, loaded: LoadedModel, audio: Audio, options: RunOptions, joint_mode: str, post: Post,
               cancel: threading.Event) -> Session:
        from rnnt_tui.core.fuse import probe_joint
        from rnnt_tui.core.runtimes.torch_runtime import TorchRuntime
        from rnnt_tui.core.session import Session, SessionSettings
        from rnnt_tui.core.tolerances import resolve

        candidate, note = make_candidate(loaded, options)
        settings = SessionSettings(runs=options.runs, warmup=options.warmup, joint_mode=joint_mode,
                                   tolerances=resolve(options.precision))
        session = Session(loaded, audio, TorchRuntime(loaded), candidate, settings)
        try:
            session.prepare(progress_to(post, "prepare"), cancel)
        except CancelledError:
            raise
        except Exception as exc:
            if "reference" not in session.prepare_reports or candidate is None:
                raise
            reason = f"{candidate.label} could not be prepared: {type(exc).__name__}: {exc}"
            session.candidate_unavailable = reason
            post(CandidateFailed(reason, traceback.format_exc()))
        post(SessionReady(session_view(session), probe_joint(loaded.model).describe(),
                          note or session.candidate_unavailable, options))
        return session

    @staticmethod
    def _close(session: Session, keep_model: bool = False) -> None:
        if session.candidate is not None:
            session.candidate.close()
        if not keep_model:
            session.reference.close()

    # -- running ------------------------------------------------------------------------------------
    def run_steps(self, names: Sequence[str], post: Post, cancel: threading.Event) -> None:
        """Run steps in order, posting each result as it lands (with a snapshot of all results so far)."""
        with self.lock:
            session = self._current()
            for name in names:
                post(StepStarted(name))
                session.run_step(name, progress_to(post, "step"), cancel)
                post(StepFinished(name, dict(session.results), session.decode_comparison,
                                  session.audio.duration_s))

    def set_joint_mode(self, mode: str, rerun: bool, post: Post, cancel: threading.Event) -> None:
        """Switch the reference joint's mode, say what joint(enc, dec) now returns, rerun the joint if it ran."""
        from rnnt_tui.core.components import JOINT
        from rnnt_tui.core.fuse import probe_joint

        with self.lock:
            session = self._current()
            session.set_joint_mode(mode)
            post(FuseChanged(mode, session.fuse.current, probe_joint(session.loaded.model).describe()))
            post(StepFinished(JOINT, dict(session.results), session.decode_comparison, session.audio.duration_s))
        if rerun:
            self.run_steps([JOINT], post, cancel)

    def check_runtimes(self) -> dict[str, Availability]:
        return check_runtimes()

    def sweep(self, post: Post, cancel: threading.Event) -> list[SweepRow]:
        """The Core ML compute-unit sweep on the current session's model and clip."""
        from rnnt_tui.core.sweep import sweep

        with self.lock:
            return sweep(self._current(), progress=progress_to(post, "sweep"), cancel=cancel)

    def stop(self) -> None:
        """Nothing to stop in-process: a worker thread ends when its core call next polls the cancel flag."""

    def export(self, directory: Path, stem: str) -> list[Path]:
        """Write the report (the same document as `rnnt-tui compare --json`) as JSON and Markdown."""
        from rnnt_tui.core.report import build_report, to_markdown

        with self.lock:
            report = build_report(self._current())
        directory.mkdir(parents=True, exist_ok=True)
        json_path, md_path = directory / f"{stem}.json", directory / f"{stem}.md"
        json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
        md_path.write_text(to_markdown(report))
        return [json_path, md_path]

    def _current(self) -> Session:
        if self.session is None:
            raise RuntimeError("the model is still loading")
        return self.session


def export_stem(directory: Path, now: datetime | None = None) -> str:
    """`rnnt-tui-report-<timestamp>`, with a counter if a report of that name is already there."""
    stem = f"rnnt-tui-report-{(now or datetime.now()).strftime('%Y%m%d-%H%M%S')}"
    candidate, n = stem, 1
    while any((directory / f"{candidate}{ext}").exists() for ext in (".json", ".md", ".svg")):
        candidate, n = f"{stem}-{n}", n + 1
    return candidate


def export_directory(preferred: Path, checkpoint: Path | None) -> Path:
    """Where reports go: `preferred` (the working directory by default), never the checkpoint's own folder."""
    preferred = preferred.expanduser()
    if checkpoint is not None and preferred.resolve() == checkpoint.expanduser().resolve().parent:
        return preferred / "rnnt-tui-reports"
    return preferred
