"""Running a corpus: the model restored and the candidate prepared once, then every utterance compared in turn.

`run_corpus(request, cancel)` is a generator of plain, picklable events (`CorpusPlanned`, the pipeline's own
`Progress` / `ModelRestored` / `CandidateFailed` while it opens, `UtteranceStarted`, `UtteranceFinished` with the
record and running totals, `CorpusFinished`: all in the pipeline's one vocabulary, `pipeline.events`), so the CLI
renders them and the app's engine process forwards them as they come. Each finished utterance is in
`results.jsonl` (flushed and synced) before the next starts; setting `cancel` (or Ctrl-C) stops after the utterance
in flight, which is lost, and the reports are rebuilt from what finished. A bad manifest line or clip is an error
record for that line and the run goes on. A candidate that cannot run here raises `RuntimeUnavailableError`, one
that failed to prepare `StepFailedError`, before any clip. With `subset` (`core.corpus.subset`) the entries outside
it run `subset.rest` through a second pipeline (prepared once, sharing the restored model, the same driver); each
record says which candidate ran it, and `CorpusPlanned.estimate` / `UtteranceFinished.note` say the expected time.

The link to the comparison pipeline is two small functions, `_session_for` and `_record`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rnnt_tui.core.corpus import metrics
from rnnt_tui.core.corpus.aggregate import Gates, RunningTotals
from rnnt_tui.core.corpus.manifest import ManifestError, Shard, Utterance, read_manifest
from rnnt_tui.core.corpus.records import UtteranceRecord, error_record, record_from
from rnnt_tui.core.corpus.store import ResultsStore, RunHeader
from rnnt_tui.core.corpus.subset import Estimate, Subset, candidate_name
from rnnt_tui.core.errors import BadInputError, CancelledError, RuntimeUnavailableError, StepFailedError
from rnnt_tui.core.names import RUNTIME_LABELS
from rnnt_tui.core.options import RuntimeOptions
from rnnt_tui.core.pipeline import events as ev
from rnnt_tui.core.pipeline.driver import run_steps
from rnnt_tui.core.pipeline.events import CorpusFinished, CorpusPlanned, UtteranceFinished, UtteranceStarted
from rnnt_tui.core.pipeline.request import Request, Settings

if TYPE_CHECKING:
    from rnnt_tui.core.checkpoint import LoadedModel
    from rnnt_tui.core.pipeline.pipeline import Pipeline
    from rnnt_tui.core.pipeline.session import Session

T = TypeVar("T")
#: corpus runs time each component once after its first call by default (a clip's own figures matter less)
CORPUS_SETTINGS = Settings(runs=1, warmup=0)


@dataclass(frozen=True)
class CorpusRequest:
    """One corpus run: checkpoint, manifest, candidate, how steps run, where results go, which entries."""

    checkpoint: Path
    manifest: Path
    against: str
    out_dir: Path
    options: RuntimeOptions = field(default_factory=RuntimeOptions)
    settings: Settings = CORPUS_SETTINGS
    limit: int | None = None
    shard: Shard | None = None
    resume: bool = False
    gates: Gates = field(default_factory=Gates)
    #: score streaming transcripts: NeMo's cache-aware loop vs the candidate's streaming step (`--stream`)
    stream: bool = False
    att_context: str | None = None  # with `stream`: None (the model's default), "L,R" or "all"
    #: `--subset`: `against` runs on these entries only, `subset.rest` on the others (`core.corpus.subset`)
    subset: Subset | None = None
    #: with `stream`: the candidate's step carries its caches in states (`--cache-states`: mil, coreml, coreai)
    cache_states: bool = False

    def against_for(self, index: int) -> str:
        """The candidate that runs the entry at manifest position `index`."""
        return self.against if self.subset is None or self.subset.holds(index) else self.subset.rest

    def stream_settings(self) -> dict[str, Any] | None:
        """What a streaming run's numbers depend on beyond the rest of the header (None: not streaming)."""
        if not self.stream:
            return None
        tolerance = stream_tolerance(self.settings)
        # `cache_states` only when asked, so a run recorded before the option resumes with the same settings
        return {"att_context": self.att_context or "default", "reference": "NeMo cache-aware streaming loop",
                "tolerance": {"atol": tolerance.atol, "rtol": tolerance.rtol},
                **({"cache_states": True} if self.cache_states else {})}


