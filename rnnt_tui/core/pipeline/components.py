"""The preprocessor and encoder steps: one component on both runtimes with the same inputs, compared.

Each takes the reference's upstream output as its input (features for the encoder), so a diff belongs to that
component alone. The candidate's own outputs are kept for its end-to-end decode.
"""

from __future__ import annotations

from rnnt_tui.core.components import ENCODER, OUTPUTS, PREPROCESSOR, describe
from rnnt_tui.core.names import CANDIDATE, REFERENCE, Status
from rnnt_tui.core.pipeline.context import Arrays, StepContext, audio_inputs, error_text
from rnnt_tui.core.pipeline.heads import MEL_ENCODER, fused_encoder_rows
from rnnt_tui.core.stats.compare import compare_outputs, samples, status_of
from rnnt_tui.core.stats.diff import per_frame_max
from rnnt_tui.core.stats.results import StepResult


def component_step(ctx: StepContext, name: str, inputs: Arrays) -> tuple[StepResult, Arrays]:
    """Run `name` on the reference, then (if it can) the candidate; returns the result and the reference outputs."""
    ref_out, ref_t = ctx.timed(ctx.reference, name, inputs)
    result = StepResult(name=name, status=Status.DONE, inputs=describe(inputs), reference_outputs=describe(ref_out),
                        timings=ctx.reference_timings(name, ref_t), samples={REFERENCE: samples(ref_out)})
    if ctx.candidate_skip(result, name):
        return result, ref_out
    assert ctx.candidate is not None
    try:
        cand_out, cand_t = ctx.timed(ctx.candidate, name, inputs)
    except Exception as exc:  # noqa: BLE001 - the candidate failing is the finding
        result.status, result.error = Status.FAILED, f"{ctx.candidate.label}: {error_text(exc)}"
        return result, ref_out
    ctx.upstream.candidate[name] = cand_out
    result.notes.extend(ctx.candidate_notes(name))
    result.candidate_outputs = describe(cand_out)
    result.timings[CANDIDATE] = ctx.with_prepare(CANDIDATE, name, cand_t)
    result.samples[CANDIDATE] = samples(cand_out)
    result.comparisons = compare_outputs(ref_out, cand_out, OUTPUTS[name], ctx.settings.tolerances[name],
                                         topk=ctx.settings.topk)
    result.status = Status.DONE if status_of(result.comparisons) else Status.MISMATCH
    return result, ref_out


def preprocessor_step(ctx: StepContext) -> StepResult:
    result, ctx.upstream.features = component_step(ctx, PREPROCESSOR, audio_inputs(ctx))
    result.notes.extend(ctx.audio.notes())
    return result


def encoder_step(ctx: StepContext) -> StepResult:
    assert ctx.upstream.features is not None, "the preprocessor runs first"
    result, ctx.upstream.encoded = component_step(ctx, ENCODER, dict(ctx.upstream.features))
    ref = ctx.upstream.encoded
    cand = ctx.upstream.candidate.get(ENCODER)
    rows, notes = fused_encoder_rows(ctx, ref)
    if rows or notes:
        if result.status == Status.REFERENCE_ONLY:  # no encoder package: the fused one is what is compared
            result.status = Status.DONE
            result.notes = [n for n in result.notes if "has no encoder" not in n]
        result.comparisons = [*result.comparisons, *rows]
        result.notes.extend(notes)
        if rows and not status_of(rows):
            result.status = Status.MISMATCH
        cand = cand or ctx.upstream.candidate.get(MEL_ENCODER)
    if cand is not None and cand["encoded"].shape == ref["encoded"].shape:
        result.maps["per_frame_max_abs"] = per_frame_max(ref["encoded"], cand["encoded"], axis=-1)
    return result
