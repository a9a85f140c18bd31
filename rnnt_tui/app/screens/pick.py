"""Picking a file: a checkpoint (.nemo) or a clip (the formats the core reads), typed, chosen from the recent
files, or browsed for in a file dialog (textual-fspicker).

The screen returns a path and judges nothing: the core reads it and says what is wrong with it, and the app
shows that as a notification while the current session stays as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList
from textual.widgets.option_list import Option


@dataclass(frozen=True)
class FileKind:
    """What is being picked: words for the dialog and the suffixes its filter shows."""

    key: str
    title: str
    suffixes: tuple[str, ...]
    filter_name: str


def checkpoint_kind() -> FileKind:
    return FileKind("checkpoints", "Open a checkpoint or a bundle", (".nemo", ".rnntb"),
                    "NeMo checkpoints (.nemo), recorded bundles (.rnntb, or a bundle folder typed in)")


def audio_kind() -> FileKind:
    from rnnt_tui.core.names import AUDIO_SUFFIXES

    return FileKind("audio", "Open a clip", tuple(AUDIO_SUFFIXES), "Audio (" + " ".join(AUDIO_SUFFIXES) + ")")


class PickFileScreen(ModalScreen[Path | None]):
    """A path field, the recent files of this kind, and a Browse… button."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="pick.cancel", tooltip="Close without changing anything"),
        Binding("ctrl+b", "browse", "Browse…", id="pick.browse", tooltip="Open a file dialog"),
    ]

    def __init__(self, kind: FileKind, current: Path | None, recent: list[Path]) -> None:
        super().__init__()
        self.kind = kind
        self.current = current
        self.recent = recent

    def compose(self) -> ComposeResult:
        with Vertical(id="pick-box"):
            yield Label(f"{self.kind.title} · {self.kind.filter_name}", id="pick-title")
            yield Input(str(self.current) if self.current else "", placeholder="path to the file",
                        id="pick-path")
            yield Label("Recent" if self.recent else "No recent files yet", classes="control-label")
            yield OptionList(*[Option(str(p), id=str(i)) for i, p in enumerate(self.recent)], id="pick-recent")
            with Horizontal(id="pick-buttons"):
                yield Button("Open", variant="primary", id="pick-open")
                yield Button("Browse… (ctrl+b)", id="pick-browse")
                yield Button("Cancel", id="pick-cancel")

    def on_mount(self) -> None:
        field = self.query_one("#pick-path", Input)
        field.focus()
        field.cursor_position = len(field.value)

    @on(Input.Submitted, "#pick-path")
    @on(Button.Pressed, "#pick-open")
    def _open(self) -> None:
        text = self.query_one("#pick-path", Input).value.strip()
        if not text:
            self.notify("Type a path, pick a recent file, or browse", severity="warning")
            return
        self.dismiss(Path(text).expanduser())

    @on(OptionList.OptionSelected, "#pick-recent")
    def _recent(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.recent[int(event.option.id or 0)])

    @on(Button.Pressed, "#pick-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#pick-browse")
    def action_browse(self) -> None:
        from textual_fspicker import FileOpen, Filters

        suffixes = self.kind.suffixes
        filters = Filters((self.kind.filter_name, lambda p: p.suffix.lower() in suffixes),
                          ("All files", lambda p: True))
        start = self.current.parent if self.current is not None and self.current.parent.is_dir() else Path.cwd()
        self.app.push_screen(FileOpen(start, title=self.kind.title, filters=filters), self._browsed)

    def _browsed(self, path: Path | None) -> None:
        if path is not None:
            self.dismiss(path)
