"""`replay BUNDLE --against onnx|mil|coreml|coreai [--cache-states]` on a streaming bundle (`record --stream`): the
streaming comparison with the recorded NeMo chunks as its reference, no NeMo and no torch, on every recorded clip (a
manifest's: a corpus). `coreml` is Core ML predicting the recorded Core ML programs (macOS; elsewhere the reason it
cannot, exit 3); `coreai` is the Core AI runtime on the recorded Core AI assets and step (`record --stream --convert
coreai`: the bundled runtime on Linux, the OS framework on macOS 27). `--cache-states` runs the stateful programs
recorded with `record --stream --cache-states` (`core.stream.state_step`: the MIL interpreter with `mil`, Core ML
with `coreml`; `core.stream.coreai_step`'s Core AI states with `coreai`), the report saying where the caches were
carried; a bundle recorded without them, or another candidate, is refused in one line (exit 2).

`RecordedStream` is a `core.stream.reference.StreamReference` read from the bundle (chunks rebuilt as
`RefChunk`s: features, caches in - the first chunk's recorded, later ones the previous chunk's out - caches out,
encoder output, tokens so far, NeMo's recorded compute time); the candidate's decoder / joint is the replay's own
(`Recording.candidate`: the recorded ONNX export or the bundle's Core ML packages) and its streaming step the
recorded programs (`StreamStep.from_folder`). The chunk loop is the comparison's own (`core.stream.compare`).
Several clips give one `StreamResult` each and the corpus's per-context rows (`core.corpus.streaming`: WER vs
NeMo streaming and offline, QoI against the manifest's text, drift), as `corpus --stream` gives them.
A streaming block that is malformed or of a newer format is one `BadInputError` naming the bundle.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnnt_tui.core.bundle.replay import Recording, open_recording
from rnnt_tui.core.bundle.stream_record import (
    CORE_AI_STATES_STEP,
    CORE_AI_STEP,
    STATES_STEP,
    STREAM_CANDIDATES,
    STREAM_FORMAT,
)
from rnnt_tui.core.errors import BadInputError, RuntimeUnavailableError
from rnnt_tui.core.names import RUNTIME_LABELS
from rnnt_tui.core.options import RuntimeOptions
from rnnt_tui.core.pipeline.events import Emit, progress_of
from rnnt_tui.core.stream.offline import OfflineTranscript
from rnnt_tui.core.stream.reference import CACHE_NAMES, RefChunk
from rnnt_tui.core.stream.result import OfflineHow, StreamResult
from rnnt_tui.core.tolerances import Tolerance

REPLAYED = f"{RUNTIME_LABELS['pytorch']}, recorded"
#: the candidates a streaming bundle replays against: the recorded steps' runtimes, Core ML on the mil programs, and
#: Core AI on its own recorded step (`record --stream --convert coreai`)
REPLAY_CANDIDATES = (*STREAM_CANDIDATES, "coreml", "coreai")


def _step_key(against: str, cache_states: bool) -> str:
    """The `steps` key of the recorded step `against` replays (Core ML runs the mil programs)."""
    if against == "coreai":
        return CORE_AI_STATES_STEP if cache_states else CORE_AI_STEP
    return STATES_STEP if cache_states else ("mil" if against == "coreml" else against)


class RecordedStream:
    """One recorded att context as the comparison's reference."""

    def __init__(self, recording: Recording, context: dict[str, Any], clip: dict[str, Any]) -> None:
        self.bundle = recording.bundle
        self.facts = recording.facts
        self.context = context
        self.clip = clip  # this clip's recorded chunks and offline tokens at the context
        self.blank = int(recording.facts.summary.blank_id)
        self.max_symbols = recording.facts.max_symbols()

    def begin(self, context: list[int]) -> None:
        pass  # the recording is of one context: the caller iterates the recorded ones

    def chunks(self, audio: np.ndarray | None, sample_rate: int) -> Iterator[RefChunk]:
        caches_in: dict[str, np.ndarray] | None = None
        for chunk in self.clip["chunks"]:
            arrays = chunk["arrays"]
            if caches_in is None:
                caches_in = {n: self.bundle.array(arrays[f"in.{n}"]) for n in CACHE_NAMES}
            caches_out = {n: self.bundle.array(arrays[f"out.{n}"]) for n in CACHE_NAMES}
            yield RefChunk(features=self.bundle.array(arrays["features"]), caches_in=caches_in,
                           encoded=self.bundle.array(arrays["encoded"]), caches_out=caches_out,
                           **_chunk_fields(chunk))
            caches_in = caches_out

    def offline(self, audio: np.ndarray | None) -> OfflineTranscript:
        return OfflineTranscript([int(t) for t in self.clip["offline_tokens"]],
                                 OfflineHow.from_json(self.clip.get("offline")))

    def text(self, tokens: list[int]) -> str:
        return self.facts.text(tokens)

    def streaming_cfg(self) -> dict[str, Any]:
        return dict(self.context["streaming_cfg"])

    def latency_ms(self, context: list[int]) -> float:
        return float(self.context["latency_ms"])

    def clip_s(self, audio: np.ndarray | None, sample_rate: int) -> float:
        last = self.clip["chunks"][-1] if self.clip["chunks"] else {"start_s": 0.0, "audio_s": 0.0}
        return float(last["start_s"]) + float(last["audio_s"])


