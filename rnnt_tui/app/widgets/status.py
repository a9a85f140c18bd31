"""The status line: what the background is doing now (restoring, exporting, running a step) and its progress.

Fed by `Progress` messages (the core's progress callbacks, forwarded by the workers). One line, one widget: the
text, and while a job runs a bar (a pulse while the fraction is unknown) and its percentage, drawn as Rich
renderables inside the line. Its size is the stylesheet's (1fr x 1 line) whatever it shows, so a new text, a job
starting or ending and each frame of the pulse repaint the line without laying the screen out again (a bar widget
shown and hidden with each job did, twice a job), and an idle text has the whole line.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from rich.console import RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from textual.timer import Timer
from textual.widgets import Static

BAR_WIDTH = 24
PULSE_FPS = 15


class StatusLine(Static):
    """A message and, while busy, a progress bar (a pulse when the fraction is unknown)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"status--bar", "status--track"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.busy = False
        self._text = Text("Starting…")
        self._fraction: float | None = None
        self._pulse: Timer | None = None

    def on_mount(self) -> None:
        self.idle("Starting…")

    def working(self, text: str, fraction: float | None = None) -> None:
        self.busy, self._text = True, Text(text, style="bold")
        self._fraction = None if fraction is None else max(0.0, min(1.0, fraction))
        if self._fraction is None and self._pulse is None:
            self._pulse = self.set_interval(1 / PULSE_FPS, self._draw)
        elif self._fraction is not None:
            self._stop_pulse()
        self._draw()

    def idle(self, text: str, style: str = "") -> None:
        self.busy, self._text, self._fraction = False, Text(text, style=style), None
        self._stop_pulse()
        self._draw()

    @property
    def text(self) -> str:
        return self._text.plain

    def _stop_pulse(self) -> None:
        if self._pulse is not None:
            self._pulse.stop()
            self._pulse = None

    def _draw(self) -> None:
        self.update(self._line(), layout=False)

    def _line(self) -> RenderableType:
        text = self._text.copy()
        text.no_wrap, text.overflow = True, "ellipsis"
        if not self.busy:
            return text
        bar, track = self.get_component_rich_style("status--bar"), self.get_component_rich_style("status--track")
        fraction = self._fraction
        drawn = ProgressBar(total=None if fraction is None else 100, completed=(fraction or 0.0) * 100,
                            width=BAR_WIDTH, pulse=fraction is None, animation_time=time.monotonic(), style=track,
                            complete_style=bar, finished_style=bar, pulse_style=bar)
        grid = Table.grid(expand=True, padding=(0, 1))
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(width=BAR_WIDTH)
        grid.add_column(width=4, justify="right")
        grid.add_row(text, drawn, "" if fraction is None else f"{fraction * 100:.0f}%")
        return grid
