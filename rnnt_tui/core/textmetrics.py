"""Comparing two transcripts: token agreement, WER, and where the token sequences first diverge."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def edit_distance(a: Sequence[object], b: Sequence[object]) -> int:
    """Levenshtein distance between two sequences (substitution, insertion, deletion each cost 1)."""
    if not a:
        return len(b)
    if not b:
        return len(a)
    prev = np.arange(len(b) + 1)
    for i, x in enumerate(a, start=1):
        cur = np.empty_like(prev)
        cur[0] = i
        for j, y in enumerate(b, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return int(prev[-1])


def token_agreement(reference: Sequence[int], candidate: Sequence[int]) -> float:
    """1 - edit distance / the longer length: 1.0 for identical sequences (and for two empty ones)."""
    longest = max(len(reference), len(candidate))
    return 1.0 if longest == 0 else 1.0 - edit_distance(reference, candidate) / longest


def wer(reference_text: str, candidate_text: str) -> float:
    """Word error rate of the candidate against the reference transcript."""
    ref, hyp = reference_text.split(), candidate_text.split()
    if not ref:
        return 0.0 if not hyp else 1.0
    return edit_distance(ref, hyp) / len(ref)


def first_difference(reference: Sequence[int], candidate: Sequence[int]) -> int | None:
    """Index of the first position where the sequences differ (or one ends), None if equal."""
    for i, (x, y) in enumerate(zip(reference, candidate, strict=False)):
        if x != y:
            return i
    return None if len(reference) == len(candidate) else min(len(reference), len(candidate))
