"""Replay a bundle: the comparison pipeline's steps with a recorded reference, and only the candidate running.

`Recording` is the pipeline's reference provider for a bundle (`pipeline.reference.ReferenceProvider`): a
`Pipeline` opened with it prepares the candidate (Core ML / MIL packages, or the recorded ONNX export) once, the
way `compare` does, and makes one session per recorded clip with `RecordedRuntime` as the reference and
`BundleFacts` as the model's facts, so the steps, tolerances, statistics, decode checks and report are the
comparison's own whatever the front end (`replay`, the app). Two things differ and are said: the
reference's timings are the recorded ones (its label says "recorded"), and a bundle recorded with `--joint path`
compares the joint on the decode-path cells only (`path_joint_step`: the candidate still computes the grid in the
recorded chunks; the statistics cover the cells the reference's greedy decode visited). Nothing is written into
the bundle. Imports neither torch nor NeMo.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rnnt_tui.core.audio import Audio
from rnnt_tui.core.bundle.candidates import (
    PACKAGE_RUNTIMES,
    candidate_runtime,
    coreai_dir,
    known_packages,
    packages_dir,
    provenance,
)
from rnnt_tui.core.bundle.facts import BundleFacts
from rnnt_tui.core.bundle.format import Bundle
from rnnt_tui.core.bundle.recorded import FULL, PATH, RecordedModel, RecordedRuntime
from rnnt_tui.core.components import JOINT, TensorInfo, describe
from rnnt_tui.core.errors import BadInputError, CancelledError
from rnnt_tui.core.names import CANDIDATE, REFERENCE, Status
from rnnt_tui.core.options import RuntimeOptions
from rnnt_tui.core.pipeline.context import StepContext, error_text
from rnnt_tui.core.pipeline.grid import chunk_frames, grid_chunks
from rnnt_tui.core.pipeline.reference import ClipReference
from rnnt_tui.core.pipeline.request import Request, Settings
from rnnt_tui.core.progress import Progress, no_progress
from rnnt_tui.core.runtimes.base import Runtime
from rnnt_tui.core.stats.compare import samples
from rnnt_tui.core.stats.diff import DiffAccumulator
from rnnt_tui.core.stats.results import OutputComparison, StepResult
from rnnt_tui.core.timing import Timings, measure
from rnnt_tui.core.tolerances import Tolerance

if TYPE_CHECKING:
    from rnnt_tui.core.coreml.spec import PackageSpec
    from rnnt_tui.core.corpus.records import UtteranceRecord
    from rnnt_tui.core.pipeline.facts import ModelFacts
    from rnnt_tui.core.pipeline.session import Session, Step

#: what a bundle is replayed against when no candidate is named (the MIL interpreter runs anywhere)
DEFAULT_AGAINST = "mil"


def recorded_settings(bundle: Bundle, tolerances: dict[str, Tolerance] | None = None, runs: int | None = None,
                      warmup: int | None = None) -> Settings:
    """The recording's settings (joint mode and chunking are fixed at record time), with what the replay sets."""
    data = bundle.meta.get("settings", {})
    recorded = {k: Tolerance(**v) for k, v in data.get("tolerances", {}).items()}
    return Settings(runs=runs if runs is not None else int(data.get("runs", 5)),
                    warmup=warmup if warmup is not None else int(data.get("warmup", 1)),
                    joint_mode=str(data.get("joint_mode", "validation")), tolerances=tolerances or recorded,
                    joint_chunk_frames=int(data.get("joint_chunk_frames", 32)))


def clip_audio(bundle: Bundle, clip: dict[str, Any]) -> Audio:
    """The clip as the model saw it (mono float32 at the model's rate), from the bundle."""
    meta = clip["audio"]
    signal = bundle.array(clip["arrays"]["preprocessor.audio_signal"])
    return Audio(path=Path(meta["path"]), samples=np.ascontiguousarray(signal[0]), sample_rate=int(meta["sample_rate"]),
                 original_rate=int(meta["original_rate"]), channels=int(meta["channels"]),
                 subtype=str(meta["subtype"]), format=str(meta["format"]),
                 resampler=str(meta.get("resampler", "none")), loader=str(meta.get("loader", "recorded")))


