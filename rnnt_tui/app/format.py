"""How numbers, shapes and states look on screen: one place, so every table and panel agrees.

Formatting only: no value is computed here that the core did not return.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.text import Text

from rnnt_tui.core.results import DONE, FAILED, MISMATCH, PENDING, PREPARING, REFERENCE_ONLY, RUNNING

DASH = "–"

#: step state -> (symbol, words, style)
STATES: dict[str, tuple[str, str, str]] = {
    PENDING: ("·", "pending", "dim"),
    PREPARING: ("◌", "preparing", "yellow"),
    RUNNING: ("▶", "running", "bold yellow"),
    DONE: ("✓", "within tol", "bold green"),
    MISMATCH: ("✗", "mismatch", "bold red"),
    FAILED: ("!", "failed", "bold white on red"),
    REFERENCE_ONLY: ("◐", "ref only", "cyan"),
    "cancelled": ("■", "cancelled", "magenta"),
}


def num(value: Any, digits: int = 3) -> str:
    """A float in 3 significant digits (scientific when small), ints as is, None as a dash."""
    if value is None:
        return DASH
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
        return "∞" if value > 0 else "-∞"
    if value == 0:
        return "0"
    if abs(value) < 1e-3 or abs(value) >= 1e5:
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def ms(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{value:.3f}" if value < 1 else f"{value:.2f}" if value < 100 else f"{value:.0f}"


def shape(dims: Sequence[int] | None) -> str:
    return DASH if dims is None else "[" + ", ".join(str(d) for d in dims) + "]"


def flag(value: Any) -> str:
    return "None" if value is None else str(value)


#: the decode step compares tokens, not tensors: its words differ
DECODE_WORDS = {DONE: "tokens agree", MISMATCH: "tokens differ"}


def state_text(status: str, extra: str = "", step: str = "") -> Text:
    symbol, words, style = STATES.get(status, ("?", status, ""))
    if step == "decode":
        words = DECODE_WORDS.get(status, words)
    return Text(f"{symbol} {words}{extra}", style=style)


def passfail(ok: bool | None) -> Text:
    if ok is None:
        return Text(DASH, style="dim")
    return Text("pass", style="bold green") if ok else Text("FAIL", style="bold white on red")


def values(sample: Sequence[float] | None, count: int = 4) -> str:
    """The first few values of a tensor, as the core sampled them."""
    if not sample:
        return DASH
    shown = ", ".join(num(v, 4) for v in list(sample)[:count])
    return f"{shown}, …" if len(sample) > count else shown
