"""Record NeMo's side of a comparison once, into a bundle a replay machine reads without torch or NeMo.

`record(checkpoint, clips, out)` restores the model once, runs the reference pipeline on each clip (the same
pipeline `compare` drives, with no candidate) and writes per clip: the audio as the model saw it, each
component's inputs and reference outputs as the comparison uses them, the decoder chain along the reference
path, the greedy decode's own decoder steps and joint rows (so a replayed decode is an exact lookup), the joint -
the whole T x U grid, or only the decode-path cells with each cell's argmax and top-5 - and the reference and NeMo
transcripts; and once: the model's facts (summary, fuse mode found and used, SHA-256, vocabulary), the reference's
timings and prepare reports, the settings and tolerances, versions. Optionally the tool's own Core ML conversion
(`convert`) and NeMo's ONNX export (`export_onnx`) go in too, so a replay machine needs nothing else.

`clip_record` is the one function that reads a finished session's internals.
"""

from __future__ import annotations

import datetime
import platform
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rnnt_tui.core.bundle.corpus_input import ClipInput
from rnnt_tui.core.bundle.facts import CHAR, SENTENCEPIECE, fuse_view_to_json, pieces_text
from rnnt_tui.core.bundle.format import BundleWriter, content_key
from rnnt_tui.core.bundle.recorded import FULL, PATH
from rnnt_tui.core.components import JOINT, STEPS
from rnnt_tui.core.errors import BadInputError, StepFailedError
from rnnt_tui.core.names import REFERENCE, Status
from rnnt_tui.core.pipeline.greedy import greedy_decode
from rnnt_tui.core.pipeline.grid import chunk_frames, grid_chunks
from rnnt_tui.core.progress import Progress, no_progress

if TYPE_CHECKING:
    from rnnt_tui.core.audio import Audio
    from rnnt_tui.core.pipeline.greedy import DecodeResult
    from rnnt_tui.core.pipeline.pipeline import Pipeline
    from rnnt_tui.core.pipeline.session import Session
    from rnnt_tui.core.runtimes.base import Runtime

AUTO = "auto"
JOINT_CHOICES = (AUTO, FULL, PATH)
#: `--joint auto` keeps the whole grid while all clips' grids together stay under this many bytes
FULL_GRID_LIMIT = 64 * 1024 * 1024
TOPK = 5
@dataclass
class ClipRecord:
    """What the reference computed for one clip, as plain arrays (role -> array) and JSON-ready facts."""

    audio: Audio
    arrays: dict[str, np.ndarray]
    decode: DecodeResult
    timings: dict[str, dict[str, Any] | None]
    reference_text: str
    reference_pieces: list[str]
    nemo_tokens: list[int] | None
    nemo_text: str | None
    matches_nemo: bool | None
    notes: dict[str, list[str]] = field(default_factory=dict)


def clip_record(session: Session) -> ClipRecord:
    """The reference's data from a finished session (the one place that reads its internals)."""
    from rnnt_tui.core.pipeline.context import audio_inputs

    failed = {n: r.error for n, r in session.results.items() if r.status == Status.FAILED}
    if failed:
        name, error = next(iter(failed.items()))
        raise StepFailedError(f"the reference {name} failed ({error}); nothing was recorded")
    up = session.ctx.upstream
    comparison = session.decode_comparison
    if up.features is None or up.encoded is None or up.decoder is None or up.targets is None or up.decode is None \
            or comparison is None:
        raise StepFailedError("the reference did not run every step; nothing was recorded")
    h0, c0 = session.reference.initial_state()
    arrays: dict[str, np.ndarray] = {f"preprocessor.{k}": v for k, v in audio_inputs(session.ctx).items()}
    arrays.update({f"preprocessor.{k}": np.asarray(v) for k, v in up.features.items()})
    arrays.update({f"encoder.{k}": np.asarray(v) for k, v in up.encoded.items()})
    arrays.update({f"decoder.{k}": np.asarray(v) for k, v in up.decoder.items()})
    arrays["decoder.targets"] = np.asarray(up.targets)
    arrays["decoder.h0"] = np.array(_numpy(h0), dtype=np.float32)
    arrays["decoder.c0"] = np.array(_numpy(c0), dtype=np.float32)
    timings = {name: (t.to_json() if (t := r.timings.get(REFERENCE)) is not None else None)
               for name, r in session.results.items()}
    return ClipRecord(audio=session.audio, arrays=arrays, decode=up.decode, timings=timings,
                      reference_text=comparison.reference_text, reference_pieces=comparison.reference_pieces,
                      nemo_tokens=comparison.nemo_tokens, nemo_text=comparison.nemo_text,
                      matches_nemo=comparison.matches_nemo,
                      notes={n: list(r.notes) for n, r in session.results.items()})


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        return np.asarray(value.detach().cpu().numpy())
    return np.asarray(value)