def stream_tolerance(settings: Settings) -> Any:
    """The streaming comparison's tolerance: the encoder's when --atol/--rtol were given, else `stream`'s default."""
    from rnnt_tui.core.stream.config import StreamRequest

    given = settings.tolerances.get("encoder") if settings.tolerances_given else None
    return given if given is not None else StreamRequest(Path(), Path()).tolerance


def runs_on(against: str) -> str | None:
    """Where the candidate runs, where its label alone does not say (Core AI: Apple's Linux runtime, or on a Mac
    the OS framework or the bundled runtime); what the runtime's `describe()["runs_on"]` says, known before it
    is made so the header can be written first."""
    if against != "coreai":
        return None
    from rnnt_tui.core.coreai.platform import coreai_problem, where_it_runs

    return where_it_runs() if coreai_problem() is None else None


def header_for(request: CorpusRequest, manifest_digest: str, checkpoint_sha256: str) -> RunHeader:
    return RunHeader(
        checkpoint=str(request.checkpoint), checkpoint_sha256=checkpoint_sha256, manifest=str(request.manifest),
        manifest_digest=manifest_digest, against=request.against,
        candidate_label=RUNTIME_LABELS.get(request.against, request.against), options=asdict(request.options),
        settings=request.settings.to_json(), normalisation=metrics.NORMALISATION, wer_library=metrics.BACKEND,
        runs_on=runs_on(request.against), shard=str(request.shard) if request.shard else None, limit=request.limit,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"), stream=request.stream_settings(),
        subset=_subset_json(request))


def _subset_json(request: CorpusRequest) -> dict[str, Any] | None:
    if request.subset is None:
        return None
    return {**request.subset.to_json(request.against), "rest_runs_on": runs_on(request.subset.rest)}


def _session_for(pipeline: Pipeline, request: Request, first: bool, cancel: threading.Event | None,
                 loaded: LoadedModel | None) -> Generator[ev.Event, None, Session]:
    """A session on `request.clip`: the first opens the pipeline (restore, prepare; its events streamed), the
    others reuse its runtimes."""
    if not first:
        return pipeline.session_for(request.clip, request.settings)
    return (yield from _streamed(pipeline, lambda: pipeline.open(request, cancel, loaded)))


def _record(session: Session, utterance: Utterance, wall_s: float) -> UtteranceRecord:
    return record_from(session.results, session.decode_comparison, utterance, session.audio.duration_s, wall_s,
                       session.audio.resampler, session.audio.loader)


def _streamed(pipeline: Pipeline, work: Callable[[], T]) -> Generator[ev.Event, None, T]:
    """Run `work` in a thread, yielding the events the pipeline emits meanwhile; return its result."""

    def attached(emit: ev.Emit) -> T:
        pipeline.emit = emit
        return work()

    try:
        return (yield from _threaded(attached))
    finally:
        pipeline.emit = ev.ignore


def _threaded(work: Callable[[ev.Emit], T], keep: Callable[[ev.Event], bool] = lambda e: True
              ) -> Generator[ev.Event, None, T]:
    """Run `work(emit)` in a thread, yielding the events it emits (those `keep` accepts) meanwhile; return its
    result."""
    events: queue.Queue[ev.Event | None] = queue.Queue()
    box: dict[str, Any] = {}

    def emit(event: ev.Event) -> None:
        if keep(event):
            events.put(event)

    def target() -> None:
        try:
            box["value"] = work(emit)
        except BaseException as exc:  # noqa: BLE001 - handed to the generator's thread and raised there
            box["error"] = exc
        finally:
            events.put(None)

    worker = threading.Thread(target=target, name="corpus-open", daemon=True)
    worker.start()
    while (item := events.get()) is not None:
        yield item
    worker.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