def _chunk_fields(chunk: dict[str, Any]) -> dict[str, Any]:
    """A recorded chunk's scalars and tokens as `RefChunk` takes them (KeyError, TypeError or ValueError when the
    record lacks one or holds the wrong type): read here for the loop and for `stream_block`'s check alike."""
    return {"index": int(chunk["index"]), "length": int(chunk["length"]),
            "drop_extra_pre_encoded": int(chunk["drop_extra_pre_encoded"]),
            "keep_all_outputs": bool(chunk["keep_all_outputs"]), "start_s": float(chunk["start_s"]),
            "audio_s": float(chunk["audio_s"]), "encoded_length": int(chunk["encoded_length"]),
            "tokens": [int(t) for t in chunk["tokens"]], "compute_ms": float(chunk["compute_ms"])}


def _chunk_arrays(first: bool) -> tuple[str, ...]:
    """The arrays a recorded chunk must name: the caches in on a clip's first chunk only (later chunks take the
    previous chunk's out), the features, the encoder output and the caches out on every one."""
    caches_in = tuple(f"in.{n}" for n in CACHE_NAMES) if first else ()
    return (*caches_in, "features", "encoded", *(f"out.{n}" for n in CACHE_NAMES))


def stream_block(recording: Recording) -> dict[str, Any] | None:
    """The bundle's streaming record, checked (None: not a streaming bundle)."""
    bundle = recording.bundle
    block = bundle.meta.get("stream")
    if block is None:
        return None
    try:
        version = block["format"]
        if not isinstance(version, int) or version > STREAM_FORMAT:
            raise BadInputError(bundle.path, f"its streaming record is format {version!r}; this rnnt-tui reads "
                                             f"{STREAM_FORMAT}: upgrade rnnt-tui to replay it")
        contexts: list[dict[str, Any]] = []
        if not block["contexts"]:
            raise ValueError("no att context is recorded")
        int(block["sample_rate"])
        for context in block["contexts"]:
            [int(x) for x in context["att_context_size"]]
            dict(context["streaming_cfg"]), float(context["latency_ms"])
            if version == 1:  # one clip: its chunks and offline tokens on the context
                context = {**context, "clips": [{"clip": 0, "chunks": context["chunks"],
                                                 "offline_tokens": context["offline_tokens"]}]}
            if not context["clips"] or not set(STREAM_CANDIDATES) <= set(context["steps"]):
                raise ValueError("a context without clips or streaming steps")
            for rel in context["steps"].values():
                if not bundle.inside(rel):
                    raise ValueError(f"streaming step {rel!r} is not a folder inside the bundle")
            for clip in context["clips"]:
                recording.clips[int(clip["clip"])], [int(t) for t in clip["offline_tokens"]]
                if not clip["chunks"]:
                    raise ValueError(f"clip {clip['clip']} has no chunks")
                OfflineHow.from_json(clip.get("offline"))
                for position, chunk in enumerate(clip["chunks"]):
                    for name in chunk["arrays"].values():
                        if not bundle.has(name):
                            raise ValueError(f"array {name} is not in the manifest")
                    missing = [k for k in _chunk_arrays(position == 0) if k not in chunk["arrays"]]
                    if missing:
                        raise ValueError(f"clip {clip['clip']} chunk {position} names no array {', '.join(missing)}")
                    _chunk_fields(chunk)
            if contexts and [c["clip"] for c in context["clips"]] != [c["clip"] for c in contexts[0]["clips"]]:
                raise ValueError("its contexts record different clips")
            contexts.append(context)
    except BadInputError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise BadInputError(bundle.path, f"its streaming record (bundle.json `stream`) is malformed: "
                                         f"{type(exc).__name__} {exc}") from exc
    return {**block, "contexts": contexts}


