"""The last step: greedy decoding end to end through each runtime, and against NeMo's own decoding.

The reference decodes from its own encoder output with the component-driven greedy loop (core.decode), which
must equal NeMo's `model.decoding` token for token (reported as `reference_matches_nemo`). The candidate decodes
from its own chain: its preprocessor (or the reference features, if it has none), its encoder, its decoder and
joint. Each decode is timed once (the loop's wall time).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import numpy as np

from rnnt_tui.core.components import ENCODER, PREPROCESSOR
from rnnt_tui.core.decode import DecodeResult, greedy_decode
from rnnt_tui.core.errors import CancelledError
from rnnt_tui.core.nemo_decoding import max_symbols, nemo_greedy, tokens_to_pieces, tokens_to_text
from rnnt_tui.core.results import DONE, FAILED, MISMATCH, REFERENCE_ONLY, DecodeComparison, Divergence, StepResult
from rnnt_tui.core.runtimes.base import Progress, Runtime
from rnnt_tui.core.textmetrics import first_difference, token_agreement, wer
from rnnt_tui.core.timing import Timings

if TYPE_CHECKING:
    from rnnt_tui.core.session import Session


def _once(fn: object) -> tuple[object, Timings]:
    start = time.perf_counter_ns()
    out = fn()  # type: ignore[operator]
    ms = (time.perf_counter_ns() - start) / 1e6
    return out, Timings(first_ms=ms, median_ms=ms, p90_ms=ms, runs=1, warmup=0)


def _candidate_encoded(session: Session, candidate: Runtime) -> tuple[np.ndarray, int]:
    features = session._features()
    if PREPROCESSOR in candidate.components:
        features = session.data.get(f"{PREPROCESSOR}.candidate") or candidate.run(
            PREPROCESSOR, {"audio_signal": session.audio.samples[None, :].astype(np.float32),
                           "length": np.array([session.audio.samples.shape[0]], dtype=np.int64)})
    out = candidate.run(ENCODER, {"features": np.asarray(features["features"], dtype=np.float32),
                                  "features_length": np.asarray(features["features_length"], dtype=np.int64)})
    return np.asarray(out["encoded"], dtype=np.float32), int(np.asarray(out["encoded_length"]).reshape(-1)[0])


def decode_step(session: Session, progress: Progress, cancel: threading.Event | None) -> StepResult:
    loaded = session.loaded
    summary = loaded.summary
    encoded, length = session._encoded()
    cap = max_symbols(loaded)

    def run_reference() -> DecodeResult:
        return greedy_decode(session.reference, encoded, length, summary.blank_id, summary.durations, cap, cancel)

    progress("greedy decode on the reference", None)
    ref_dec, ref_t = _once(run_reference)
    assert isinstance(ref_dec, DecodeResult)
    session.data["tokens.reference"] = ref_dec
    nemo_tokens, nemo_text = nemo_greedy(loaded, encoded, length)
    ref_text = tokens_to_text(loaded, ref_dec.tokens)
    result = StepResult(name="decode", status=DONE, timings={"reference": ref_t})
    comparison = DecodeComparison(reference_text=ref_text, nemo_text=nemo_text, reference_tokens=ref_dec.tokens,
                                  nemo_tokens=nemo_tokens, reference_pieces=tokens_to_pieces(loaded, ref_dec.tokens),
                                  matches_nemo=nemo_tokens == ref_dec.tokens)
    if not comparison.matches_nemo:
        result.status = MISMATCH
        result.notes.append("the component-driven reference decode differs from NeMo's own decoding")
    candidate = session.candidate
    if candidate is None or not session.comparing:
        if candidate is not None:
            result.status = REFERENCE_ONLY
            result.notes.append(f"candidate not run: {session.candidate_unavailable}")
        session.decode_comparison = comparison
        return result
    try:
        progress(f"greedy decode on {candidate.label}", None)
        cand_encoded, cand_length = _candidate_encoded(session, candidate)
        cand_dec, cand_t = _once(lambda: greedy_decode(candidate, cand_encoded, cand_length, summary.blank_id,
                                                       summary.durations, cap, cancel))
    except CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - the candidate failing is the finding
        result.status, result.error = FAILED, f"{candidate.label}: {type(exc).__name__}: {exc}"
        session.decode_comparison = comparison
        return result
    assert isinstance(cand_dec, DecodeResult)
    result.timings["candidate"] = cand_t
    cand_text = tokens_to_text(loaded, cand_dec.tokens)
    index = first_difference(ref_dec.tokens, cand_dec.tokens)
    divergence = None
    if index is not None:
        def at(seq: list[int], i: int) -> int | None:
            return seq[i] if i < len(seq) else None

        ref_tok, cand_tok = at(ref_dec.tokens, index), at(cand_dec.tokens, index)
        divergence = Divergence(
            index=index, frame_reference=at(ref_dec.frames, index), frame_candidate=at(cand_dec.frames, index),
            token_reference=ref_tok, token_candidate=cand_tok,
            piece_reference=tokens_to_pieces(loaded, [ref_tok])[0] if ref_tok is not None else None,
            piece_candidate=tokens_to_pieces(loaded, [cand_tok])[0] if cand_tok is not None else None)
    comparison = DecodeComparison(
        reference_text=ref_text, nemo_text=nemo_text, reference_tokens=ref_dec.tokens, nemo_tokens=nemo_tokens,
        reference_pieces=comparison.reference_pieces, candidate_text=cand_text, candidate_tokens=cand_dec.tokens,
        candidate_pieces=tokens_to_pieces(loaded, cand_dec.tokens),
        token_agreement=token_agreement(ref_dec.tokens, cand_dec.tokens), wer=wer(ref_text, cand_text),
        first_divergence=divergence, matches_nemo=comparison.matches_nemo,
        candidate_matches_nemo=nemo_tokens == cand_dec.tokens)
    if divergence is not None:
        result.status = MISMATCH
        result.notes.append(f"transcripts diverge at token {divergence.index}")
    session.decode_comparison = comparison
    return result