class _Tap:
    """Wraps the reference runtime during a second greedy decode and keeps every decoder step and joint row."""

    def __init__(self, inner: Runtime, encoded: np.ndarray) -> None:
        self.inner = inner
        self.frames = {}
        for t in range(encoded.shape[2] - 1, -1, -1):
            self.frames[content_key(encoded[:, :, t:t + 1])] = t
        self.tokens: list[int] = []
        self.g: list[np.ndarray] = []
        self.h: list[np.ndarray] = []
        self.c: list[np.ndarray] = []
        self.cells: list[tuple[int, int]] = []
        self.rows: list[np.ndarray] = []
        self._step_of: dict[int, int] = {}
        self._keep: list[Any] = []

    decodes_through_decision = False  # the reference decodes through its logits

    def decide_step(self, frame: np.ndarray, decoder_output: Any) -> tuple[int, int, float]:
        raise NotImplementedError("the reference has no decision head")

    def initial_state(self) -> Any:
        return self.inner.initial_state()

    def decoder_step(self, token: int, state: Any) -> tuple[Any, Any]:
        g, new_state = self.inner.decoder_step(token, state)
        self._step_of[id(g)] = len(self.tokens)
        self._keep.append(g)
        self.tokens.append(int(token))
        self.g.append(_numpy(g).reshape(1, -1, 1).astype(np.float32))
        self.h.append(_numpy(new_state[0]).astype(np.float32))
        self.c.append(_numpy(new_state[1]).astype(np.float32))
        return g, new_state

    def joint_step(self, frame: np.ndarray, decoder_output: Any) -> np.ndarray:
        row = self.inner.joint_step(frame, decoder_output)
        self.cells.append((self.frames[content_key(frame)], self._step_of[id(decoder_output)]))
        self.rows.append(np.array(row, dtype=np.float32))
        return row


def _tap_decode(session: Session, clip: ClipRecord) -> dict[str, np.ndarray]:
    """Decode again through a tap: the decode-path cells, their joint rows and the decoder steps they used."""
    encoded = clip.arrays["encoder.encoded"]
    length = int(clip.arrays["encoder.encoded_length"].reshape(-1)[0])
    summary = session.facts.summary
    tap = _Tap(session.reference, encoded)
    again = greedy_decode(tap, encoded, length, summary.blank_id, summary.durations,
                          session.facts.max_symbols())
    if again.tokens != clip.decode.tokens:
        raise StepFailedError("the reference's greedy decode is not repeatable (a second decode gave other tokens); "
                              "nothing was recorded")
    classes = tap.rows[0].shape[0] if tap.rows else summary.joint.num_classes_with_blank
    return {"decode.tokens": np.array(tap.tokens, dtype=np.int64),
            "decode.g": np.concatenate(tap.g, axis=2) if tap.g else np.zeros((1, 0, 0), np.float32),
            "decode.h": np.stack(tap.h) if tap.h else np.zeros((0,), np.float32),
            "decode.c": np.stack(tap.c) if tap.c else np.zeros((0,), np.float32),
            "decode.cells": np.array(tap.cells, dtype=np.int32).reshape(-1, 2),
            "decode.rows": np.stack(tap.rows) if tap.rows else np.zeros((0, classes), np.float32)}


def _grid_shape(clip: ClipRecord, classes: int) -> tuple[int, int, int, int]:
    frames = int(clip.arrays["encoder.encoded_length"].reshape(-1)[0])
    return (1, frames, int(clip.arrays["decoder.decoder_output"].shape[2]), classes)


