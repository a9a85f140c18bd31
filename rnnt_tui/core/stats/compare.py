"""Comparing one component's outputs between two runtimes: shapes first, then statistics per output.

A shape mismatch is a finding (its own row, no statistics), not a crash; lengths must match exactly; a dtype
difference (float16 vs float32) is noted on the row and the statistics upcast.
"""

from __future__ import annotations

import numpy as np

from rnnt_tui.core.components import LENGTH_OUTPUTS, TensorInfo
from rnnt_tui.core.stats.diff import diff_stats
from rnnt_tui.core.stats.results import OutputComparison
from rnnt_tui.core.tolerances import Tolerance

SAMPLE_VALUES = 6


def compare_outputs(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], names: tuple[str, ...],
                    tolerance: Tolerance, logits: bool = False, topk: int = 5) -> list[OutputComparison]:
    rows = []
    for name in names:
        if name not in reference:
            continue
        ref = reference[name]
        ref_info = TensorInfo.of(name, ref)
        exact = name in LENGTH_OUTPUTS
        atol, rtol = (0.0, 0.0) if exact else (tolerance.atol, tolerance.rtol)
        if name not in candidate:
            rows.append(OutputComparison(name, ref_info, None, None, atol, rtol,
                                         note="not exposed by the candidate runtime"))
            continue
        cand = candidate[name]
        cand_info = TensorInfo.of(name, cand)
        notes = []
        if ref_info.dtype != cand_info.dtype:
            notes.append(f"dtype differs: {cand_info.dtype} vs {ref_info.dtype} (upcast for statistics)")
        if ref.shape != cand.shape:
            notes.append(f"shape mismatch: {list(cand.shape)} vs reference {list(ref.shape)}")
            rows.append(OutputComparison(name, ref_info, cand_info, None, atol, rtol, note="; ".join(notes)))
            continue
        if exact:
            notes.append("lengths must match exactly")
        stats = diff_stats(ref, cand, atol, rtol, logits=logits, topk=topk)
        rows.append(OutputComparison(name, ref_info, cand_info, stats, atol, rtol, note="; ".join(notes)))
    return rows


def samples(arrays: dict[str, np.ndarray]) -> dict[str, list[float]]:
    """The first few values of each array, for the detail view."""
    return {name: [float(v) for v in np.asarray(a).reshape(-1)[:SAMPLE_VALUES]] for name, a in arrays.items()}


def status_of(rows: list[OutputComparison]) -> bool:
    """True when every compared output is within tolerance (outputs the candidate lacks don't count)."""
    return all(row.ok is not False for row in rows)
