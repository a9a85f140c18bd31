"""The window settings `w` asks for before a fixed-window comparison: window, overlap and mel left context.

Three number fields filled with the last values run (`choices.WindowChoices`); Enter in any of them checks them by
the CLI's rules (`core.stream.config.windows_problem`) and either returns them or says what is wrong and stays
open; Escape returns nothing. It judges only the numbers: the engine says what else cannot run.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from rnnt_tui.app.choices import WindowChoices
from rnnt_tui.core.stream.config import MEL_LEFT_S_RANGE, WINDOW_S_RANGE

#: (field id, what it is, its range, the WindowChoices attribute)
FIELDS = (("windows-window", "window", f"{WINDOW_S_RANGE[0]:g}-{WINDOW_S_RANGE[1]:g} s", "window_s"),
          ("windows-overlap", "overlap", "0 s, < window", "overlap_s"),
          ("windows-mel-left", "mel left context", f"{MEL_LEFT_S_RANGE[0]:g}-{MEL_LEFT_S_RANGE[1]:g} s",
           "mel_left_s"))


class WindowsScreen(ModalScreen[WindowChoices | None]):
    """Window, overlap and mel left context, in seconds."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="windows.cancel", tooltip="Close without running anything"),
    ]

    def __init__(self, current: WindowChoices, candidate: str) -> None:
        super().__init__()
        self.current = current
        self.candidate = candidate

    def compose(self) -> ComposeResult:
        with Vertical(id="windows-box"):
            yield Label(f"Compare in fixed windows: NeMo / PyTorch vs {self.candidate}", id="windows-title")
            yield Static("The clip is cut into windows; each keeps its tokens from the middle of its left overlap to "
                         "the middle of its right one, and the merged transcripts are compared with the "
                         "full-context one at every seam. Enter runs, Esc cancels.", id="windows-about")
            with Grid(id="windows-fields"):
                for field_id, name, bounds, attribute in FIELDS:
                    yield Label(f"{name} ({bounds})")
                    yield Input(f"{getattr(self.current, attribute):g}", type="number", id=field_id)
            yield Label("", id="windows-problem")

    def on_mount(self) -> None:
        self.query_one(f"#{FIELDS[0][0]}", Input).focus()

    @on(Input.Submitted)
    def _run(self) -> None:
        values: dict[str, float] = {}
        for field_id, name, _, attribute in FIELDS:
            text = self.query_one(f"#{field_id}", Input).value.strip()
            try:
                values[attribute] = float(text)
            except ValueError:
                self._say(f"the {name}: give a number of seconds")
                return
        choices = WindowChoices(**values)
        problem = choices.problem()
        if problem is not None:
            self._say(problem)
            return
        self.dismiss(choices)

    def _say(self, problem: str) -> None:
        self.query_one("#windows-problem", Label).update(problem)

    def action_cancel(self) -> None:
        self.dismiss(None)