def open_for_replay(path: Path | str, against: str, precision: str | None = None, packages: str | None = None,
                    compute_units: str | None = None) -> tuple[Bundle, RuntimeOptions]:
    """Open `path` for a replay against `against`: every array is verified, and of the other files those this
    candidate runs (the chosen packages, or the ONNX export); returns the bundle and the candidate's options."""
    bundle = Bundle.open(path, verify=False)
    try:
        chosen, folder = precision or "fp32", packages
        if against in PACKAGE_RUNTIMES and packages is None:
            found, chosen = packages_dir(bundle, precision)
            folder = str(found)
        elif against == "coreai" and packages is None:
            folder = str(coreai_dir(bundle))
        bundle.verify(files_used(bundle, against, folder))
    except BaseException:
        bundle.close()
        raise
    options = RuntimeOptions(precision=chosen, packages_dir=folder)
    return bundle, replace(options, compute_units=compute_units) if compute_units else options


def files_used(bundle: Bundle, against: str, folder: str | None) -> tuple[str, ...]:
    """The bundle's files (folder prefixes) a replay against `against` reads: the ONNX export, or the packages
    folder when it is inside the bundle."""
    if against == "onnx":
        return (str((bundle.meta.get("onnx") or {}).get("dir", "onnx")),)
    inside = folder is not None and Path(folder).is_relative_to(bundle.root)
    return (Path(folder).relative_to(bundle.root).as_posix(),) if inside and folder else ()


class Recording:
    """A bundle as the pipeline's reference (`pipeline.reference.ReferenceProvider`): the recorded model's facts,
    a `RecordedRuntime` per clip (a path-only joint compared on the decode-path cells, each result carrying the
    recording's own reference timings), the candidate built without NeMo, and the settings fixed at record time.
    `precision`: which of the bundle's conversions a package candidate runs (None: fp32 when recorded, else the
    one recorded)."""

    recorded = True

    def __init__(self, bundle: Bundle, precision: str | None = None) -> None:
        self.bundle = bundle
        self.precision = precision
        self.facts: ModelFacts = BundleFacts(bundle)
        self.loaded = RecordedModel(path=self.facts.path, summary=self.facts.summary, sha256=self.facts.sha256,
                                    notes=self.facts.notes)
        self._warnings: list[str] = []
        self._unchecked: tuple[Path, dict[str, PackageSpec] | None] | None = None  # packages whose provenance is read
        self.options: RuntimeOptions | None = None  # the candidate's, as resolved (its packages folder)
        self._verified: set[tuple[str, ...]] = set()

    @property
    def warnings(self) -> list[str]:
        """What cannot be checked about the candidate's provenance, one line each. Packages are read when this is
        first asked (after preparing), so a bundle without its packages' recorded specs has said why reading them
        is slow before it happens."""
        if self._unchecked is not None:
            folder, specs = self._unchecked
            self._unchecked = None
            self._warnings += provenance(folder, self.facts.sha256, specs)
        return self._warnings

    @warnings.setter
    def warnings(self, value: list[str]) -> None:
        self._warnings, self._unchecked = value, None

    @property
    def clips(self) -> list[dict[str, Any]]:
        clips: list[dict[str, Any]] = self.bundle.meta["clips"]
        return clips

    def settings(self, asked: Settings) -> Settings:
        """`asked` with the recording's joint mode and chunking (fixed at record time); its tolerances unless the
        user gave some (a package candidate's own then follow its programs' compute precision)."""
        recorded = recorded_settings(self.bundle, asked.tolerances if asked.tolerances_given else None, asked.runs,
                                     asked.warmup)
        return replace(recorded, tolerances_given=asked.tolerances_given, topk=asked.topk)

    def index_of(self, which: Path | int) -> int:
        """A clip index: `which` itself, or the recorded clip whose file is `which` (else the first clip)."""
        if isinstance(which, int):
            if not 0 <= which < len(self.clips):
                raise IndexError(f"the bundle holds {len(self.clips)} clip(s), not clip {which}")
            return which
        target = str(Path(which).expanduser().resolve())
        return next((i for i, c in enumerate(self.clips) if c["audio"]["path"] == target), 0)

    def clip(self, which: Path | int) -> ClipReference:
        index = self.index_of(which)
        reference = RecordedRuntime(self.bundle, index, self.loaded)
        recorded = self.clips[index].get("timings", {})

        def recorded_timings(result: StepResult) -> None:
            timing = recorded.get(result.name)
            if REFERENCE in result.timings or timing is not None:
                result.timings[REFERENCE] = Timings(**timing) if timing is not None else None
                result.notes.append("reference: recorded (its timings are the recording's, not run here)")

        overrides: dict[str, Step] = {}
        if reference.joint_storage == PATH:
            overrides[JOINT] = lambda ctx: path_joint_step(ctx, reference, ctx.progress, ctx.cancel)
        return ClipReference(clip_audio(self.bundle, self.clips[index]), reference,
                             {r.component: r for r in reference.prepare()}, overrides, recorded_timings)

    def candidate(self, against: str, options: RuntimeOptions) -> Runtime:
        """The candidate without NeMo: packages or Core AI assets (`options.packages_dir`, else the bundle's own
        conversion) or the recorded ONNX export; what cannot be checked about their provenance goes to `warnings`."""
        self.warnings = []
        known = None
        if against in PACKAGE_RUNTIMES:
            folder, precision = (Path(options.packages_dir), options.precision) if options.packages_dir \
                else packages_dir(self.bundle, self.precision)
            if not folder.is_dir():
                raise BadInputError(folder, "no such packages folder")
            options = replace(options, packages_dir=str(folder), precision=precision)
            self._verify(against, str(folder))
            known = known_packages(self.bundle, folder)
            self._unchecked = (folder, known.specs if known is not None else None)
        elif against == "coreai":  # the bundle's own Core AI assets (`record --convert coreai`) unless given
            folder = Path(options.packages_dir) if options.packages_dir else coreai_dir(self.bundle)
            if not folder.is_dir():
                raise BadInputError(folder, "no such folder of Core AI assets")
            options = replace(options, packages_dir=str(folder))
            self._verify(against, str(folder))
        elif against == "onnx":
            self._verify(against, None)
            export = self.bundle.meta.get("onnx") or {}
            if export.get("source_sha256") and export["source_sha256"] != self.facts.sha256:
                self.warnings.append("the recorded ONNX export came from a different checkpoint")
        self.options = options
        return candidate_runtime(self.bundle, self.loaded, against, options, known)

    def _verify(self, against: str, folder: str | None) -> None:
        """Check the files this candidate reads against the manifest, once per set of files."""
        used = files_used(self.bundle, against, folder)
        if used not in self._verified:
            self.bundle.verify(used)
            self._verified.add(used)

    def report_block(self, index: int) -> dict[str, Any]:
        """What a replay report adds to the comparison's JSON."""
        clip = self.clips[index]
        return {"path": str(self.bundle.path), "format_version": self.bundle.format_version,
                "recorded_at": self.bundle.meta.get("created"), "recorded_on": self.bundle.meta.get("platform"),
                "clip": index, "clips": len(self.clips), "joint_storage": clip["joint"]["storage"],
                "joint_storage_why": self.bundle.meta.get("joint", {}).get("why"),
                "reference_timings": "recorded", "packages": self.options.packages_dir if self.options else None,
                "warnings": list(self.warnings)}

    def corpus_record(self, index: int, session: Session, wall_s: float) -> UtteranceRecord:
        """A replayed clip as a corpus record (`core.corpus.records`), scored against the manifest's text."""
        from rnnt_tui.core.bundle.corpus_input import utterance_of
        from rnnt_tui.core.corpus.records import record_from

        return record_from(session.results, session.decode_comparison,
                           utterance_of(self.clips[index].get("entry", {}), session.audio.path),
                           session.audio.duration_s, wall_s)

    def corpus(self, records: list[UtteranceRecord]) -> dict[str, Any]:
        """Corpus figures of replayed clips, as a corpus run gives them (`core.corpus.aggregate`: WER / CER per
        runtime, ΔWER, QoI, identical decodes, RTFx, drift), with the recording's skipped manifest entries."""
        from rnnt_tui.core.corpus.aggregate import aggregate

        return {**aggregate(records), "utterances": [r.to_json() for r in records],
                "skipped_at_record": list(self.bundle.meta.get("skipped", [])),
                "note": "reference compute is the recording's (RTFx of the reference is as recorded)"}

    def close(self) -> None:
        self.bundle.close()


