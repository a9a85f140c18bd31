"""Plain-text number formats, one place for the headless tables, the reports and the app (no Rich, no Textual).

Formatting only: nothing here computes a value the core did not return.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

DASH = "-"


def num(value: Any, digits: int = 3, dash: str = DASH) -> str:
    """A float in `digits` significant digits (scientific when very small or large), ints and text as they are,
    booleans as yes/no, None as a dash."""
    if value is None:
        return dash
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0"
    if abs(value) < 1e-3 or abs(value) >= 1e5:
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def file_size(n: int | None, dash: str = DASH) -> str:
    """Bytes in decimal units (1 MB = 10^6 bytes, as file managers and `ls -h --si` show): the one size format of
    the tables, the reports and the app."""
    if n is None:
        return dash
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def ms(value: float | None, dash: str = DASH) -> str:
    """Milliseconds with as many decimals as the size deserves."""
    if value is None:
        return dash
    return f"{value:.3f}" if value < 1 else f"{value:.2f}" if value < 100 else f"{value:.0f}"


def shape(dims: Sequence[int] | None, dash: str = DASH) -> str:
    return dash if dims is None else "[" + ", ".join(str(d) for d in dims) + "]"


def cosine(value: float) -> str:
    """Cosine similarity near 1 as `1 - x`, so 0.9999999 and 0.9999 are told apart at a glance."""
    if math.isnan(value):
        return "NaN"
    gap = 1.0 - value
    if gap == 0:
        return "1"
    return f"1 - {gap:.1e}" if 0 < gap < 1e-3 else f"{value:.5f}"