def run_corpus(request: CorpusRequest, cancel: threading.Event | None = None, loaded: LoadedModel | None = None,
               pipeline: Pipeline | None = None) -> Iterator[ev.Event]:
    """Run (or resume) the corpus, yielding events; see the module docstring. `pipeline`: an already opened one
    on the same checkpoint to reuse (nothing is restored or prepared again; its candidate, options and settings
    are the run's); `loaded`: a restored model for a new pipeline."""
    from rnnt_tui.core.checkpoint import content_hash
    from rnnt_tui.core.corpus.report import rebuild_reports
    from rnnt_tui.core.corpus.streaming import StreamTotals
    from rnnt_tui.core.pipeline.pipeline import Pipeline
    from rnnt_tui.core.summary import read_summary
    from rnnt_tui.paths import cache_dir

    request = _resolved(request)
    if pipeline is not None and pipeline.request is not None:  # its candidate is the run's; steps run as asked
        opened = pipeline.request
        request = replace(request, against=opened.against or request.against, options=opened.options)
    manifest = read_manifest(request.manifest)
    read_summary(request.checkpoint)  # a bad checkpoint is refused before anything is written
    _check_available(request.against, request.stream)
    _check_cache_states(request)
    if request.subset is not None:
        problem = request.subset.problem(request.against, request.stream)
        if problem is not None:
            raise BadInputError(request.manifest, problem)
        _check_available(request.subset.rest)
    header = header_for(request, manifest.digest, content_hash(request.checkpoint, cache_dir(), cancel))
    entries = manifest.select(request.limit, request.shard)
    store = ResultsStore.open(request.out_dir, header, request.resume)
    own = pipeline is None
    pipe = pipeline if pipeline is not None else Pipeline()
    pipes = {request.against: pipe}
    if request.subset is not None:
        pipes[request.subset.rest] = Pipeline()  # prepared once, on the first entry the rest runs
    tags = {key: (key, RUNTIME_LABELS.get(key, key), runs_on(key)) for key in pipes}
    streamer = _Streamer(request, cancel, loaded if loaded is not None else (pipe.loaded if not own else None))
    totals = RunningTotals()
    # `corpus --stream`: the per-context rows, kept one record at a time like the headline (never rebuilt)
    streamed = StreamTotals(store.records) if request.stream else None
    for record in store.records:
        totals.add(record)

    def headline() -> dict[str, Any]:
        if streamed is None:
            return totals.headline()
        return {**totals.headline(), "stream": streamed.rows()}

    interrupted = True
    try:
        pending = [e for e in entries if not store.done(e.uid)]
        estimate = Estimate()
        for e in pending:
            key = request.against_for(e.index)
            estimate.add(key, candidate_name(*tags[key][1:]), e)
        plan = estimate.plan()
        yield CorpusPlanned(manifest.path, request.out_dir, len(entries), len(entries) - len(pending),
                            len(manifest.errors), tuple(store.records), plan)
        position = len(entries) - len(pending)
        for entry in pending:
            if cancel is not None and cancel.is_set():
                break
            position += 1
            yield UtteranceStarted(entry.uid, _audio(entry), position, len(entries))
            if isinstance(entry, ManifestError):
                record = error_record(entry, "manifest", entry.problem)
            elif request.stream:
                record = yield from streamer.evaluate(entry)
            else:
                key = request.against_for(entry.index)
                shared = loaded or next((p.loaded for p in pipes.values() if p.loaded is not None), None)
                record = yield from _evaluate(pipes[key], replace(request, against=key), entry, cancel, shared)
            key = request.against_for(entry.index)
            if isinstance(entry, Utterance):
                record = replace(record, candidate=key, candidate_label=tags[key][1], runs_on=tags[key][2])
            store.append(record)
            totals.add(record)
            if streamed is not None:
                streamed.add(record)
            eta, note = estimate.finished(key, record.wall_s, record.duration_s,
                                          entry.duration if isinstance(entry, Utterance) else None)
            yield UtteranceFinished(record, position, len(entries), headline(), eta, note)
        else:
            interrupted = False
    except CancelledError:
        pass
    except KeyboardInterrupt:
        _close(store, _owned(pipes, pipe, own), streamer)
        rebuild_reports(request.out_dir, request.gates)
        raise
    finally:
        _close(store, _owned(pipes, pipe, own), streamer)
    reports = rebuild_reports(request.out_dir, request.gates)
    yield CorpusFinished(request.out_dir, interrupted, headline(), tuple(reports))


def _owned(pipes: dict[str, Pipeline], given: Pipeline, own: bool) -> list[Pipeline]:
    """The pipelines this run made (a caller's own one stays open)."""
    return [p for p in pipes.values() if own or p is not given]


def _close(store: ResultsStore, pipes: list[Pipeline], streamer: _Streamer) -> None:
    store.close()
    streamer.close()
    for pipe in pipes:
        pipe.close()