def open_recording(path: Path | str, against: str | None, precision: str | None = None) -> Recording:
    """The bundle at `path` as a reference for a replay against `against`: every array is verified, and of the
    other files those this candidate runs (the chosen packages, or the ONNX export)."""
    against = against or DEFAULT_AGAINST
    bundle, options = open_for_replay(path, against, precision)
    recording = Recording(bundle, options.precision if against in PACKAGE_RUNTIMES else precision)
    recording._verified.add(files_used(bundle, against, options.packages_dir))
    return recording


def recording_for(request: Request) -> Recording | None:
    """The recording `request.checkpoint` names (a bundle), or None: it is a checkpoint, NeMo restores it."""
    from rnnt_tui.core.bundle.identify import is_bundle

    return open_recording(request.checkpoint, request.against) if is_bundle(request.checkpoint) else None


def path_joint_step(ctx: StepContext, reference: RecordedRuntime, progress: Progress = no_progress,
                    cancel: threading.Event | None = None) -> StepResult:
    """The joint compared on the decode-path cells: the candidate's grid (in the recorded chunks) against the
    recorded reference cells."""
    bundle, roles = reference.bundle, reference.clip["arrays"]
    cells = bundle.array(roles["joint.path_cells"])
    ref_rows = bundle.array(roles["joint.path_logits"])
    assert ctx.upstream.decoder is not None and ctx.upstream.targets is not None, "the decoder chain runs first"
    encoded, length = ctx.upstream.encoded_frames
    encoded = encoded[:, :, :length]
    g, targets = ctx.upstream.decoder["decoder_output"], ctx.upstream.targets
    frames, steps = encoded.shape[2], g.shape[2]
    chunk = chunk_frames(ctx.settings, frames)
    tol = ctx.settings.tolerances[JOINT]
    ref_info = TensorInfo("logits", tuple(ref_rows.shape), str(ref_rows.dtype))
    result = StepResult(name=JOINT, status=Status.DONE,
                        inputs=describe({"encoded": encoded, "decoder_output": g, "targets": targets}),
                        reference_outputs=[ref_info], samples={REFERENCE: samples({"logits": ref_rows})},
                        notes=[f"joint mode {ctx.facts.fuse().mode}: joint(encoder_outputs, decoder_outputs) → "
                               f"{ctx.facts.fuse().probe}",
                               f"recorded with --joint path: compared on the {cells.shape[0]} decode-path cells of "
                               f"the T x U = {frames} x {steps} grid (the candidate computes the grid in chunks of "
                               f"{chunk} frames)"])
    if ctx.candidate_skip(result, JOINT):
        return result
    candidate = ctx.candidate
    assert candidate is not None
    acc = DiffAccumulator(tuple(ref_rows.shape), tol.atol, tol.rtol, axis=0, logits=True, topk=ctx.settings.topk)
    cand_rows: list[np.ndarray] = []
    done = 0
    try:
        for start, stop in grid_chunks(frames, chunk, progress, cancel):
            inputs = {"encoded": encoded[:, :, start:stop], "decoder_output": g, "targets": targets}
            if start == 0:
                bound = candidate.bind(JOINT, inputs)
                raw, cand_t = measure(bound, runs=ctx.settings.runs, warmup=ctx.settings.warmup)
                logits = bound.outputs(raw)["logits"]
            else:
                logits = candidate.run(JOINT, inputs)["logits"]
            inside = (cells[:, 0] >= start) & (cells[:, 0] < stop)
            rows = np.asarray(logits)[0, cells[inside, 0] - start, cells[inside, 1]]
            if rows.shape[1:] != ref_rows.shape[1:]:
                note = f"shape mismatch: candidate rows of {list(rows.shape[1:])} vs recorded " \
                       f"{list(ref_rows.shape[1:])}"
                result.comparisons = [OutputComparison("logits", ref_info, TensorInfo("logits", rows.shape,
                                                                                      str(rows.dtype)),
                                                       None, tol.atol, tol.rtol, note)]
                result.status = Status.MISMATCH
                return result
            acc.update(ref_rows[done:done + rows.shape[0]], rows)
            cand_rows.append(rows)
            done += rows.shape[0]
    except CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - the candidate failing is the finding
        result.status, result.error = Status.FAILED, f"{candidate.label}: {error_text(exc)}"
        return result
    cand = np.concatenate(cand_rows) if cand_rows else np.zeros((0, *ref_rows.shape[1:]), ref_rows.dtype)
    cand_info = TensorInfo("logits", tuple(cand.shape), str(cand.dtype))
    stats = acc.result()
    note = "decode-path cells only" + ("" if ref_info.dtype == cand_info.dtype else
                                        f"; dtype differs: {cand_info.dtype} vs {ref_info.dtype} (upcast)")
    result.candidate_outputs = [cand_info]
    result.samples[CANDIDATE] = samples({"logits": cand})
    result.timings[CANDIDATE] = ctx.with_prepare(CANDIDATE, JOINT, cand_t)
    result.comparisons = [OutputComparison("logits", ref_info, cand_info, stats, tol.atol, tol.rtol, note)]
    r32, c32 = ref_rows.astype(np.float32), cand.astype(np.float32)
    result.maps = {"path_cells": cells, "path_max_abs": np.abs(c32 - r32).max(axis=1) if len(cand) else c32[:, 0],
                   "path_argmax_agree": r32.argmax(axis=1) == c32.argmax(axis=1) if len(cand) else c32[:, 0] > 0}
    result.status = Status.DONE if stats.ok else Status.MISMATCH
    return result


__all__ = ["FULL", "PATH", "Recording", "clip_audio", "open_for_replay", "open_recording", "path_joint_step",
           "recorded_settings", "recording_for"]
