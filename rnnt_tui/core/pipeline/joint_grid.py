"""The joint over the full T x U grid, compared in chunks of T so memory stays bounded.

Each chunk of frames is run on both runtimes with the same inputs (reference encoder output, reference decoder
outputs and the prediction-net inputs that made them) and folded into one `DiffAccumulator`; the statistics
equal a whole-grid pass (see core.stats.diff). Peak extra memory is two chunks of [1, chunk, U, C] logits plus the
per-cell maps ([T, U] max |d| and argmax agreement) that the heatmap draws. `joint_chunk_frames=0` runs the whole
grid at once. Timings are of one call on the first chunk (or the whole grid when it is one chunk).
"""

from __future__ import annotations

import threading

import numpy as np

from rnnt_tui.core import fuse as fuse_mode
from rnnt_tui.core.components import JOINT, TensorInfo, describe
from rnnt_tui.core.names import CANDIDATE, REFERENCE, Status
from rnnt_tui.core.pipeline.context import StepContext, error_text
from rnnt_tui.core.pipeline.grid import chunk_frames, grid_chunks
from rnnt_tui.core.pipeline.heads import decision_rows
from rnnt_tui.core.pipeline.request import Settings
from rnnt_tui.core.progress import Progress
from rnnt_tui.core.runtimes.base import Runtime
from rnnt_tui.core.stats.compare import samples
from rnnt_tui.core.stats.diff import DiffAccumulator
from rnnt_tui.core.stats.results import OutputComparison, StepResult
from rnnt_tui.core.timing import measure


def joint_step(ctx: StepContext) -> StepResult:
    """The joint over the reference's T x U grid; the mode note says what joint(enc, dec) returns now."""
    assert ctx.upstream.decoder is not None and ctx.upstream.targets is not None, "the decoder chain runs first"
    encoded, length = ctx.upstream.encoded_frames
    fuse = ctx.facts.fuse()
    if fuse.mode != ctx.settings.joint_mode:  # sessions share the model's facts; this one's settings decide
        fuse = ctx.facts.set_joint_mode(ctx.settings.joint_mode)
    ctx.facts.apply()
    comparing = ctx.comparing and ctx.candidate is not None
    has_joint = comparing and JOINT in ctx.candidate.components  # type: ignore[union-attr]
    result = compare_joint_grid(ctx.reference, ctx.candidate if has_joint else None, encoded[:, :, :length],
                                ctx.upstream.decoder["decoder_output"], ctx.upstream.targets, ctx.settings,
                                ctx.progress, ctx.cancel)
    if result.status == Status.FAILED and result.error and result.error.startswith("reference") \
            and fuse.mode != fuse_mode.VALIDATION:
        result.notes.append("switch the joint to validation mode (fuse off, log_softmax off) to compare logits")
    for side in (REFERENCE, CANDIDATE):
        result.timings[side] = ctx.with_prepare(side, JOINT, result.timings.get(side))
    if not has_joint:
        ctx.candidate_skip(result, JOINT)
    if comparing and result.error is None:
        result.notes.extend(ctx.candidate_notes(JOINT))
        g, targets = ctx.upstream.decoder["decoder_output"], ctx.upstream.targets
        result.decisions, notes = decision_rows(ctx, encoded[:, :, :length], g, targets)
        result.notes.extend(notes)
        if result.decisions and result.status == Status.REFERENCE_ONLY:
            result.status = Status.DONE  # the decision heads are what this candidate has of the joint
    result.notes.insert(0, f"joint mode {fuse.mode}: joint(encoder_outputs, decoder_outputs) → {fuse.probe}")
    return result


