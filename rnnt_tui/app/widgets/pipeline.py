"""The pipeline strip: preprocessor → encoder → decoder → joint → decode, each step's state at a glance.

States are the core's (`core.results`: pending, preparing, running, done, mismatch, failed, reference-only)
plus "cancelled". One step is selected; the detail view shows it. Clicking a step selects it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Static

from rnnt_tui.app.format import STATES, state_text
from rnnt_tui.core.components import STEPS
from rnnt_tui.core.names import Status


class StepBox(Static):
    """One step: its name and its state."""

    def __init__(self, name: str) -> None:
        super().__init__(id=f"step-{name}", classes="step")
        self.step = name
        self.status: str = Status.PENDING
        self.extra = ""
        self._shown_as: tuple[str, str, bool] | None = None  # what is on screen: (status, extra, narrow)

    def on_mount(self) -> None:
        self.border_title = self.step
        self.tooltip = f"{self.step}: click or press [ / ] to select"
        self.show(Status.PENDING)

    def show(self, status: str, extra: str = "") -> None:
        """Draw `status`; nothing when it is already on screen (the strip is redrawn on every event). The box's
        size comes from the stylesheet (width 1fr, height 3 or 1), never from its text: no re-layout of the screen
        (`layout=False`), only the box is repainted."""
        self.status, self.extra = status, extra
        drawn = (status, extra, self.app.has_class("-narrow"))
        if drawn == self._shown_as:
            return
        self._shown_as = drawn
        self.update_classes({f"-{known}": known == status for known in STATES})  # one restyle, not one per class
        text = state_text(status, extra, self.step)
        if self.app.has_class("-narrow"):  # no border, so the name goes in the line
            symbol, _, style = STATES.get(status, ("?", status, ""))
            text = Text.assemble((self.step, "bold"), " ", (symbol + extra, style))
        self.update(text, layout=False)

    def on_click(self, event: events.Click) -> None:
        self.post_message(PipelineStrip.Selected(self.step))


class PipelineStrip(Horizontal):
    """The five steps in order, one selected."""

    @dataclass
    class Selected(Message):
        step: str

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.selected = STEPS[0]

    def compose(self) -> ComposeResult:
        for i, name in enumerate(STEPS):
            if i:
                yield Static(Text("→", style="dim"), classes="arrow")
            yield StepBox(name)

    def on_mount(self) -> None:
        self.select(self.selected)

    def box(self, name: str) -> StepBox:
        return self.query_one(f"#step-{name}", StepBox)

    def show(self, name: str, status: str, extra: str = "") -> None:
        self.box(name).show(status, extra)

    def status(self, name: str) -> str:
        return self.box(name).status

    def redraw(self) -> None:
        for box in self.query(StepBox):
            box.show(box.status, box.extra)

    def reset(self, status: str = Status.PENDING, extra: str = "") -> None:
        for name in STEPS:
            self.show(name, status, extra)

    def select(self, name: str) -> None:
        self.selected = name
        for box in self.query(StepBox):
            box.set_class(box.step == name, "-selected")

    def move(self, delta: int) -> str:
        index = (STEPS.index(self.selected) + delta) % len(STEPS)
        self.select(STEPS[index])
        return self.selected
