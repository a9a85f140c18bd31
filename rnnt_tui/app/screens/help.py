"""The help screen (`?`): every key binding with what it does, the step states, and the fuse modes.

Built from the app's own `BINDINGS`, so it cannot drift from what the keys do.
"""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from rnnt_tui.app.format import STATES

ABOUT = (
    "rnnt-tui checks that a second runtime (ONNX Runtime, or Core ML on a Mac) computes what NeMo computes, "
    "component by component: preprocessor, encoder, decoder, joint, then greedy decoding end to end. The "
    "reference is the NeMo model on PyTorch; each step feeds both runtimes the same inputs."
)
FUSE = (
    "Joint fuse mode: checkpoints are often saved with fuse_loss_wer on, which makes NeMo's joint compute "
    "loss/WER instead of logits. Validation mode (fuse off, log_softmax off) makes the reference joint return "
    "raw logits, the quantity exported joints emit. Press f to switch; the joint reruns."
)


class HelpScreen(ModalScreen[None]):
    """Key bindings and a few words on the pipeline and the fuse mode."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", "Close", id="help.close", tooltip="Close the help"),
    ]

    def __init__(self, bindings: list[Binding]) -> None:
        super().__init__()
        self.app_bindings = bindings

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Label("rnnt-tui · help   (Esc closes)", id="help-title")
            with VerticalScroll():
                yield Static(Text(ABOUT))
                yield Static(self._keys())
                yield Static(self._states())
                yield Static(Text(FUSE))
                yield Static(Text("Ctrl+P opens the command palette: every action is there too.", style="bold"))

    def _keys(self) -> Table:
        table = Table(title="Keys", title_justify="left", show_edge=False, expand=True)
        table.add_column("key", style="bold cyan", no_wrap=True)
        table.add_column("action", style="bold", no_wrap=True)
        table.add_column("what it does")
        for b in self.app_bindings:
            key = b.key_display or b.key
            table.add_row(key, b.description, b.tooltip)
        return table

    def _states(self) -> Table:
        table = Table(title="Step states", title_justify="left", show_edge=False, show_header=False)
        table.add_column()
        table.add_column()
        for status, (symbol, words, style) in STATES.items():
            table.add_row(Text(f"{symbol} {words}", style=style), status)
        return table
