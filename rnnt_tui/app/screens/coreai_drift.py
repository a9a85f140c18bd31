"""Where the open Core AI candidate drifts from PyTorch: for each component searched, the first op whose Core AI
output differs (its torch.export node and aten op, its NeMo module, the PyTorch source line, the largest
difference) and the failing ops after it, in graph order.

Shows the engine's `coreai_drift` reply (plain JSON: `core.coreai.drift.DriftReport.to_json` per component, found
with Apple's `coreai_torch.debugging`) and computes nothing. Every figure says what ran it: Apple's Core AI runtime
where the candidate ran ("Apple Core AI runtime, Linux CPU"), against the torch.export program of the same
component. Esc closes the screen and cancels a search still running.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from rnnt_tui.app.format import DASH, num
from rnnt_tui.app.screens.precision import WrappedTable
from rnnt_tui.app.screens.scrolling import scroll_bindings

TOP_ROWS = 10  # failing ops shown per component (the JSON report of `rnnt-tui coreai-drift --json` has them all)
NOTE = ("Found with Apple's coreai_torch.debugging: the component is exported again with torch.export, converted "
        "with coreai-torch and both programs run on the component's first input in this session; every mapped "
        "op's output is compared (per-op tolerance 1e-4). The first op in graph order that differs is where the "
        "drift starts.")


@dataclass
class DriftDone(Message):
    """The search ended: the engine's reply."""

    report: dict[str, Any]


class CoreAIDriftScreen(ModalScreen[None]):
    """The drift search's result for the components asked for (the search runs while the screen is open)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "Close", id="coreai-drift.close",
                tooltip="Back to the comparison (a search still running is cancelled)"),
        *scroll_bindings("coreai-drift"),
    ]

    def __init__(self, components: list[str], runs_on: str, packages_dir: str | None = None) -> None:
        super().__init__()
        self.components = components
        self.runs_on = runs_on
        self.packages_dir = packages_dir
        self.report: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="coreai-drift-box"):
            yield Static(id="coreai-drift-title")
            yield Static(Text(NOTE + self._assets_note(), style="dim"), id="coreai-drift-note")
            yield Static(id="coreai-drift-summary")
            yield WrappedTable("component", "comparison", "first drifting op", "NeMo module", "PyTorch source",
                               "max |Δ|", "ops compared", "failing", id="coreai-drift-components")
            yield Label(f"Failing ops in graph order (the first {TOP_ROWS} per component)", classes="table-title")
            yield WrappedTable("component", "op", "aten", "NeMo module", "PyTorch source", "max |Δ|",
                               id="coreai-drift-ops")

    def _assets_note(self) -> str:
        if not self.packages_dir:
            return ""
        return (f" The assets in use come from {self.packages_dir}: the search compares the tool's own conversion "
                "of the restored model, not those files.")

    def on_mount(self) -> None:
        self.query_one("#coreai-drift-title", Static).update(Text.assemble(
            ("Core AI drift search", "bold"), f"  {', '.join(self.components)} · run by {self.runs_on}   (Esc closes)"))
        self.query_one("#coreai-drift-summary", Static).update(Text(
            "Searching… (slow on Linux: Apple's runtime runs every op on the CPU; Esc cancels)", style="bold"))
        self.query_one("#coreai-drift-box", VerticalScroll).focus()

    def action_scroll(self, how: str) -> None:
        getattr(self.query_one("#coreai-drift-box", VerticalScroll), f"action_{how}")()

    @on(DriftDone)
    def _done(self, message: DriftDone) -> None:
        self.report = report = message.report
        drift: dict[str, Any] = report.get("drift", {})
        statuses: dict[str, str] = report.get("statuses", {})
        rows: list[tuple[Any, ...]] = []
        ops: list[tuple[Any, ...]] = []
        for name, entry in drift.items():
            first = entry.get("first") or {}
            found = bool(first)
            rows.append((name, statuses.get(name, DASH),
                         Text(f"{first['node']}", style="bold red") if found else Text("none", style="green"),
                         first.get("module") or (DASH if not found else "the wrapper"),
                         first.get("source") or DASH, _diff(first) if found else DASH, str(entry.get("compared", 0)),
                         str(len(entry.get("failing", [])))))
            ops += [(name, op["node"], op["target"], op.get("module") or "the wrapper", op.get("source") or DASH,
                     _diff(op)) for op in entry.get("failing", [])[:TOP_ROWS]]
        self.query_one("#coreai-drift-components", WrappedTable).set_rows(rows)
        self.query_one("#coreai-drift-ops", WrappedTable).set_rows(ops)
        drifting = [n for n, e in drift.items() if e.get("first")]
        tools = sorted({str(e.get("tool")) for e in drift.values() if e.get("tool")})
        verdict = (Text(f"Drift starts in: {', '.join(drifting)}", style="bold red") if drifting
                   else Text("No op drifts beyond the per-op tolerance", style="bold green"))
        self.query_one("#coreai-drift-summary", Static).update(Text.assemble(
            verdict, (f"\n{report.get('precision', '')} conversion · {'; '.join(tools)}", "dim")))


def _diff(op: dict[str, Any]) -> str | Text:
    value = op.get("max_diff")
    return Text("non-finite", style="bold red") if value is None else num(value)