def _record_joint(writer: BundleWriter, prefix: str, session: Session, clip: ClipRecord, storage: str,
                  cells: np.ndarray, cancel: threading.Event | None) -> tuple[dict[str, str], dict[str, Any]]:
    """The reference joint over the grid in the comparison's chunks, kept whole or at the decode-path cells."""
    session.facts.apply()
    reference, settings = session.reference, session.settings
    encoded = clip.arrays["encoder.encoded"]
    g, targets = clip.arrays["decoder.decoder_output"], clip.arrays["decoder.targets"]
    frames = int(clip.arrays["encoder.encoded_length"].reshape(-1)[0])
    chunk = chunk_frames(settings, frames)
    grid: np.ndarray | None = None
    path_rows: list[np.ndarray] = []
    shape: tuple[int, ...] = ()
    for start, stop in grid_chunks(frames, chunk, cancel=cancel, what="recording the joint"):
        logits = np.asarray(reference.run(JOINT, {"encoded": encoded[:, :, start:stop], "decoder_output": g,
                                                  "targets": targets})["logits"], dtype=np.float32)
        if not shape:
            shape = (1, frames, logits.shape[2], logits.shape[3])
            if storage == FULL:
                grid = writer.open_array(f"{prefix}/joint.grid", shape, np.float32)
        if grid is not None:
            grid[:, start:stop] = logits
        inside = (cells[:, 0] >= start) & (cells[:, 0] < stop)
        path_rows.append(logits[0, cells[inside, 0] - start, cells[inside, 1]])
    roles: dict[str, str] = {}
    if grid is not None:
        del grid
        roles["joint.grid"] = writer.close_array(f"{prefix}/joint.grid")
    else:
        rows = np.concatenate(path_rows) if path_rows else np.zeros((0, shape[3] if shape else 0), np.float32)
        tokens = rows[:, :rows.shape[1] - (session.facts.summary.joint.num_extra_outputs or 0)]
        top = np.argsort(-tokens, axis=1, kind="stable")[:, :TOPK]
        roles.update({
            "joint.path_cells": writer.array(f"{prefix}/joint.path_cells", cells),
            "joint.path_logits": writer.array(f"{prefix}/joint.path_logits", rows),
            "joint.path_argmax": writer.array(f"{prefix}/joint.path_argmax", tokens.argmax(axis=1).astype(np.int32)),
            "joint.path_top5_ids": writer.array(f"{prefix}/joint.path_top5_ids", top.astype(np.int32)),
            "joint.path_top5_values": writer.array(f"{prefix}/joint.path_top5_values",
                                                   np.take_along_axis(tokens, top, axis=1))})
    return roles, {"storage": storage, "frames": frames, "steps": int(g.shape[2]),
                   "classes": int(shape[3]) if shape else 0, "chunk_frames": chunk,
                   "path_cells": int(cells.shape[0])}


def choose_joint(choice: str, grid_bytes: int) -> tuple[str, str]:
    """Full grid or path cells, and why (said in the bundle)."""
    if choice == FULL:
        return FULL, "asked for: --joint full"
    if choice == PATH:
        return PATH, "asked for: --joint path"
    mib = grid_bytes / 2**20
    if grid_bytes <= FULL_GRID_LIMIT:
        return FULL, f"--joint auto: the whole grid of every clip is {mib:.1f} MiB (≤ {FULL_GRID_LIMIT >> 20} MiB)"
    return PATH, f"--joint auto: the whole grid would be {mib:.1f} MiB (> {FULL_GRID_LIMIT >> 20} MiB), so only " \
                 f"the decode-path cells are kept"


def _vocabulary(session: Session) -> dict[str, Any]:
    """Every token's piece, how they read as text, and whether that reading agrees with NeMo's own."""
    facts, summary = session.facts, session.facts.summary
    ids = list(range(summary.vocab_size))
    pieces = facts.pieces(ids)
    kind = CHAR if summary.tokenizer == "char" else SENTENCEPIECE
    disagree = [i for i in ids if pieces_text(kind, [pieces[i]]) != facts.text([i])]
    return {"kind": kind, "pieces": pieces, "tokenizer": summary.tokenizer, "single_tokens_checked": len(ids),
            "single_tokens_disagreeing": disagree[:20]}


def _frame_geometry(model: Any) -> dict[str, Any] | None:
    """What `coreml.convert.expected_frames` reads of the model (time-axis lengths of padded inputs' outputs)."""
    featurizer = getattr(getattr(model, "preprocessor", None), "featurizer", None)
    if featurizer is None:
        return None
    pre = getattr(model.encoder, "pre_encode", None)
    keys = ("_left_padding", "_right_padding", "_kernel_size", "_stride", "_sampling_num", "_ceil_mode")
    return {"hop_length": int(featurizer.hop_length), "n_fft": int(featurizer.n_fft),
            "stft_pad_amount": getattr(featurizer, "stft_pad_amount", None),
            "subsampling_factor": int(getattr(model.encoder, "subsampling_factor", 1) or 1),
            "pre_encode": {k: getattr(pre, k) for k in keys if isinstance(getattr(pre, k, None), (int, float, bool))}}


