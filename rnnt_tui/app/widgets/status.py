"""The status line: what the background is doing now (restoring, exporting, running a step) and its progress.

Fed by `Progress` messages (the core's progress callbacks, forwarded by the workers); the bar hides when idle.
The text's size is the stylesheet's (1fr x 1 line), so a new text repaints the line without re-laying the screen out.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import ProgressBar, Static


class StatusLine(Horizontal):
    """A message and a progress bar (indeterminate when the fraction is unknown)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.busy = False

    def compose(self) -> ComposeResult:
        yield Static(id="status-text")
        yield ProgressBar(total=None, show_eta=False, show_percentage=True, id="status-bar")

    def on_mount(self) -> None:
        self.idle("Starting…")

    def working(self, text: str, fraction: float | None = None) -> None:
        self.busy = True
        self.query_one("#status-text", Static).update(Text(text, style="bold"), layout=False)
        bar = self.query_one("#status-bar", ProgressBar)
        bar.display = True
        if fraction is None:
            bar.update(total=None)
        else:
            bar.update(total=100, progress=max(0.0, min(1.0, fraction)) * 100)

    def idle(self, text: str, style: str = "") -> None:
        self.busy = False
        self.query_one("#status-text", Static).update(Text(text, style=style), layout=False)
        self.query_one("#status-bar", ProgressBar).display = False

    @property
    def text(self) -> str:
        return str(self.query_one("#status-text", Static).render())
