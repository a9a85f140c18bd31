"""The decoder step compared along the reference decode path.

The prediction net is fed blank (start) then each token the reference decoded; each runtime carries its own
LSTM state from step to step, as a deployment does, so state drift over chained steps (an fp16 pitfall) shows.
Outputs are stacked over the U steps: decoder_output [1,H,U], h and c [U,L,1,H].
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from rnnt_tui.core.compare_ops import compare_outputs, samples, status_of
from rnnt_tui.core.components import DECODER, OUTPUTS, describe
from rnnt_tui.core.errors import CancelledError
from rnnt_tui.core.results import DONE, FAILED, MISMATCH, REFERENCE_ONLY, StepResult
from rnnt_tui.core.runtimes.base import Runtime
from rnnt_tui.core.timing import measure

if TYPE_CHECKING:
    from rnnt_tui.core.session import Session


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


def compare_decoder_chain(session: Session, targets: list[int],
                          cancel: threading.Event | None) -> tuple[StepResult, np.ndarray]:
    """Run the chain on both runtimes; return the step result and the reference decoder outputs [1,H,U]."""
    reference = session.reference
    state = reference.initial_state()
    h0 = np.array(state[0], dtype=np.float32)
    c0 = np.array(state[1], dtype=np.float32)
    step_inputs: dict[str, np.ndarray] = {"targets": np.array([[targets[0]]], dtype=np.int64), "h": h0, "c": c0}
    settings = session.settings

    ref = _chain(reference, targets, h0, c0, cancel)
    bound = reference.bind(DECODER, step_inputs)
    _, ref_t = measure(bound, runs=settings.runs, warmup=settings.warmup)
    result = StepResult(name=DECODER, status=DONE, inputs=describe(step_inputs), reference_outputs=describe(ref),
                        timings={"reference": session._with_prepare("reference", DECODER, ref_t)},
                        samples={"reference": samples(ref)},
                        notes=[f"{len(targets)} chained steps along the reference decode path "
                               f"(blank, then {len(targets) - 1} tokens); timings are per step"])
    session.data["decoder.reference"] = ref
    candidate = session.candidate
    if candidate is None:
        return result, ref["decoder_output"]
    if not session.comparing:
        result.status = REFERENCE_ONLY
        result.notes.append(f"candidate not run: {session.candidate_unavailable}")
        return result, ref["decoder_output"]
    try:
        cand = _chain(candidate, targets, h0, c0, cancel)
        cand_bound = candidate.bind(DECODER, step_inputs)
        _, cand_t = measure(cand_bound, runs=settings.runs, warmup=settings.warmup)
    except CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - the candidate failing is the finding
        result.status, result.error = FAILED, f"{candidate.label}: {type(exc).__name__}: {exc}"
        return result, ref["decoder_output"]
    session.data["decoder.candidate"] = cand
    result.candidate_outputs = describe(cand)
    result.timings["candidate"] = session._with_prepare("candidate", DECODER, cand_t)
    result.samples["candidate"] = samples(cand)
    result.comparisons = compare_outputs(ref, cand, OUTPUTS[DECODER], settings.tolerances[DECODER])
    result.status = DONE if status_of(result.comparisons) else MISMATCH
    return result, ref["decoder_output"]
