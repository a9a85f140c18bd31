"""A modal for unexpected errors: the message up front, the details (traceback) folded away, never a crash.

Expected problems (a bad file, a runtime that cannot run here) are notifications instead; this is for the rest.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Collapsible, Label, Static


class ErrorScreen(ModalScreen[None]):
    """Title, one-line message, collapsible details."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close", id="error.close", tooltip="Close this message"),
    ]

    def __init__(self, title: str, message: str, details: str = "") -> None:
        super().__init__()
        self.title_text, self.message, self.details = title, message, details

    def compose(self) -> ComposeResult:
        with Vertical(id="error-box"):
            yield Label(self.title_text, id="error-title")
            yield Static(self.message, id="error-message", markup=False)
            if self.details:
                with Collapsible(title="Details", collapsed=True), VerticalScroll(id="error-details"):
                    yield Static(self.details, markup=False)
            yield Button("Close", variant="primary", id="error-close")

    @on(Button.Pressed, "#error-close")
    def _close(self) -> None:
        self.dismiss(None)
