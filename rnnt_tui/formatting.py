"""Plain-text number formats shared by the headless tables and the app (no Rich, no Textual)."""

from __future__ import annotations

import math


def cosine(value: float) -> str:
    """Cosine similarity near 1 as `1 - x`, so 0.9999999 and 0.9999 are told apart at a glance."""
    if math.isnan(value):
        return "NaN"
    gap = 1.0 - value
    if gap == 0:
        return "1"
    return f"1 - {gap:.1e}" if 0 < gap < 1e-3 else f"{value:.5f}"
