"""The tests' own edit distance, independent of jiwer / kaldialign, to check the corpus figures against."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def levenshtein(a: Sequence[Any], b: Sequence[Any]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]
