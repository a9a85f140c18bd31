"""The joint's fuse mode, the most legible thing on screen: the flags as saved and as used for this run, the
mode switch, one line on what the mode means for the comparison, and what joint(enc, dec) returns now.

The flags come from the checkpoint's config (before the restore) and then from the restored joint (core.fuse);
the explanation is `core.fuse.explain`, the "returns" line is `core.fuse.probe_joint(...).describe()`. The panel
never switches the mode itself: the radio set asks the app (`ModeRequested`), which switches it in the core and
shows the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import RadioButton, RadioSet, Static

from rnnt_tui.app.widgets.in_place import update_in_place
from rnnt_tui.core.fuse import AS_SAVED, VALIDATION, JointMode, explain

FLAGS = ("fuse_loss_wer", "fused_batch_size", "log_softmax")
READING = "Reading the checkpoint…"
MODE_LABELS = {AS_SAVED: "as saved", VALIDATION: "validation"}  # short: the line below explains each


def _flag(value: Any) -> str:
    return "None" if value is None else str(value)


class FusePanel(Vertical):
    """Saved vs used joint flags, the as-saved / validation switch, the explanation and the probe."""

    @dataclass
    class ModeRequested(Message):
        """The user picked a joint mode in the panel."""

        mode: str

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.saved: JointMode | None = None
        self.used: JointMode | None = None
        self.mode = VALIDATION
        self.probe: str | None = None
        self.busy = False
        self.waiting = READING

    def compose(self) -> ComposeResult:
        with Horizontal(id="fuse-top"):
            yield Static(id="fuse-flags")
            with RadioSet(id="fuse-mode"):
                yield RadioButton(MODE_LABELS[AS_SAVED], id="mode-as-saved")
                yield RadioButton(MODE_LABELS[VALIDATION], id="mode-validation",
                                  value=True)
        yield Static(id="fuse-explain")
        yield Static(id="fuse-returns")

    def on_mount(self) -> None:
        self.border_title = "Joint fuse mode"
        radio = self.query_one("#fuse-mode", RadioSet)
        radio.tooltip = "Press f to switch between the two modes"
        radio.can_focus = False  # f and the mouse switch it; a focus cursor on the other button read as a choice
        self._render_all()

    # -- data in ------------------------------------------------------------------------------------
    def show_saved(self, saved: JointMode) -> None:
        """The checkpoint's flags as read from its config; the used flags are known once it is restored."""
        self.saved, self.used, self.probe = saved, None, None
        self._render_all()

    def show_used(self, mode: str, used: JointMode, probe: str, saved: JointMode | None = None) -> None:
        """The restored joint's flags in `mode` and what it returns."""
        if saved is not None:
            self.saved = saved
        self.mode, self.used, self.probe, self.busy = mode, used, probe, False
        self._render_all()

    def show_nothing(self, text: str) -> None:
        """No checkpoint is open (the one given could not be read)."""
        self.saved, self.used, self.probe, self.waiting = None, None, None, text
        self._render_all()

    def show_pending(self, mode: str) -> None:
        """A switch was asked for; until the core confirms, say so (never show a mode that is not in force)."""
        self.mode, self.busy = mode, True
        self._render_all()

    # -- rendering ----------------------------------------------------------------------------------
    def redraw(self) -> None:
        self._render_all()

    def _render_all(self) -> None:
        if not self.is_mounted or not self.children:  # not composed yet, or being taken down (the app quitting)
            return
        self.border_subtitle = "f: switch"
        title = MODE_LABELS[self.mode].upper()
        self.border_title = f"Joint fuse mode · {title}" + (" (switching…)" if self.busy else "")
        self.set_class(self.mode == AS_SAVED, "-as-saved")
        self._sync_radio()
        compact = self.app.has_class("-narrow")
        update_in_place(self.query_one("#fuse-flags", Static), self._flags_lines() if compact else self._flags_table())
        update_in_place(self.query_one("#fuse-explain", Static), Text(self._explanation()))
        update_in_place(self.query_one("#fuse-returns", Static), self._returns())

    def _explanation(self) -> str:
        """What the mode means, said while the checkpoint is read too (validation mode's meaning does not depend on
        the saved flags, and the panel keeps its height when they come); with nothing open, why."""
        if self.saved is None and self.waiting != READING:
            return self.waiting
        return explain(self.mode, self.saved)

    def _sync_radio(self) -> None:
        radio = self.query_one("#fuse-mode", RadioSet)
        wanted = "mode-as-saved" if self.mode == AS_SAVED else "mode-validation"
        with self.prevent(RadioSet.Changed, RadioButton.Changed):
            for index, button in enumerate(radio.query(RadioButton)):
                button.value = button.id == wanted
                if button.value:
                    radio._selected = index  # RadioSet draws its cursor here: keep it on the active mode

    def _flags_table(self) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column("flag", style="bold")
        table.add_column("saved", justify="left")
        table.add_column("used", justify="left")
        table.add_row(Text("flag", style="dim"), Text("saved", style="dim"), Text("used now", style="dim"))
        for name in FLAGS:
            saved = _flag(getattr(self.saved, name)) if self.saved is not None else "…"
            if self.used is None:
                used = Text("after restore", style="dim italic")
            else:
                value = _flag(getattr(self.used, name))
                changed = self.saved is not None and getattr(self.saved, name) != getattr(self.used, name)
                used = Text(value, style="bold reverse" if changed else "")
            table.add_row(name, saved, used)
        return table

    def _flags_lines(self) -> Text:
        """Two lines (saved, used) for narrow terminals."""
        text = Text()
        text.append("saved ", style="dim")
        for name in FLAGS:
            saved = _flag(getattr(self.saved, name)) if self.saved is not None else "…"
            text.append(f"{name} ", style="bold")
            text.append(f"{saved}  ")
        text.append("\nused  ", style="dim")
        if self.used is None:
            text.append("after restore", style="dim italic")
            return text
        for name in FLAGS:
            value = _flag(getattr(self.used, name))
            changed = self.saved is not None and getattr(self.saved, name) != getattr(self.used, name)
            text.append(f"{name} ", style="bold")
            text.append(value, style="bold reverse" if changed else "")
            text.append("  ")
        return text

    def _returns(self) -> Text:
        call = "joint(enc, dec) " if self.app.has_class("-narrow") else "joint(encoder_outputs, decoder_outputs) "
        head = Text(call, style="bold")
        if self.probe is None:
            return head + Text("→ shown once the model is restored", style="dim italic")
        if self.probe.startswith("raises"):
            return head + Text(f"→ {self.probe}", style="bold red")
        return head + Text(f"→ {self.probe}", style="green")

    @on(RadioSet.Changed, "#fuse-mode")
    def _picked(self, event: RadioSet.Changed) -> None:
        event.stop()
        mode = AS_SAVED if event.pressed.id == "mode-as-saved" else VALIDATION
        if mode != self.mode:
            self.post_message(self.ModeRequested(mode))