def compare_joint_grid(reference: Runtime, candidate: Runtime | None, encoded: np.ndarray, g: np.ndarray,
                       targets: np.ndarray, settings: Settings, progress: Progress,
                       cancel: threading.Event | None) -> StepResult:
    frames = encoded.shape[2]
    steps = g.shape[2]
    chunk = chunk_frames(settings, frames)
    tol = settings.tolerances[JOINT]
    first_inputs = {"encoded": encoded[:, :, :chunk], "decoder_output": g, "targets": targets}
    result = StepResult(name=JOINT, status=Status.DONE, inputs=describe({"encoded": encoded, "decoder_output": g,
                                                                   "targets": targets}))
    try:
        bound = reference.bind(JOINT, first_inputs)
        raw, ref_t = measure(bound, runs=settings.runs, warmup=settings.warmup)
        first_ref = bound.outputs(raw)["logits"]
    except Exception as exc:  # noqa: BLE001 - NeMo's own error (fused mode) is the finding
        result.status = Status.FAILED
        result.error = f"reference joint raised {error_text(exc)}"
        return result
    classes = first_ref.shape[-1]
    full_shape = (1, frames, steps, classes)
    result.reference_outputs = [TensorInfo("logits", full_shape, str(first_ref.dtype))]
    result.timings[REFERENCE] = ref_t
    result.samples[REFERENCE] = samples({"logits": first_ref})
    scope = "the whole grid" if chunk == frames else f"a chunk of {chunk} of {frames} frames"
    result.notes.append(f"joint over T x U = {frames} x {steps} in chunks of {chunk} frames; timed on {scope}")
    if candidate is None:
        return result
    try:
        cand_bound = candidate.bind(JOINT, first_inputs)
        cand_raw, cand_t = measure(cand_bound, runs=settings.runs, warmup=settings.warmup)
        first_cand = cand_bound.outputs(cand_raw)["logits"]
    except Exception as exc:  # noqa: BLE001 - the candidate failing is the finding
        result.status, result.error = Status.FAILED, f"{candidate.label}: {error_text(exc)}"
        return result
    result.timings[CANDIDATE] = cand_t
    result.samples[CANDIDATE] = samples({"logits": first_cand})
    cand_info = TensorInfo("logits", (1, frames, *first_cand.shape[2:]), str(first_cand.dtype))
    result.candidate_outputs = [cand_info]
    ref_info = result.reference_outputs[0]
    if first_cand.shape != first_ref.shape:
        note = f"shape mismatch: {list(cand_info.shape)} vs reference {list(full_shape)}"
        result.comparisons = [OutputComparison("logits", ref_info, cand_info, None, tol.atol, tol.rtol, note)]
        result.status = Status.MISMATCH
        return result
    acc = DiffAccumulator(full_shape, tol.atol, tol.rtol, axis=1, logits=True, topk=settings.topk)
    cell_max = np.zeros((frames, steps), dtype=np.float32)
    cell_agree = np.zeros((frames, steps), dtype=bool)
    for start, stop in grid_chunks(frames, chunk, progress, cancel):
        if start == 0:
            ref_logits, cand_logits = first_ref, first_cand
        else:
            inputs = {"encoded": encoded[:, :, start:stop], "decoder_output": g, "targets": targets}
            ref_logits = reference.run(JOINT, inputs)["logits"]
            cand_logits = candidate.run(JOINT, inputs)["logits"]
        acc.update(ref_logits, cand_logits)
        r32 = ref_logits.astype(np.float32, copy=False)[0]
        c32 = cand_logits.astype(np.float32, copy=False)[0]
        cell_max[start:stop] = np.abs(c32 - r32).max(axis=-1)
        cell_agree[start:stop] = r32.argmax(axis=-1) == c32.argmax(axis=-1)
    stats = acc.result()
    note = "" if ref_info.dtype == cand_info.dtype else \
        f"dtype differs: {cand_info.dtype} vs {ref_info.dtype} (upcast for statistics)"
    result.comparisons = [OutputComparison("logits", ref_info, cand_info, stats, tol.atol, tol.rtol, note)]
    result.maps = {"cell_max_abs": cell_max, "cell_argmax_agree": cell_agree}
    result.status = Status.DONE if stats.ok else Status.MISMATCH
    return result