class _Streamer:
    """`corpus --stream`: one `StreamSession` (model restored, candidate steps prepared on the first utterance),
    each utterance streamed through it; its per-chunk events are not forwarded (a corpus shows utterances)."""

    def __init__(self, request: CorpusRequest, cancel: threading.Event | None, loaded: LoadedModel | None) -> None:
        self.request, self.cancel, self.loaded = request, cancel, loaded
        self.session: Any = None

    def evaluate(self, utterance: Utterance) -> Generator[ev.Event, None, UtteranceRecord]:
        from rnnt_tui.core.corpus.streaming import stream_record
        from rnnt_tui.core.stream.compare import StreamSession
        from rnnt_tui.core.stream.config import StreamRequest

        keep: Callable[[ev.Event], bool] = lambda e: isinstance(e, ev.Progress)  # noqa: E731
        if self.session is None:
            r = self.request
            stream = StreamRequest(r.checkpoint, utterance.audio_path, r.against, r.att_context,
                                   tolerance=stream_tolerance(r.settings), use_cache=r.options.use_cache,
                                   cache_states=r.cache_states)
            self.session = yield from _threaded(lambda emit: StreamSession(stream, emit, self.cancel, self.loaded),
                                                keep)
        start = time.perf_counter()
        session = self.session
        try:
            result = yield from _threaded(lambda emit: session.compare(utterance.audio_path, emit), keep)
        except BadInputError as exc:
            if exc.path is not None and exc.path.resolve() == utterance.audio_path.resolve():
                return error_record(utterance, "audio", exc.problem)
            raise
        return stream_record(result, utterance, time.perf_counter() - start)

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None


def _evaluate(pipe: Pipeline, request: CorpusRequest, utterance: Utterance,
              cancel: threading.Event | None, loaded: LoadedModel | None) -> Generator[ev.Event, None, UtteranceRecord]:
    """Compare one clip; a clip that cannot be used is an error record. Cancellation propagates (the utterance
    is lost)."""
    clip_request = Request(request.checkpoint, utterance.audio_path, request.against, request.options,
                           request.settings)
    first = pipe.loaded is None
    start = time.perf_counter()
    try:
        session = yield from _session_for(pipe, clip_request, first, cancel, loaded)
        if first:
            start = time.perf_counter()  # the clip's time, not the restore's
    except BadInputError as exc:
        if exc.path is not None and exc.path.resolve() == utterance.audio_path.resolve():
            return error_record(utterance, "audio", exc.problem)
        raise
    _check_candidate(pipe, session)
    run_steps(session, cancel=cancel)
    return _record(session, utterance, time.perf_counter() - start)


def _check_available(against: str, stream: bool = False) -> None:
    """Refuse a candidate that cannot run here before restoring or converting anything."""
    from rnnt_tui.core.runtimes import get_runtime_class

    if stream:
        from rnnt_tui.core.stream.config import STREAM_CANDIDATES

        if against not in STREAM_CANDIDATES:
            raise RuntimeUnavailableError(f"no streaming candidate {against!r} (choose {', '.join(STREAM_CANDIDATES)})")

    try:
        availability = get_runtime_class(against).availability()
    except (ImportError, AttributeError) as exc:
        raise RuntimeUnavailableError(f"{against} is not available: {exc}") from exc
    if not availability.ok:
        raise RuntimeUnavailableError(availability.reason)


def _check_cache_states(request: CorpusRequest) -> None:
    """A `cache_states` run the streaming step cannot honour is refused before anything is written."""
    if not request.cache_states:
        return
    if not request.stream:
        raise BadInputError(None, "--cache-states is for the streaming step: it needs --stream")
    from rnnt_tui.core.stream.config import StreamRequest, cache_states_problem

    problem = cache_states_problem(StreamRequest(request.checkpoint, request.manifest, request.against,
                                                 cache_states=True))
    if problem:
        raise BadInputError(None, problem)


def _check_candidate(pipe: Pipeline, session: Session) -> None:
    """After opening: a candidate whose preparing crashed fails the run (its traceback went out as
    `CandidateFailed`); one that cannot run here is unavailable (the pipeline's one verdict for each)."""
    note = session.candidate_unavailable
    if note is None:
        return
    if session.candidate_failed:
        raise StepFailedError(note)
    raise RuntimeUnavailableError(note)


def _audio(entry: Utterance | ManifestError) -> str:
    return str(entry.audio_path) if isinstance(entry, Utterance) else (entry.source or "")


def _resolved(request: CorpusRequest) -> CorpusRequest:
    return replace(request, checkpoint=request.checkpoint.expanduser().resolve(),
                   manifest=request.manifest.expanduser().resolve(), out_dir=request.out_dir.expanduser().resolve())


__all__ = ["CORPUS_SETTINGS", "CorpusFinished", "CorpusPlanned", "CorpusRequest", "UtteranceFinished",
           "UtteranceStarted", "header_for", "run_corpus"]
