"""How numbers, shapes and states look on screen: one place, so every table and panel agrees.

Formatting only: no value is computed here that the core did not return.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text

from rnnt_tui import formatting
from rnnt_tui.core.names import Status

DASH = "–"

#: step state -> (symbol, words, style)
STATES: dict[str, tuple[str, str, str]] = {
    Status.PENDING: ("·", "pending", "dim"),
    Status.PREPARING: ("◌", "preparing", "yellow"),
    Status.RUNNING: ("▶", "running", "bold yellow"),
    Status.DONE: ("✓", "within tol", "bold green"),
    Status.MISMATCH: ("✗", "mismatch", "bold red"),
    Status.FAILED: ("!", "failed", "bold white on red"),
    Status.REFERENCE_ONLY: ("◐", "ref only", "cyan"),
    Status.UNAVAILABLE: ("○", "unavailable", "yellow"),
    Status.CANCELLED: ("■", "cancelled", "magenta"),
}


def num(value: Any, digits: int = 3) -> str:
    return formatting.num(value, digits, DASH)


def ms(value: float | None) -> str:
    return formatting.ms(value, DASH)


def shape(dims: Sequence[int] | None) -> str:
    return formatting.shape(dims, DASH)


#: the decode step compares tokens, not tensors: its words differ
DECODE_WORDS: dict[str, str] = {Status.DONE: "tokens agree", Status.MISMATCH: "tokens differ"}


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
