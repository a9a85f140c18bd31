"""The Core ML compute-unit sweep: one row per compute unit (timings, worst diff, transcript) from
`core.sweep.sweep`, and Core ML's op placement (share of ops on CPU / GPU / Neural Engine) where the platform
provides it. `d` reruns it with the drift search (`core.sweep.sweep(drift=True)`): for each component out of
tolerance on a unit, the first op that drifts from CPU_ONLY, one verdict line per row and component.

Where Core ML cannot run (Linux), the rows stay on screen with the core's reason instead of numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, Static

from rnnt_tui.app.format import ms, num
from rnnt_tui.core.components import COMPONENTS
from rnnt_tui.core.names import COMPUTE_UNITS
from rnnt_tui.core.sweep.verdict import drift_verdict

if TYPE_CHECKING:
    from rnnt_tui.core.pipeline.pipeline import RuntimeChoice as Availability

PLACEMENT_NOTE = ("Op placement (share of ops on CPU / GPU / Neural Engine) comes from Core ML's MLComputePlan, "
                  "which needs macOS 14.4 or later.")


@dataclass
class SweepDone(Message):
    rows: list[Any]


class SweepScreen(ModalScreen[None]):
    """The sweep table; `r` runs it where Core ML can run."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "Close", id="sweep.close", tooltip="Back to the comparison"),
        Binding("r", "run_sweep", "Run sweep", id="sweep.run", tooltip="Run the comparison on every compute unit"),
        Binding("d", "drift_search", "Drift search", id="sweep.drift",
                tooltip="Rerun the sweep and name, per component out of tolerance, the first op drifting from "
                        "CPU_ONLY"),
    ]

    def __init__(self, availability: Availability | None, against: str,
                 start: Callable[[SweepScreen, bool], object]) -> None:
        super().__init__()
        self.start = start
        self.availability = availability
        self.against = against
        self.drift_requested = False

    def compose(self) -> ComposeResult:
        with Vertical(id="sweep-box"):
            yield Label("Core ML compute-unit sweep   (r runs it · Esc closes)", id="sweep-title")
            yield Static(id="sweep-note")
            yield DataTable(id="sweep-table", zebra_stripes=True, cursor_type="row")
            yield Static(Text(PLACEMENT_NOTE, style="dim"), id="sweep-placement")
            yield DataTable(id="placement-table", zebra_stripes=True, cursor_type="row")
            yield DataTable(id="drift-table", zebra_stripes=True, cursor_type="row")

    def on_mount(self) -> None:
        table = self.query_one("#sweep-table", DataTable)
        table.add_column("compute units", key="unit")
        table.add_column("status", key="status")
        for name in COMPONENTS:
            table.add_column(f"{name} ms · max|Δ|", key=name)
        table.add_column("load ms cold · cached", key="loads")
        table.add_column("transcript or error", key="transcript")
        placement = self.query_one("#placement-table", DataTable)
        for key, label in (("unit", "compute units"), ("component", "component"), ("ops", "ops"), ("CPU", "CPU"),
                           ("GPU", "GPU"), ("NE", "Neural Engine"), ("fallbacks", "ops kept on the CPU")):
            placement.add_column(label, key=key)
        placement.display = False
        drift = self.query_one("#drift-table", DataTable)
        for key, label in (("unit", "compute units"), ("component", "component"), ("verdict", "drift verdict")):
            drift.add_column(label, key=key)
        drift.display = False
        reason = self.unavailable_reason()
        for unit in COMPUTE_UNITS:
            status = Text("needs macOS" if reason else "not run", style="yellow" if reason else "dim")
            table.add_row(unit, status, *(["–"] * len(COMPONENTS)), "–", "–", key=unit)
        note = self.query_one("#sweep-note", Static)
        if reason:
            note.update(Text(f"Core ML cannot run here: {reason}", style="bold yellow"))
        else:
            note.update(Text("Press r to run the comparison on each compute unit (converted packages are cached "
                             "after the first).", style="dim"))

    def unavailable_reason(self) -> str | None:
        if self.availability is None:
            return "the Core ML runtime is not available in this build"
        if not self.availability.ok:
            return self.availability.reason
        return None

    def action_run_sweep(self) -> None:
        self._start(drift=False)

    def action_drift_search(self) -> None:
        self._start(drift=True)

    def _start(self, drift: bool) -> None:
        reason = self.unavailable_reason()
        if reason:
            self.notify(f"Core ML cannot run here: {reason}", title="Drift search" if drift else "Sweep",
                        severity="warning")
            return
        what = "Sweeping with the drift search…" if drift else "Sweeping…"
        self.query_one("#sweep-note", Static).update(Text(f"{what} (Esc in the main screen cancels)", style="bold"))
        self.drift_requested = drift
        self.start(self, drift)

    @on(SweepDone)
    def _done(self, message: SweepDone) -> None:
        table = self.query_one("#sweep-table", DataTable)
        for row in message.rows:
            status_style = {"ok": "green", "unavailable": "yellow", "mismatch": "bold red"}.get(row.status, "red")
            table.update_cell(row.compute_units, "status", Text(row.status, style=status_style))
            for name in COMPONENTS:
                comp = row.components.get(name, {})
                table.update_cell(row.compute_units, name,
                                  f"{ms(comp.get('median_ms'))} · max|Δ| {num(comp.get('worst_max_abs'))}",
                                  update_width=True)
            table.update_cell(row.compute_units, "loads", load_summary(row.loads), update_width=True)
            table.update_cell(row.compute_units, "transcript", row.error or row.transcript or "–", update_width=True)
        self.query_one("#sweep-note", Static).update(Text("Sweep done.", style="bold green"))
        self._placements(message.rows)
        self._drifts(message.rows)

    def _placements(self, rows: list[Any]) -> None:
        table = self.query_one("#placement-table", DataTable)
        table.clear()
        reasons = set()
        for row in rows:
            placement = getattr(row, "placement", None) or {}
            if "unavailable" in placement:
                reasons.add(str(placement["unavailable"]))
                continue
            for component, plan in placement.items():
                share = plan.get("op_share", {})
                fallbacks = ", ".join(f"{op} ×{n}" for op, n in list(plan.get("cpu_fallbacks", {}).items())[:4])
                table.add_row(row.compute_units, component, str(plan.get("ops", "–")),
                              *(f"{100 * share[d]:.0f}%" if d in share else "–" for d in ("CPU", "GPU", "NE")),
                              fallbacks or "–")
        table.display = table.row_count > 0
        note = self.query_one("#sweep-placement", Static)
        if table.row_count:
            note.update(Text("Ops Core ML keeps on the CPU although the units include an accelerator are listed "
                             "by type.", style="dim"))
        elif reasons:
            note.update(Text("Op placement not available: " + "; ".join(sorted(reasons)), style="yellow"))


    def _drifts(self, rows: list[Any]) -> None:
        table = self.query_one("#drift-table", DataTable)
        table.clear()
        for row in rows:
            for component, entry in (getattr(row, "drift", None) or {}).items():
                table.add_row(row.compute_units, component, drift_verdict(entry))
        table.display = table.row_count > 0
        if self.drift_requested and not table.row_count:
            self.notify("No component was out of tolerance on any unit: nothing to search for drift.",
                        title="Drift search")


def load_summary(loads: dict[str, dict[str, Any]]) -> str:
    """Every package's load on this unit, cold (compiling) beside cached (opening the compiled model), summed."""
    if not loads:
        return "–"
    cold = [float(v["cold_ms"]) for v in loads.values() if v.get("cold_ms") is not None]
    cached = [float(v["cached_open_ms"]) for v in loads.values() if v.get("cached_open_ms") is not None]
    return f"{ms(sum(cold)) if cold else '–'} · {ms(sum(cached)) if cached else '–'}"
