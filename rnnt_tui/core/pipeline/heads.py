"""What a candidate's extra heads add to the steps: joint-decision heads and a fused mel+encoder.

Packages laid out like the common Parakeet export carry a "joint decision" head (token id, probability, TDT
duration bin, sometimes top-k) and a fused audio → encoder program. They are compared with what the reference
decides and encodes on the same inputs: decisions against the decision taken from the reference logits of the same
cells (`core.decision`), the fused encoder's output against the reference preprocessor → encoder. A decision head
is compared over the whole T x U grid up to `MAX_DECISION_CELLS` cells (beyond that, over the first frames, and
the note says so): a single-step head is one call per cell. Agreement is reported, not judged: in fp16 a near-tie
of two logits flips a cell's decision without any error; whether that changes the transcript is the decode step's
verdict, where the candidate decodes through its head.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnt_tui.core.components import ENCODER, JOINT, OUTPUTS
from rnnt_tui.core.coreml.matching import JOINT_DECISION, JOINT_DECISION_STEP, MEL_ENCODER
from rnnt_tui.core.pipeline.context import Arrays, StepContext, audio_inputs, error_text
from rnnt_tui.core.pipeline.grid import chunk_frames, grid_chunks
from rnnt_tui.core.stats.compare import compare_outputs
from rnnt_tui.core.stats.results import OutputComparison

DECISION_HEADS = (JOINT_DECISION, JOINT_DECISION_STEP)
MAX_DECISION_CELLS = 20_000


def heads(ctx: StepContext) -> tuple[str, ...]:
    if not ctx.comparing or ctx.candidate is None:
        return ()
    return ctx.candidate.heads


def fused_encoder_rows(ctx: StepContext, reference: Arrays) -> tuple[list[OutputComparison], list[str]]:
    """The fused mel+encoder on the clip's audio against the reference preprocessor → encoder output."""
    if MEL_ENCODER not in heads(ctx):
        return [], []
    assert ctx.candidate is not None
    try:
        fused = ctx.candidate.run(MEL_ENCODER, audio_inputs(ctx))
    except Exception as exc:  # noqa: BLE001 - the head failing is the finding
        return [], [f"fused mel+encoder ({MEL_ENCODER}) failed: {error_text(exc)}"]
    ctx.upstream.candidate[MEL_ENCODER] = fused
    rows = compare_outputs(reference, fused, OUTPUTS[ENCODER], ctx.settings.tolerances[ENCODER],
                           topk=ctx.settings.topk)
    renamed = [OutputComparison(f"{MEL_ENCODER}.{r.name}", r.reference, r.candidate, r.stats, r.atol, r.rtol,
                                (r.note + "; " if r.note else "") + "fused audio → encoder vs the reference "
                                "preprocessor → encoder") for r in rows]
    return renamed, []


def decision_rows(ctx: StepContext, encoded: np.ndarray, g: np.ndarray, targets: np.ndarray
                  ) -> tuple[dict[str, Any], list[str]]:
    """Each decision head against the decision taken from the reference logits, chunk by chunk over the grid."""
    from rnnt_tui.core.decision import Decisions, compare_decisions

    found = [h for h in heads(ctx) if h in DECISION_HEADS]
    if not found:
        return {}, []
    assert ctx.candidate is not None
    frames, steps = encoded.shape[2], g.shape[2]
    limit = max(1, min(frames, MAX_DECISION_CELLS // max(steps, 1)))
    chunk = min(chunk_frames(ctx.settings, frames), limit)
    durations = ctx.facts.summary.durations
    out: dict[str, Any] = {}
    notes: list[str] = []
    for head in found:
        merged = None
        try:
            for start, stop in grid_chunks(limit, chunk, cancel=ctx.cancel, what="the decision heads"):
                inputs = {"encoded": encoded[:, :, start:stop], "decoder_output": g, "targets": targets}
                ref_logits = np.asarray(ctx.reference.run(JOINT, inputs)["logits"])[0]
                decided = ctx.candidate.run(head, {"encoded": inputs["encoded"], "decoder_output": g})
                part = compare_decisions(ref_logits, Decisions.from_outputs(decided, ref_logits.shape[:-1]),
                                         durations, origin=(start, 0))
                merged = part if merged is None else merged.merge(part)
        except Exception as exc:  # noqa: BLE001 - the head failing is the finding
            notes.append(f"decision head {head} failed: {error_text(exc)}")
            continue
        assert merged is not None
        out[head] = merged.to_json()
        scope = "the whole grid" if limit == frames else f"the first {limit} of {frames} frames (cell cap)"
        notes.append(f"decision head {head} over {scope}: tokens agree on {merged.token_agreement:.1%} of "
                     f"{merged.cells} cells" + ("" if merged.duration_agreement is None else
                                                f", durations on {merged.duration_agreement:.1%}"))
    return out, notes