@dataclass(frozen=True)
class StreamReplay:
    """A streaming bundle replayed: one result per recorded clip; with several, the corpus's per-context rows."""

    results: tuple[StreamResult, ...]
    rows: tuple[dict[str, Any], ...] = ()
    skipped: tuple[dict[str, Any], ...] = ()

    @property
    def status(self) -> str:
        order = ("failed", "mismatch", "ok")
        return min((r.status for r in self.results), key=lambda s: order.index(s) if s in order else 0)

    def to_json(self) -> dict[str, Any]:
        """One clip: its report as `stream` gives it; several: every clip's, and the rows (`corpus --stream`'s)."""
        if len(self.results) == 1:
            return self.results[0].to_json()
        return {"status": self.status, "clips": [r.to_json() for r in self.results], "stream": list(self.rows),
                "skipped_at_record": list(self.skipped)}


def replay_stream(path: str, against: str, emit: Emit, cancel: threading.Event | None = None,
                  tolerance: Tolerance | None = None, cache_states: bool = False) -> StreamReplay:
    """The streaming comparison of `against` against the recording in the bundle at `path`, clip by clip
    (`cache_states`: the recorded stateful Core ML step)."""
    from rnnt_tui.core.bundle.corpus_input import utterance_of
    from rnnt_tui.core.corpus.streaming import stream_record, stream_rows
    from rnnt_tui.core.stream.compare import _context
    from rnnt_tui.core.stream.config import StreamRequest, cache_states_problem
    from rnnt_tui.core.stream.step_kinds import STATE_STEPS, STEPS

    if against not in REPLAY_CANDIDATES:
        raise RuntimeUnavailableError(f"a streaming bundle replays against {', '.join(REPLAY_CANDIDATES)}, "
                                      f"not {against}")
    problem = cache_states_problem(StreamRequest(Path(path), Path(path), against, cache_states=cache_states))
    if problem:
        raise BadInputError(None, problem)
    try:
        recording = open_recording(path, against)
    except BadInputError as exc:  # a streaming bundle without Core AI assets: say how to record its Core AI step
        if against == "coreai" and exc.path is not None:
            _check_coreai_step(exc.path, cache_states)
        raise
    try:
        block = stream_block(recording)
        if block is None:
            raise BadInputError(recording.bundle.path, "holds no streaming record: record it with --stream")
        folder = _step_key(against, cache_states)
        if against == "coreai":
            _check_coreai_step(recording.bundle.path, cache_states, block)
        if cache_states and any(folder not in c["steps"] for c in block["contexts"]):
            raise BadInputError(recording.bundle.path, "was recorded without --cache-states (its streaming steps "
                                                       "carry the caches as inputs and outputs): record it with "
                                                       "--stream --cache-states")
        kinds = STATE_STEPS if cache_states else STEPS
        progress = progress_of(emit, "stream")
        runtime = recording.candidate(against, RuntimeOptions())
        runtime.prepare(progress, cancel)
        request = StreamRequest(recording.bundle.path, recording.bundle.path, against,
                                tolerance=tolerance or StreamRequest(recording.bundle.path, recording.bundle.path)
                                .tolerance)
        indices = [int(c["clip"]) for c in block["contexts"][0]["clips"]]
        per_clip: dict[int, list[Any]] = {i: [] for i in indices}
        walls = dict.fromkeys(indices, 0.0)
        notes: list[str] = []
        carries, label = "", runtime.label  # the runtime that ran it (Core AI says which: Linux runtime or the OS's)
        try:
            for context in block["contexts"]:
                pair = [int(x) for x in context["att_context_size"]]
                step = _recorded_step(recording, kinds[against], context["steps"][folder], against, pair)
                carries = step.carries
                notes += [f"{pair}: {n}" for n in step.notes]
                try:
                    for clip in context["clips"]:
                        started = time.perf_counter()
                        per_clip[int(clip["clip"])].append(_context(
                            RecordedStream(recording, context, clip), None, int(block["sample_rate"]), pair, step,
                            runtime, request, emit, cancel))
                        walls[int(clip["clip"])] += time.perf_counter() - started
                finally:
                    step.close()
        finally:
            runtime.close()
        results = []
        for index, contexts in per_clip.items():
            audio = recording.clips[index]["audio"]
            results.append(StreamResult(
                str(recording.bundle.path), str(audio["path"]),
                float(audio.get("duration_s") or contexts[0].chunks[-1].start_s), REPLAYED, label,
                tuple(notes), tuple(contexts), {"atol": request.tolerance.atol, "rtol": request.tolerance.rtol},
                tuple(recording.warnings), caches_carried_in=carries))
        rows: list[dict[str, Any]] = []
        if len(results) > 1:
            records = [stream_record(result, utterance_of(recording.clips[index].get("entry", {}),
                                                          Path(result.clip)), walls[index])
                       for index, result in zip(per_clip, results, strict=True)]
            rows = stream_rows(records)
        return StreamReplay(tuple(results), tuple(rows), tuple(recording.bundle.meta.get("skipped", [])))
    finally:
        recording.close()