def _model_facts(session: Session, pipeline: Pipeline) -> dict[str, Any]:
    facts = session.facts
    onnx_dims = None
    decoder = getattr(getattr(pipeline.loaded, "model", None), "decoder", None)
    joint = getattr(getattr(pipeline.loaded, "model", None), "joint", None)
    if decoder is not None and joint is not None:
        onnx_dims = {"pred_rnn_layers": int(decoder.pred_rnn_layers), "pred_hidden": int(decoder.pred_hidden),
                     "encoder_hidden": int(joint.encoder_hidden), "blank_id": int(decoder.blank_idx),
                     "blank_as_pad": bool(getattr(decoder, "blank_as_pad", True))}
    return {"checkpoint": str(facts.path), "sha256": facts.sha256, "summary": facts.summary.to_json(),
            "notes": list(facts.notes), "fuse": fuse_view_to_json(facts.fuse()), "max_symbols": facts.max_symbols(),
            "vocabulary": _vocabulary(session), "dims": onnx_dims,
            "frames": _frame_geometry(getattr(pipeline.loaded, "model", None)),
            "reference": session.reference.describe(),
            "prepare": {c: r.to_json() for c, r in session.prepare_reports.get(REFERENCE, {}).items()}}


def _clip_meta(index: int, clip_input: ClipInput, clip: ClipRecord, roles: dict[str, str],
               joint: dict[str, Any], session: Session) -> dict[str, Any]:
    audio = clip.audio
    text_ok = None if clip.nemo_text is None else session.facts.text(clip.decode.tokens) == clip.reference_text
    return {"index": index, "name": clip_input.path.name, "text": clip_input.text, "entry": clip_input.entry(),
            "audio": {**audio.to_json(), "original_rate": audio.original_rate, "channels": audio.channels,
                      "subtype": audio.subtype, "format": audio.format},
            "arrays": roles, "joint": joint, "timings": clip.timings, "notes": clip.notes,
            "decode": {"reference_tokens": clip.decode.tokens, "reference_frames": clip.decode.frames,
                       "reference_durations": clip.decode.durations, "reference_text": clip.reference_text,
                       "reference_pieces": clip.reference_pieces, "nemo_tokens": clip.nemo_tokens,
                       "nemo_text": clip.nemo_text, "reference_matches_nemo": clip.matches_nemo,
                       "text_from_vocabulary_matches": text_ok}}


