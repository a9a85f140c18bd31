"""The keys that scroll a modal screen's report (page, end, home, and optionally line by line), with binding ids
under the screen's own prefix: one definition for every screen that scrolls."""

from __future__ import annotations

from textual.binding import Binding


def scroll_bindings(prefix: str, lines: bool = False) -> list[Binding]:
    """Hidden scroll bindings with ids `<prefix>.page-down` …; `lines` adds up / down by one line."""
    keys = [("pagedown", "page_down", "Page down", "page-down"), ("pageup", "page_up", "Page up", "page-up"),
            ("end", "scroll_end", "End", "end"), ("home", "scroll_home", "Home", "home")]
    if lines:
        keys += [("down", "scroll_down", "Down", "down"), ("up", "scroll_up", "Up", "up")]
    return [Binding(key, f"scroll('{action}')", label, show=False, id=f"{prefix}.{name}")
            for key, action, label, name in keys]
