"""The decoder step compared along the reference decode path.

The prediction net is fed blank (start) then each token the reference decoded; each runtime carries its own
LSTM state from step to step, as a deployment does, so state drift over chained steps (an fp16 pitfall) shows.
Outputs are stacked over the U steps: decoder_output [1,H,U], h and c [U,L,1,H].
"""

from __future__ import annotations

import threading

import numpy as np

from rnnt_tui.core.components import DECODER, OUTPUTS, describe
from rnnt_tui.core.errors import CancelledError
from rnnt_tui.core.names import CANDIDATE, REFERENCE, Status
from rnnt_tui.core.pipeline.context import StepContext, error_text
from rnnt_tui.core.runtimes.base import Runtime
from rnnt_tui.core.stats.compare import compare_outputs, samples, status_of
from rnnt_tui.core.stats.results import StepResult
from rnnt_tui.core.timing import measure


def _chain(runtime: Runtime, targets: list[int], h0: np.ndarray, c0: np.ndarray,
           cancel: threading.Event | None) -> dict[str, np.ndarray]:
    h, c = h0, c0
    outs: list[np.ndarray] = []
    hs: list[np.ndarray] = []
    cs: list[np.ndarray] = []
    for token in targets:
        if cancel is not None and cancel.is_set():
            raise CancelledError("cancelled while stepping the decoder")
        out = runtime.run(DECODER, {"targets": np.array([[token]], dtype=np.int64), "h": h, "c": c})
        h = np.asarray(out["h"], dtype=np.float32)
        c = np.asarray(out["c"], dtype=np.float32)
        hs.append(np.asarray(out["h"]))
        cs.append(np.asarray(out["c"]))
        if "decoder_output" in out:
            outs.append(np.asarray(out["decoder_output"]))
    stacked = {"h": np.stack(hs), "c": np.stack(cs)}
    if outs:
        stacked["decoder_output"] = np.concatenate(outs, axis=2)
    return stacked


def decoder_step(ctx: StepContext) -> StepResult:
    """Step the decoder along the reference path on both runtimes; keeps the reference chain upstream."""
    assert ctx.upstream.decode is not None, "the reference decode runs first"
    blank = ctx.facts.summary.blank_id
    targets = [blank, *ctx.upstream.decode.tokens]
    reference = ctx.reference
    state = reference.initial_state()
    h0 = np.array(state[0], dtype=np.float32)
    c0 = np.array(state[1], dtype=np.float32)
    step_inputs: dict[str, np.ndarray] = {"targets": np.array([[targets[0]]], dtype=np.int64), "h": h0, "c": c0}
    settings = ctx.settings

    ref = _chain(reference, targets, h0, c0, ctx.cancel)
    _, ref_t = measure(reference.bind(DECODER, step_inputs), runs=settings.runs, warmup=settings.warmup)
    ctx.upstream.decoder = ref
    ctx.upstream.targets = np.array([targets], dtype=np.int64)
    result = StepResult(name=DECODER, status=Status.DONE, inputs=describe(step_inputs),
                        reference_outputs=describe(ref), timings=ctx.reference_timings(DECODER, ref_t),
                        samples={REFERENCE: samples(ref)},
                        notes=[f"{len(targets)} chained steps along the reference decode path "
                               f"(blank, then {len(targets) - 1} tokens); timings are per step"])
    if ctx.candidate_skip(result, DECODER):
        return result
    candidate = ctx.candidate
    assert candidate is not None
    try:
        cand = _chain(candidate, targets, h0, c0, ctx.cancel)
        _, cand_t = measure(candidate.bind(DECODER, step_inputs), runs=settings.runs, warmup=settings.warmup)
    except CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - the candidate failing is the finding
        result.status, result.error = Status.FAILED, f"{candidate.label}: {error_text(exc)}"
        return result
    ctx.upstream.candidate[DECODER] = cand
    result.notes.extend(ctx.candidate_notes(DECODER))
    result.candidate_outputs = describe(cand)
    result.timings[CANDIDATE] = ctx.with_prepare(CANDIDATE, DECODER, cand_t)
    result.samples[CANDIDATE] = samples(cand)
    result.comparisons = compare_outputs(ref, cand, OUTPUTS[DECODER], settings.tolerances[DECODER])
    result.status = Status.DONE if status_of(result.comparisons) else Status.MISMATCH
    return result
