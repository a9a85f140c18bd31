"""The last step: greedy decoding end to end through each runtime, and against NeMo's own decoding.

The reference decodes from its own encoder output with the component-driven greedy loop (core.pipeline.greedy), which
must equal NeMo's `model.decoding` token for token (reported as `reference_matches_nemo`). The candidate decodes
from its own chain: its preprocessor (or the reference features, if it has none), its encoder, its decoder and
joint. Each decode is timed like every other step (the loop's wall time: first call, the settings' warm-ups,
then the median and p90 of its runs), so a speedup never compares one cold call with another.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np

from rnnt_tui.core.components import ENCODER, PREPROCESSOR
from rnnt_tui.core.coreml.matching import MEL_ENCODER
from rnnt_tui.core.errors import CancelledError
from rnnt_tui.core.names import CANDIDATE, REFERENCE, Status
from rnnt_tui.core.pipeline.context import StepContext, audio_inputs, error_text
from rnnt_tui.core.pipeline.greedy import DecodeResult, greedy_decode
from rnnt_tui.core.runtimes.base import Runtime
from rnnt_tui.core.stats.results import DecodeComparison, Divergence, StepResult
from rnnt_tui.core.textmetrics import first_difference, token_agreement, wer
from rnnt_tui.core.timing import Timings, measure

T = TypeVar("T")


def _timed(ctx: StepContext, fn: Callable[[], T]) -> tuple[T, Timings]:
    """`fn` timed as the settings say; the first call's result (greedy decoding is deterministic)."""
    out, timings = measure(fn, runs=ctx.settings.runs, warmup=ctx.settings.warmup)
    return out, timings


def reference_decode(ctx: StepContext) -> tuple[DecodeResult, Timings]:
    """The reference's greedy decode of its own encoder output (kept upstream: the decoder chain follows it;
    computed once per session)."""
    if ctx.upstream.decode is not None and ctx.upstream.decode_timings is not None:
        return ctx.upstream.decode, ctx.upstream.decode_timings
    encoded, length = ctx.upstream.encoded_frames
    summary = ctx.facts.summary
    decoded, timings = _timed(ctx, lambda: greedy_decode(ctx.reference, encoded, length, summary.blank_id,
                                                   summary.durations, ctx.facts.max_symbols(), ctx.cancel))
    ctx.upstream.decode, ctx.upstream.decode_timings = decoded, timings
    return decoded, timings


def _candidate_encoded(ctx: StepContext, candidate: Runtime) -> tuple[np.ndarray, int]:
    features = ctx.upstream.features
    assert features is not None
    if ENCODER not in candidate.components and MEL_ENCODER in candidate.heads:
        out = ctx.upstream.candidate.get(MEL_ENCODER) or candidate.run(MEL_ENCODER, audio_inputs(ctx))
        return np.asarray(out["encoded"], dtype=np.float32), int(np.asarray(out["encoded_length"]).reshape(-1)[0])
    if PREPROCESSOR in candidate.components:
        features = ctx.upstream.candidate.get(PREPROCESSOR) or candidate.run(PREPROCESSOR, audio_inputs(ctx))
    out = candidate.run(ENCODER, {"features": np.asarray(features["features"], dtype=np.float32),
                                  "features_length": np.asarray(features["features_length"], dtype=np.int64)})
    return np.asarray(out["encoded"], dtype=np.float32), int(np.asarray(out["encoded_length"]).reshape(-1)[0])


def _divergence(ctx: StepContext, ref: DecodeResult, cand: DecodeResult) -> Divergence | None:
    index = first_difference(ref.tokens, cand.tokens)
    if index is None:
        return None

    def at(seq: list[int], i: int) -> int | None:
        return seq[i] if i < len(seq) else None

    ref_tok, cand_tok = at(ref.tokens, index), at(cand.tokens, index)
    return Divergence(
        index=index, frame_reference=at(ref.frames, index), frame_candidate=at(cand.frames, index),
        token_reference=ref_tok, token_candidate=cand_tok,
        piece_reference=ctx.facts.pieces([ref_tok])[0] if ref_tok is not None else None,
        piece_candidate=ctx.facts.pieces([cand_tok])[0] if cand_tok is not None else None)


def decode_step(ctx: StepContext) -> tuple[StepResult, DecodeComparison]:
    facts = ctx.facts
    summary = facts.summary
    encoded, length = ctx.upstream.encoded_frames
    ctx.progress("greedy decode on the reference", None)
    ref_dec, ref_t = reference_decode(ctx)
    nemo_tokens, nemo_text = facts.nemo_greedy(encoded, length)
    ref_text = facts.text(ref_dec.tokens)
    result = StepResult(name="decode", status=Status.DONE, timings={REFERENCE: ref_t})
    matches = None if nemo_tokens is None else nemo_tokens == ref_dec.tokens
    comparison = DecodeComparison(reference_text=ref_text, nemo_text=nemo_text, reference_tokens=ref_dec.tokens,
                                  nemo_tokens=nemo_tokens, reference_pieces=facts.pieces(ref_dec.tokens),
                                  matches_nemo=matches)
    if matches is False:
        result.status = Status.MISMATCH
        result.notes.append("the component-driven reference decode differs from NeMo's own decoding")
    if ctx.candidate_skip(result):
        return result, comparison
    candidate = ctx.candidate
    assert candidate is not None
    try:
        ctx.progress(f"greedy decode on {candidate.label}", None)
        cand_encoded, cand_length = _candidate_encoded(ctx, candidate)
        cand_dec, cand_t = _timed(ctx, lambda: greedy_decode(candidate, cand_encoded, cand_length, summary.blank_id,
                                                             summary.durations, facts.max_symbols(), ctx.cancel))
    except CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - the candidate failing is the finding
        result.status, result.error = Status.FAILED, f"{candidate.label}: {error_text(exc)}"
        return result, comparison
    result.timings[CANDIDATE] = cand_t
    if cand_dec.via != "joint":
        result.notes.append(f"{candidate.label} decoded through its {cand_dec.via}: the transcript is the "
                            f"package's own decisions")
    cand_text = facts.text(cand_dec.tokens)
    divergence = _divergence(ctx, ref_dec, cand_dec)
    comparison = DecodeComparison(
        reference_text=ref_text, nemo_text=nemo_text, reference_tokens=ref_dec.tokens, nemo_tokens=nemo_tokens,
        reference_pieces=comparison.reference_pieces, candidate_text=cand_text, candidate_tokens=cand_dec.tokens,
        candidate_pieces=facts.pieces(cand_dec.tokens),
        token_agreement=token_agreement(ref_dec.tokens, cand_dec.tokens), wer=wer(ref_text, cand_text),
        first_divergence=divergence, matches_nemo=matches,
        candidate_matches_nemo=None if nemo_tokens is None else nemo_tokens == cand_dec.tokens)
    if divergence is not None:
        result.status = Status.MISMATCH
        result.notes.append(f"transcripts diverge at token {divergence.index}")
    return result, comparison