def _check_coreai_step(path: Path, cache_states: bool, block: dict[str, Any] | None = None) -> None:
    """BadInputError saying how to record it when the streaming bundle at `path` has no Core AI step of this kind
    (`block`: its streaming record, read from the bundle when None); nothing when it is not a streaming bundle."""
    if block is None:
        from rnnt_tui.core.bundle.format import Bundle

        try:
            bundle = Bundle.open(path, verify=False)
        except BadInputError:
            return
        try:
            block = bundle.meta.get("stream")
        finally:
            bundle.close()
    key = _step_key("coreai", cache_states)
    if block and any(key not in (c.get("steps") or {}) for c in block.get("contexts") or ()):
        raise BadInputError(path, "was recorded without the Core AI streaming step"
                            + (" with its caches in states" if cache_states else "")
                            + ": record it with --stream --convert coreai" + (" --cache-states" if cache_states
                                                                               else ""))


def _recorded_step(recording: Recording, kind: Any, rel: str, against: str, pair: list[int]) -> Any:
    """The streaming step of `kind` (a `step_kinds` class) recorded at `rel`, its files checked against the manifest
    first; a step that is missing, damaged or cannot be loaded is a BadInputError naming the bundle (not the scratch
    folder it was unpacked to)."""
    bundle = recording.bundle
    if not bundle.verify_files((rel,)):
        raise BadInputError(bundle.path, f"its {against} streaming step for att context {pair} ({rel}) is missing: "
                                         "the bundle is damaged")
    try:
        return kind.from_folder(bundle.file(rel), pair)
    except RuntimeUnavailableError:
        raise  # not the bundle's fault: this machine cannot run the candidate (exit 3)
    except BadInputError as exc:
        where = f"{exc.path.name}: " if exc.path is not None else ""
        raise BadInputError(bundle.path, f"its {against} streaming step ({rel}) cannot be used: {where}"
                                         f"{exc.problem}") from exc
    except Exception as exc:
        raise BadInputError(bundle.path, f"its {against} streaming step ({rel}) cannot be loaded "
                                         f"({type(exc).__name__}: {exc})") from exc