def record(checkpoint: Path, clips: Iterable[ClipInput], out: Path, joint: str = AUTO, convert: str | None = None,
           export_onnx: bool = False, settings: Any = None, progress: Progress = no_progress,
           cancel: threading.Event | None = None, skipped: Iterable[dict[str, Any]] = (), stream: bool = False,
           att_context: str | None = None, cache_states: bool = False, stream_coreai: bool = False) -> Path:
    """Record the reference on `clips` into a new bundle at `out` (a folder, or a `.rnntb` file); returns it.
    `skipped` lists manifest entries that named no usable clip (kept in the bundle, so a replay can say so); a clip
    of several whose audio cannot be used (no samples, NaN, not audio) joins them, the rest recorded, as `corpus`
    goes on past a bad row; the refusal is raised when no clip is left.
    `stream`: also NeMo's chunked reference on every clip at `att_context` and the candidates' streaming steps
    (`core.bundle.stream_record`; with `cache_states` the stateful Core ML step too; with `stream_coreai` the Core AI
    assets and streaming steps as well, `convert` staying the Core ML packages' precision)."""
    from rnnt_tui.core.bundle.extras import add_coreai_assets, add_onnx_export, add_packages
    from rnnt_tui.core.pipeline import events
    from rnnt_tui.core.pipeline.driver import run_steps
    from rnnt_tui.core.pipeline.pipeline import Pipeline
    from rnnt_tui.core.pipeline.request import Request, Settings
    from rnnt_tui.versions import all_versions

    if cache_states and not stream:
        raise ValueError("cache_states records the stateful streaming step: it needs stream")
    if joint not in JOINT_CHOICES:
        raise ValueError(f"unknown joint storage {joint!r}; choose one of {', '.join(JOINT_CHOICES)}")
    inputs = list(clips)
    if not inputs:
        raise ValueError("no clips to record")

    def emit(event: object) -> None:
        if isinstance(event, events.Progress):
            progress(event.text, event.fraction)

    writer = BundleWriter(out)
    pipeline = Pipeline(emit)
    try:
        request = Request(Path(checkpoint), inputs[0].path, None, settings=settings or Settings())
        # each clip's session is released once its reference data is taken (runtimes and facts are shared: the
        # pipeline's own session, on the first clip, answers for them)
        records: list[tuple[ClipInput, ClipRecord, dict[str, np.ndarray]]] = []
        skipped = list(skipped)
        refused: BadInputError | None = None
        for index, clip_input in enumerate(inputs):
            try:
                session = pipeline.open(replace(request, clip=clip_input.path), cancel) if pipeline.session is None \
                    else pipeline.session_for(clip_input.path)
            except BadInputError as exc:  # this clip's audio (the checkpoint's problems are every clip's)
                if len(inputs) == 1 or exc.path is None or exc.path.resolve() != clip_input.path.resolve():
                    raise
                refused = refused or exc
                skipped.append({"line": clip_input.line, "source": clip_input.source,
                                "problem": f"{clip_input.path}: {exc.problem}"})
                progress(f"skipped clip {index + 1}/{len(inputs)}: {exc}", index / len(inputs))
                continue
            progress(f"reference on clip {index + 1}/{len(inputs)}: {clip_input.path.name}", index / len(inputs))
            run_steps(session, emit=emit, cancel=cancel)
            rec = clip_record(session)
            records.append((clip_input, rec, _tap_decode(session, rec)))
            del session
        if not records:
            assert refused is not None
            raise refused
        first = pipeline.session
        assert first is not None
        classes = first.facts.summary.joint.num_classes_with_blank
        grid_bytes = sum(int(np.prod(_grid_shape(rec, classes))) * 4 for _, rec, _ in records)
        storage, why = choose_joint(joint, grid_bytes)
        clip_meta = []
        for index, (clip_input, rec, path_arrays) in enumerate(records):
            progress(f"writing clip {index + 1}/{len(records)}", index / len(records))
            prefix = f"clips/{index}"
            roles = {role: writer.array(f"{prefix}/{role}", value)
                     for role, value in {**rec.arrays, **path_arrays}.items()}
            joint_roles, joint_meta = _record_joint(writer, prefix, first, rec, storage,
                                                    path_arrays["decode.cells"], cancel)
            clip_meta.append(_clip_meta(index, clip_input, rec, {**roles, **joint_roles}, joint_meta, first))
        meta: dict[str, Any] = {
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "platform": platform.platform(), "model": _model_facts(first, pipeline),
            "settings": first.settings.to_json(), "joint": {"storage": storage, "why": why, "grid_bytes": grid_bytes},
            "steps": list(STEPS), "clips": clip_meta, "skipped": list(skipped), "versions": all_versions(),
            "packages": {}, "onnx": None, "coreai": None}
        if convert == "coreai" or stream_coreai:
            assert pipeline.loaded is not None
            meta["coreai"] = add_coreai_assets(writer, pipeline.loaded, "fp32", progress, cancel)
        if convert and convert != "coreai":
            assert pipeline.loaded is not None
            meta["packages"][convert] = add_packages(writer, pipeline.loaded, convert, progress, cancel)
        if export_onnx:
            assert pipeline.loaded is not None
            meta["onnx"] = add_onnx_export(writer, pipeline.loaded, progress, cancel)
        if stream:
            from rnnt_tui.core.bundle.stream_record import add_stream

            assert pipeline.loaded is not None
            meta["stream"] = add_stream(writer, pipeline.loaded, [(r.audio.samples, r.audio.sample_rate)
                                                                  for _, r, _ in records], att_context, progress,
                                        cancel, cache_states, stream_coreai)
        return writer.finish(meta)
    except BaseException:
        writer.abort()
        raise
    finally:
        pipeline.close()


__all__ = ["AUTO", "FULL", "JOINT_CHOICES", "PATH", "ClipRecord", "choose_joint", "clip_record", "record"]
