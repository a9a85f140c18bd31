"""The app's engine: drives the core's one `Pipeline` for the app and forwards its events.

Everything here runs in a worker thread - of the engine process (`engine_process`) when the app runs, of the app's
own process in tests that patch the core - and talks to the UI only through `post(event)` with the pipeline's
plain events (`core.pipeline.events`), each in an `Envelope` naming the call it belongs to (the app's call id),
the session it is about and its place in the engine's one order; it never touches a widget and never imports
Textual. One lock serialises every use of the model, so a step, a mode switch and a rebuild never run on it at
once; the core polls the cancel flag and raises `CancelledError`. No pipeline logic lives here: each method is one
core call.

Heavy libraries (torch, NeMo, onnxruntime, coremltools) load inside the core's functions, never at import.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from rnnt_tui.core.corpus.subset import Subset
    from rnnt_tui.core.pipeline.events import Event
    from rnnt_tui.core.pipeline.pipeline import Pipeline, RuntimeChoice
    from rnnt_tui.core.pipeline.request import Request
    from rnnt_tui.core.sweep import SweepRow

Post = Callable[["Envelope"], object]


@dataclass(frozen=True)
class Envelope:
    """One core event as the engine emitted it. `call`: the app's id of the call it came from; `session`: the
    session it is about (a new one for an open or rebuild, the current one otherwise); `seq`: its place in the
    engine's single order (counted under one lock, so it is also the order on the pipe). The app applies events in
    `seq` order and drops those of a call it cancelled or of a session older than the one on screen."""

    call: int
    session: int
    seq: int
    event: Event


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
    """The pipeline the app shows, used only under `lock` by worker threads (in the app's own process here;
    `engine_process.ProcessEngine` runs this same class in a child process)."""

    #: what opening a checkpoint or a bundle imports before its first event (numpy, the pipeline, a bundle's
    #: replay, the summary's YAML, the runtimes' light modules - never torch, NeMo or a runtime's library): the
    #: engine process imports them as soon as it starts, while the app builds its first frame
    PRELOAD: ClassVar[tuple[str, ...]] = (
        "rnnt_tui.core.pipeline.pipeline", "rnnt_tui.core.pipeline.driver", "rnnt_tui.core.pipeline.session",
        "rnnt_tui.core.bundle.replay", "rnnt_tui.core.bundle.candidates", "rnnt_tui.core.checkpoint",
        "rnnt_tui.core.summary", "rnnt_tui.core.audio", "rnnt_tui.core.runtimes.onnx_runtime",
        "rnnt_tui.core.runtimes.mil_runtime", "rnnt_tui.core.runtimes.package_inventory", "rnnt_tui.versions")

    def __init__(self, numbering_from: int = 0) -> None:
        """`numbering_from`: where session ids and sequence numbers start (a replacement engine process starts
        above its predecessor's, so the app orders its events after the old one's)."""
        super().__init__()
        self.lock = threading.Lock()
        self.pipeline: Pipeline | None = None
        self.session_id = 0  # the session the pipeline holds now (0: none yet)
        self._sessions = numbering_from  # the last session id handed out (a failed open or rebuild uses one up)
        self._order = threading.Lock()
        self._seq = numbering_from

    def send_ahead(self, method: str, *args: Any) -> None:
        """Nothing to send ahead in the app's own process: the call runs when the app makes it
        (`engine_process.ProcessEngine.send_ahead` starts it in the child before the first frame)."""

    def emitter(self, post: Post, call: int, session: int) -> Callable[[Event], None]:
        """The core's `emit` for one call: each event enveloped and numbered in the engine's one order."""

        def emit(event: Event) -> None:
            with self._order:  # numbering and sending under one lock: the pipe carries them in `seq` order
                self._seq += 1
                post(Envelope(call, session, self._seq, event))

        return emit

    def _pipeline(self, post: Post, call: int, session: int | None = None) -> Pipeline:
        from rnnt_tui.core.pipeline.pipeline import Pipeline

        if self.pipeline is None:
            self.pipeline = Pipeline()
        self.pipeline.emit = self.emitter(post, call, self.session_id if session is None else session)
        return self.pipeline

    def _next_session(self) -> int:
        self._sessions += 1
        return self._sessions

    def open_checkpoint(self, request: Request, post: Post, cancel: threading.Event, call: int = 0) -> None:
        """Summary first (config only), then the clip, then NeMo's restore and the runtimes' preparation."""
        from rnnt_tui.core.bundle.replay import recording_for
        from rnnt_tui.core.pipeline.pipeline import Pipeline

        with self.lock:
            session = self._next_session()
            fresh = Pipeline(self.emitter(post, call, session))
            fresh.open(request, cancel, reference=recording_for(request))  # a bundle: its recorded reference
            old, self.pipeline, self.session_id = self.pipeline, fresh, session
        if old is not None:
            old.close()

    def rebuild(self, request: Request, post: Post, cancel: threading.Event, call: int = 0) -> None:
        """A new session on the restored model: another clip, runtime, compute unit, precision or run count."""
        with self.lock:
            session = self._next_session()
            self._pipeline(post, call, session).rebuild(request, cancel)
            self.session_id = session

    def run_steps(self, names: Sequence[str], post: Post, cancel: threading.Event, call: int = 0) -> None:
        with self.lock:
            self._pipeline(post, call).run_steps(list(names), cancel)

    def set_joint_mode(self, mode: str, rerun: bool, post: Post, cancel: threading.Event, call: int = 0) -> None:
        with self.lock:
            self._pipeline(post, call).set_joint_mode(mode, rerun, cancel)

    def check_runtimes(self) -> dict[str, RuntimeChoice]:
        from rnnt_tui.core.pipeline.pipeline import check_runtimes

        return check_runtimes()

    def sweep(self, drift: bool, post: Post, cancel: threading.Event, call: int = 0) -> list[SweepRow]:
        """The Core ML compute-unit sweep on the current session's model and clip; `drift` adds the drift search
        (the first op drifting from CPU_ONLY in each component out of tolerance)."""
        from rnnt_tui.core.sweep import sweep

        with self.lock:
            session = self._pipeline(post, call).session
            if session is None:
                raise RuntimeError("the model is still loading")
            return sweep(session, emit=self.emitter(post, call, self.session_id), cancel=cancel, drift=drift)

    def run_stream(self, cache_states: bool, post: Post, cancel: threading.Event, call: int = 0) -> dict[str, Any]:
        """The streaming comparison (`core.stream.compare.run_stream`) of the open checkpoint and clip against the
        open candidate, chunk by chunk (`cache_states`: the caches in states); its report as JSON. A checkpoint that
        does not stream, or states the candidate cannot hold: `BadInputError`."""
        from rnnt_tui.core.stream.compare import run_stream
        from rnnt_tui.core.stream.config import StreamRequest

        with self.lock:
            request = self.pipeline.request if self.pipeline is not None else None
            if request is None:
                raise RuntimeError("the model is still loading")
            stream = StreamRequest(request.checkpoint, request.clip, request.against or "onnx",
                                   cache_states=cache_states)
            emit = self.emitter(post, call, self.session_id)
            return run_stream(stream, emit, cancel).to_json()

    def run_windows(self, window_s: float, overlap_s: float, mel_left_s: float, post: Post,
                    cancel: threading.Event, call: int = 0) -> dict[str, Any]:
        """The fixed-window comparison (`core.stream.windows.run_windows`, `stream --window`) of the open clip against
        the open candidate (the session's `--packages` if it was opened with them, judged at their own tolerance), on
        the model the session restored; its report as JSON. A candidate that cannot run here:
        `RuntimeUnavailableError`; a recorded bundle (no NeMo model), a window the packages cannot take:
        `BadInputError`."""
        from rnnt_tui.core.errors import BadInputError
        from rnnt_tui.core.stream.config import StreamRequest
        from rnnt_tui.core.stream.windows import run_windows

        with self.lock:
            pipe = self.pipeline
            request = pipe.request if pipe is not None else None
            if pipe is None or request is None:
                raise RuntimeError("the model is still loading")
            if pipe.loaded is None:
                raise BadInputError(request.checkpoint, "a recorded bundle holds no NeMo model to run in windows")
            packages = request.options.packages_dir  # opened with --packages: the windows run through them
            windows = StreamRequest(request.checkpoint, request.clip, request.against or "onnx", window_s=window_s,
                                    overlap_s=overlap_s, mel_left_s=mel_left_s, tolerance_given=False,
                                    packages_dir=Path(packages) if packages else None)
            emit = self.emitter(post, call, self.session_id)
            return run_windows(windows, emit, cancel, pipe.loaded).to_json()

    def coreai_drift(self, components: Sequence[str], post: Post, cancel: threading.Event,
                     call: int = 0) -> dict[str, Any]:
        """Where the open Core AI candidate drifts from PyTorch (`core.coreai.drift.find_drift`, Apple's
        coreai_torch.debugging) on each of `components`' first call in the open session; a component that has not
        run yet runs first (its result is emitted like any step's). The reports as JSON, with where it ran."""
        from rnnt_tui.core.coreai.drift import find_drift
        from rnnt_tui.core.errors import RuntimeUnavailableError
        from rnnt_tui.core.pipeline.drift_inputs import drift_inputs
        from rnnt_tui.core.pipeline.events import progress_of

        with self.lock:
            pipe = self._pipeline(post, call)
            session = pipe.session
            if session is None or pipe.request is None:
                raise RuntimeError("the model is still loading")
            candidate = session.candidate
            if pipe.request.against != "coreai" or candidate is None:
                raise RuntimeUnavailableError("the drift search compares a Core AI candidate; the open candidate "
                                              f"is {pipe.request.against or 'none'}")
            if session.candidate_unavailable is not None:
                raise RuntimeUnavailableError(session.candidate_unavailable)
            if pipe.loaded is None:
                raise RuntimeUnavailableError("the drift search converts the component again from the restored "
                                              "model; a recorded bundle holds no model")
            missing = [c for c in components if c not in session.results]
            if missing:
                pipe.run_steps(missing, cancel)
            progress = progress_of(self.emitter(post, call, self.session_id), "drift")
            precision = pipe.request.options.precision
            reports = {}
            for name in components:
                reports[name] = find_drift(pipe.loaded, name, drift_inputs(session, name), precision=precision,
                                           progress=progress, cancel=cancel).to_json()
            described = candidate.describe()
            return {"runs_on": described.get("runs_on") or candidate.label, "precision": precision,
                    "packages_dir": described.get("packages_dir"),
                    "statuses": {n: str(session.results[n].status) for n in components if n in session.results},
                    "drift": reports}

    def run_corpus(self, manifest: Path, stream: bool, subset: Subset | None, post: Post,
                   cancel: threading.Event, call: int = 0) -> None:
        """A corpus run on the open model and candidate (nothing restored or prepared again), its events
        forwarded as they come; results in the app's data dir, resumed when the same corpus is opened again with
        the same settings. `stream`: streaming transcripts (`corpus --stream`: NeMo's cache-aware loop vs the
        candidate's streaming step, on the restored model), in a results folder of their own; `subset`
        (`core.corpus.subset`): the candidate on some entries, `subset.rest` on the others."""
        from dataclasses import asdict

        from rnnt_tui.core.corpus.runner import CORPUS_SETTINGS, CorpusRequest, run_corpus
        from rnnt_tui.paths import corpus_run_dir

        with self.lock:
            pipe = self._pipeline(post, call)
            emit = self.emitter(post, call, self.session_id)
            if pipe.request is None or pipe.facts is None or pipe.request.against is None:
                raise RuntimeError("the model is still loading")
            opened = pipe.request
            chosen = repr(sorted(asdict(opened.options).items())) + (f"|{subset}|{subset.rest}" if subset else "")
            out = corpus_run_dir(pipe.facts.sha256 or "", manifest, (opened.against or "") + ("-stream" * stream),
                                 chosen)
            request = CorpusRequest(opened.checkpoint, manifest, opened.against or "", out, opened.options,
                                    settings=CORPUS_SETTINGS, resume=True, stream=stream, subset=subset)
            for event in run_corpus(request, cancel, pipeline=pipe):
                emit(event)

    def precision(self, precision: str, weights: str | None, runtime: str, post: Post, cancel: threading.Event,
                  call: int = 0) -> dict[str, Any]:
        """The open model's conversion at `precision` certified on the open clip (core.precision.certify) by
        `runtime` ("mil": the Core ML program in the MIL interpreter; "coreai": Core AI, where the core certifies
        it), as JSON: hazards per component with their ops and NeMo modules, lint, the decode check, the edge
        sweep. A runtime that cannot be certified here: `RuntimeUnavailableError` saying why."""
        from rnnt_tui.core.errors import RuntimeUnavailableError
        from rnnt_tui.core.pipeline.events import progress_of
        from rnnt_tui.core.precision.certify import certify

        problem = precision_problem(runtime, precision, weights)
        if problem is not None:
            raise RuntimeUnavailableError(problem)
        with self.lock:
            pipe = self._pipeline(post, call)
            if pipe.loaded is None or pipe.session is None:
                raise RuntimeError("certifying needs a restored checkpoint (a bundle holds no model to convert)")
            progress = progress_of(self.emitter(post, call, self.session_id), "precision")
            if runtime == "coreai":
                from rnnt_tui.core.precision.coreai import certify_coreai

                report = certify_coreai(pipe.loaded, pipe.session.audio.path, progress=progress, cancel=cancel)
            else:
                report = certify(pipe.loaded, pipe.session.audio.path, precision=precision, weights=weights,
                                 max_seconds=30.0, progress=progress, cancel=cancel)
        return report.to_json()

    def stop(self) -> None:
        """Nothing to stop in-process: a worker thread ends when its core call next polls the cancel flag."""

    def export(self, directory: Path, stem: str) -> list[Path]:
        """Write the report (the same document as `rnnt-tui compare --json`) as JSON and Markdown."""
        from rnnt_tui.core.report import build_report, to_markdown

        with self.lock:
            session = self.pipeline.session if self.pipeline is not None else None
            if session is None:
                raise RuntimeError("the model is still loading")
            report = build_report(session)
        directory.mkdir(parents=True, exist_ok=True)
        json_path, md_path = directory / f"{stem}.json", directory / f"{stem}.md"
        json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
        md_path.write_text(to_markdown(report))
        return [json_path, md_path]


def precision_problem(runtime: str, precision: str = "fp16", weights: str | None = None) -> str | None:
    """Why the precision certification cannot run on `runtime` here (None: it can): a combination it refuses
    (`core.precision.refusals`, the CLI's words too), else, for Core AI, why its wheel cannot run here."""
    from rnnt_tui.core.coreai.platform import coreai_problem
    from rnnt_tui.core.precision.refusals import certification_problem

    refused = certification_problem(runtime, precision, weights)
    if refused is not None or runtime != "coreai":
        return refused
    return coreai_problem(need_converter=True)


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
