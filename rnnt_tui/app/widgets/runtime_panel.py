"""Runtime controls: the second runtime, the Core ML compute unit, precision, timed runs and warm-ups.

What cannot run here stays on screen, disabled, with the reason the core gives (`Runtime.availability()`),
rather than hidden. Changing a control posts `Changed` with the new `RuntimeChoices`; the app rebuilds the session.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label, RadioButton, RadioSet, Select, Static

from rnnt_tui.app.choices import RuntimeChoices
from rnnt_tui.core.names import CANDIDATE_RUNTIMES, COMPUTE_UNITS, PRECISIONS, RUNTIME_LABELS

if TYPE_CHECKING:
    from rnnt_tui.core.pipeline.pipeline import RuntimeChoice as Availability

UNIT_HELP = {
    "CPU_ONLY": "CPU only",
    "CPU_AND_GPU": "CPU and GPU",
    "CPU_AND_NE": "CPU and Neural Engine",
    "ALL": "all (CPU, GPU, Neural Engine)",
}
CANDIDATE_ORDER = CANDIDATE_RUNTIMES


class RuntimePanel(Vertical):
    """The controls for the candidate runtime and the timing settings."""

    @dataclass
    class Changed(Message):
        options: RuntimeChoices

    def __init__(self, options: RuntimeChoices, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.options = options
        self.availability: dict[str, Availability] = {}

    def compose(self) -> ComposeResult:
        yield Label("Second runtime (the reference is NeMo / PyTorch)", classes="control-label")
        with RadioSet(id="against"):
            for name in CANDIDATE_ORDER:
                yield RadioButton(RUNTIME_LABELS[name], id=f"against-{name}", value=name == self.options.against)
        yield Static(id="against-notes", classes="notes")
        yield Label("Core ML compute units", classes="control-label")
        yield Select([(f"{u} - {UNIT_HELP[u]}", u) for u in COMPUTE_UNITS], value=self.options.compute_units,
                     allow_blank=False, id="compute-units")
        yield Static(id="units-note", classes="notes")
        with Horizontal(id="numbers"):
            with Vertical():
                yield Label("Precision (Core ML conversion; sets the tolerances)", classes="control-label")
                with RadioSet(id="precision"):
                    for p in PRECISIONS:
                        yield RadioButton(p, id=f"precision-{p}", value=p == self.options.precision)
            with Vertical():
                yield Label("Timed runs", classes="control-label")
                yield Input(str(self.options.runs), type="integer", id="runs", max_length=4)
            with Vertical():
                yield Label("Warm-ups", classes="control-label")
                yield Input(str(self.options.warmup), type="integer", id="warmup", max_length=4)
        yield Static(id="open-candidate", classes="notes")

    def on_mount(self) -> None:
        self.border_title = "Runtimes"
        self.query_one("#compute-units", Select).tooltip = "Which devices Core ML may use (macOS only)"
        self.query_one("#runs", Input).tooltip = "Timed runs per component; Enter (or leaving the field) applies"
        self.query_one("#warmup", Input).tooltip = "Untimed runs before timing; Enter (or leaving the field) applies"
        self._refresh()

    def show_availability(self, availability: dict[str, Availability]) -> None:
        self.availability = dict(availability)
        self._refresh()

    def show_candidate(self, label: str | None, runs_on: str | None, inventory: tuple[dict[str, Any], ...],
                       packages_dir: str | None, note: str | None = None) -> None:
        """What the open session's candidate is, where it runs, and every package or asset it was given: mapped
        to a component or skipped, with the reason."""
        text = Text()
        if label is None:
            text.append("The open session runs the reference alone.", style="dim")
        else:
            text.append("Open session: ", style="bold")
            text.append(label)
            if note:
                text.append(f" does not run: {note}", style="yellow")
            elif runs_on and runs_on not in label:
                text.append(f", run by {runs_on}")
        if inventory:
            mapped = sum(1 for e in inventory if e.get("mapped_to"))
            source = f" from {packages_dir}" if packages_dir else ""
            text.append(f"\nPackages and assets{source}: {mapped} mapped, {len(inventory) - mapped} skipped",
                        style="bold")
            for entry in inventory:
                name = Path(str(entry.get("path", ""))).name + (f":{entry['function']}" if entry.get("function")
                                                                 else "")
                if entry.get("mapped_to"):
                    text.append(f"\n  {name} → {entry['mapped_to']}", style="green")
                else:
                    text.append(f"\n  {name} skipped", style="yellow")
                text.append(f" ({entry.get('reason', '')})", style="dim")
        self.query_one("#open-candidate", Static).update(text)

    def set_options(self, options: RuntimeChoices) -> None:
        self.options = options
        self._refresh()

    def _refresh(self) -> None:
        if not self.is_mounted:
            return
        notes = Text()
        for name in CANDIDATE_ORDER:
            button = self.query_one(f"#against-{name}", RadioButton)
            avail = self.availability.get(name)
            with self.prevent(RadioButton.Changed, RadioSet.Changed):
                button.value = name == self.options.against
            # What cannot run here stays on screen, disabled, with its reason (even when it is the chosen one:
            # the session then runs the reference alone and says why).
            button.disabled = avail is not None and not avail.ok
            label = RUNTIME_LABELS[name]
            if avail is None:
                button.tooltip = f"{label}: checking…"
            elif avail.ok:
                button.tooltip = f"{label}: available here"
            else:
                button.tooltip = f"{label}: {avail.reason}"
                notes.append(f"{label}: ", style="bold")
                notes.append(f"not available here - {avail.reason}\n", style="yellow")
        self.query_one("#against-notes", Static).update(notes)
        coreml = self.availability.get("coreml")
        units = self.query_one("#compute-units", Select)
        with self.prevent(Select.Changed):
            units.value = self.options.compute_units
        units.disabled = self.options.against != "coreml" or coreml is None or not coreml.ok
        if self.options.against == "mil":
            units_note = ("do not apply: the MIL interpreter executes the Core ML program with numpy on this CPU; "
                          "only Core ML on a Mac places ops on CPU, GPU or Neural Engine")
        elif self.options.against != "coreml":
            units_note = "applies to Core ML only"
        elif coreml is not None and not coreml.ok:
            units_note = f"disabled: {coreml.reason}"
        else:
            units_note = ""
        self.query_one("#units-note", Static).update(Text(units_note, style="dim"))
        for p in PRECISIONS:
            with self.prevent(RadioButton.Changed, RadioSet.Changed):
                self.query_one(f"#precision-{p}", RadioButton).value = p == self.options.precision

    def _emit(self, options: RuntimeChoices) -> None:
        if options != self.options:
            self.options = options
            self._refresh()
            self.post_message(self.Changed(options))

    @on(RadioSet.Changed, "#against")
    def _against(self, event: RadioSet.Changed) -> None:
        event.stop()
        name = (event.pressed.id or "").removeprefix("against-")
        self._emit(replace(self.options, against=name))

    @on(RadioSet.Changed, "#precision")
    def _precision(self, event: RadioSet.Changed) -> None:
        event.stop()
        self._emit(replace(self.options, precision=(event.pressed.id or "").removeprefix("precision-")))

    @on(Select.Changed, "#compute-units")
    def _units(self, event: Select.Changed) -> None:
        event.stop()
        if isinstance(event.value, str):
            self._emit(replace(self.options, compute_units=event.value))

    @on(Input.Submitted)
    @on(Input.Blurred)
    def _numbers(self, event: Input.Submitted | Input.Blurred) -> None:
        event.stop()
        try:
            runs = max(1, min(1000, int(self.query_one("#runs", Input).value or self.options.runs)))
            warmup = max(0, min(1000, int(self.query_one("#warmup", Input).value or self.options.warmup)))
        except ValueError:
            self.notify("Runs and warm-ups are whole numbers", severity="warning")
            return
        self.query_one("#runs", Input).value, self.query_one("#warmup", Input).value = str(runs), str(warmup)
        self._emit(replace(self.options, runs=runs, warmup=warmup))
