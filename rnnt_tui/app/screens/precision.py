"""The precision view: the open model's fp16 conversion certified in the MIL interpreter — per component its error
against the fp32 program, the hazards ranked by effect with their op and NeMo module, the ops the conversion keeps
in fp32, the static lint and whether the decode through the programs is token-for-token identical.

Shows `core.precision.certify`'s report as JSON (plain data from the engine process) and computes nothing. Every
figure is the Core ML program in rnnt-tui's MIL interpreter, never Core ML itself, and the screen says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, Static

from rnnt_tui.app.format import DASH, num

PRECISIONS = ("fp16", "mixed", "fp16-all")
WEIGHTS = (None, "int8", "palettize6", "palettize4")
NOTE = ("Computed by the Core ML program in rnnt-tui's MIL interpreter (fp16 ops round their outputs to fp16): it "
        "finds range hazards and conversion mistakes, not the Neural Engine's own arithmetic, op fusion or "
        "activation tables. Final sign-off needs a Mac.")


@dataclass
class PrecisionDone(Message):
    report: dict[str, Any]


class PrecisionScreen(ModalScreen[None]):
    """`r` certifies the model's conversion at the chosen precision on the open clip."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "Close", id="precision.close", tooltip="Back to the comparison"),
        Binding("r", "run", "Certify", id="precision.run", tooltip="Analyse the conversion on the open clip"),
        Binding("m", "cycle_precision", "Precision", id="precision.cycle",
                tooltip="fp16 (the tool's) → mixed (fewest fp32 ops) → fp16-all (coremltools' plain fp16)"),
        Binding("w", "cycle_weights", "Weights", id="precision.weights",
                tooltip="Compressed weights: none → int8 → 6-bit palette → 4-bit palette"),
    ]

    def __init__(self, start: Callable[[PrecisionScreen, str, str | None], object]) -> None:
        super().__init__()
        self.start = start
        self.precision = PRECISIONS[0]
        self.weights: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="precision-box"):
            yield Label(id="precision-title")
            yield Static(Text(NOTE, style="dim"), id="precision-note")
            yield Static(id="precision-summary")
            yield DataTable(id="precision-components", zebra_stripes=True, cursor_type="row")
            yield Label("Hazards, largest effect on the output first", classes="table-title")
            yield DataTable(id="precision-hazards", zebra_stripes=True, cursor_type="row")
            yield Label("Flexible-dimension edges (lengths that fail or drift)", classes="table-title")
            yield DataTable(id="precision-edges", zebra_stripes=True, cursor_type="row")
            yield Label("Lint (no clip needed)", classes="table-title")
            yield DataTable(id="precision-lint", zebra_stripes=True, cursor_type="row")

    def on_mount(self) -> None:
        self._title()
        self.query_one("#precision-components", DataTable).add_columns(
            "component", "max |Δ| vs fp32", "of range", "finite", "ops", "kept fp32", "first drift", "error")
        self.query_one("#precision-hazards", DataTable).add_columns(
            "component", "kind", "op", "type", "NeMo module", "effect", "detail")
        self.query_one("#precision-edges", DataTable).add_columns("component", "axis", "length", "seconds",
                                                                  "status", "max |Δ|", "detail")
        self.query_one("#precision-lint", DataTable).add_columns("package", "severity", "what", "op / input",
                                                                 "NeMo module")

    def _title(self) -> None:
        weights = f", {self.weights} weights" if self.weights else ""
        self.query_one("#precision-title", Label).update(
            f"Precision: {self.precision}{weights} conversion vs its fp32 program   (r certifies · m precision · "
            "w weights · Esc closes)")

    def action_cycle_precision(self) -> None:
        self.precision = PRECISIONS[(PRECISIONS.index(self.precision) + 1) % len(PRECISIONS)]
        self._title()

    def action_cycle_weights(self) -> None:
        self.weights = WEIGHTS[(WEIGHTS.index(self.weights) + 1) % len(WEIGHTS)]
        self._title()

    def action_run(self) -> None:
        self.query_one("#precision-summary", Static).update(
            Text(f"Converting ({self.precision}) and running both programs in the MIL interpreter… "
                 "(Esc in the main screen cancels)", style="bold"))
        self.start(self, self.precision, self.weights)

    @on(PrecisionDone)
    def _done(self, message: PrecisionDone) -> None:
        report = message.report
        decode = report.get("decode") or {}
        identical = decode.get("identical")
        summary = Text.assemble(
            ("status ", "bold"), (report.get("status", "?"), "green" if report.get("status") == "ok" else "bold red"),
            "  decode through the programs: ",
            ("identical" if identical else "differs" if identical is not None else DASH,
             "green" if identical else "bold red" if identical is not None else "dim"),
            *(("\n" + e, "red") for e in report.get("errors", [])))
        self.query_one("#precision-summary", Static).update(summary)
        kept = report.get("fp32_ops", {})
        components = self.query_one("#precision-components", DataTable)
        hazards = self.query_one("#precision-hazards", DataTable)
        components.clear()
        hazards.clear()
        for comp in report.get("components", []):
            drift = comp.get("first_drift") or {}
            components.add_row(comp["component"], num(comp.get("max_diff")), num(comp.get("relative_diff")),
                               "yes" if comp.get("finite") else Text("NO", style="bold red"), str(comp.get("ops")),
                               str(len(kept.get(comp["component"], []))), str(drift.get("op") or DASH),
                               comp.get("error") or "")
            for hazard in comp.get("hazards", [])[:12]:
                hazards.add_row(comp["component"], hazard["kind"], hazard["op"], hazard["op_type"],
                                hazard["module"], num(hazard.get("effect")), str(hazard.get("detail", ""))[:80])
        edges = self.query_one("#precision-edges", DataTable)
        edges.clear()
        for sweep in report.get("edges", []):
            for point in sweep.get("problems", []) or ([] if not sweep.get("error") else
                                                        [{"axis": "-", "length": "-", "seconds": "-",
                                                          "status": "error", "detail": sweep["error"]}]):
                edges.add_row(sweep["component"], str(point["axis"]), str(point["length"]), str(point["seconds"]),
                              point["status"], num(point.get("max_diff")), str(point.get("detail", ""))[:80])
        if not edges.row_count:
            checked = sum(len(s.get("points", [])) for s in report.get("edges", []))
            edges.add_row("every component", "-", f"{checked} lengths checked", "-", "ok", DASH, "")
        lint = self.query_one("#precision-lint", DataTable)
        lint.clear()
        for package in report.get("lint", []):
            for finding in package.get("findings", [])[:20]:
                lint.add_row(str(package.get("path", "")).rsplit("/", 1)[-1], str(finding.get("severity", "")),
                             str(finding.get("message", finding.get("what", "")))[:80],
                             str(finding.get("op", finding.get("input", ""))), str(finding.get("module", "")))
