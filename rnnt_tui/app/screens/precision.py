"""The precision view: the open model's fp16 conversion certified in the MIL interpreter — per component its error
against the fp32 program, the hazards ranked by effect with their op and NeMo module, the ops the conversion keeps
in fp32, the static lint and whether the decode through the programs is token-for-token identical.

Shows `core.precision.certify`'s report as JSON (plain data from the engine process) and computes nothing. Every
figure says what computed it: the Core ML program in rnnt-tui's MIL interpreter (never Core ML itself), or, with
`c`, Core AI (the screen opens on Core AI when the open candidate is Core AI); where the core cannot certify on the
chosen runtime, the screen says why instead of showing another runtime's figures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from rich import box
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from rnnt_tui.app.format import DASH, num
from rnnt_tui.app.screens.scrolling import scroll_bindings
from rnnt_tui.core.names import RUNTIME_LABELS

PRECISIONS = ("fp16", "mixed", "fp16-all")
#: the runtimes the screen can ask to certify on (`c` cycles): the Core ML program in the MIL interpreter, Core AI
RUNTIMES = ("mil", "coreai")
SHORT = 14  # a column whose cells are all this short keeps its width; longer text shares the rest and folds
WEIGHTS = (None, "int8", "palettize6", "palettize4")
NOTE = ("Computed by the Core ML program in rnnt-tui's MIL interpreter (fp16 ops round their outputs to fp16): it "
        "finds range hazards and conversion mistakes, not the Neural Engine's own arithmetic, op fusion or "
        "activation tables. Final sign-off needs a Mac.")
CORE_AI_NOTE = ("Core AI: the model's conversion at this precision (coreai-torch) run by {where}, against its fp32 "
                "conversion; hazards name the op, its NeMo module and the PyTorch source line.")


@dataclass
class PrecisionRefused(Message):
    """The chosen runtime cannot be certified here (or by this build): why, in one line."""

    reason: str


@dataclass
class PrecisionDone(Message):
    report: dict[str, Any]


class WrappedTable(Static):
    """A read-only table whose cells wrap to the screen's width: at 80 columns nothing is cut, every row shows
    (the screen scrolls as a whole)."""

    def __init__(self, *columns: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.columns = columns
        self.rows: list[tuple[Any, ...]] = []

    @property
    def row_count(self) -> int:
        return len(self.rows)

    def set_rows(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows
        self.draw()

    def on_mount(self) -> None:
        self.draw()

    def draw(self) -> None:
        """Every cell folds: at any width every character is on screen."""
        table = Table(expand=True, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
        rows = [[cell if isinstance(cell, Text) else Text(str(cell)) for cell in row] for row in self.rows]
        for i, column in enumerate(self.columns):  # every cell folds: at any width every character shows
            longest = max([max(len(word) for word in column.split()), *(row[i].cell_len for row in rows)])
            if longest <= SHORT:  # names, numbers, flags: their own width
                table.add_column(column, overflow="fold")
            else:  # free text: a share of the rest, by its length
                table.add_column(column, overflow="fold", ratio=min(longest, 60))
        for row in rows:
            table.add_row(*row)
        self.update(table)


class PrecisionScreen(ModalScreen[None]):
    """`r` certifies the model's conversion at the chosen precision on the open clip."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "Close", id="precision.close", tooltip="Back to the comparison"),
        Binding("r", "run", "Certify", id="precision.run", tooltip="Analyse the conversion on the open clip"),
        Binding("m", "cycle_precision", "Precision", id="precision.cycle",
                tooltip="fp16 (the tool's) → mixed (fewest fp32 ops) → fp16-all (coremltools' plain fp16)"),
        Binding("w", "cycle_weights", "Weights", id="precision.weights",
                tooltip="Compressed weights: none → int8 → 6-bit palette → 4-bit palette"),
        Binding("c", "cycle_runtime", "Runtime", id="precision.runtime",
                tooltip="What certifies: the Core ML program in the MIL interpreter → Core AI"),
        *scroll_bindings("precision", lines=True),
    ]

    def __init__(self, start: Callable[[PrecisionScreen, str, str | None, str], object], runtime: str = "mil",
                 runs_on: str | None = None) -> None:
        """`runtime`: what certifies first ("mil", or "coreai" when the open candidate is Core AI); `runs_on`:
        where Core AI runs here, for its note."""
        super().__init__()
        self.start = start
        self.precision = PRECISIONS[0]
        self.weights: str | None = None
        self.runtime = runtime if runtime in RUNTIMES else RUNTIMES[0]
        self.runs_on = runs_on or "Apple's Core AI runtime"

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="precision-box"):
            yield Static(id="precision-title")
            yield Static(id="precision-note")
            yield Static(id="precision-summary")
            yield WrappedTable("component", "max |Δ| vs fp32", "of range", "finite", "ops", "kept fp32",
                               "first drift", "error", id="precision-components")
            yield Label("Hazards, largest effect on the output first", classes="table-title")
            yield WrappedTable("component", "kind", "op", "type", "NeMo module", "effect", "detail",
                               id="precision-hazards")
            yield Label("Flexible-dimension edges (lengths that fail or drift)", classes="table-title")
            yield WrappedTable("component", "axis", "length", "seconds", "status", "max |Δ|", "detail",
                               id="precision-edges")
            yield Label("Lint (no clip needed)", classes="table-title")
            yield WrappedTable("package", "severity", "what", "op / input", "NeMo module", id="precision-lint")

    def on_mount(self) -> None:
        self._title()
        self.query_one("#precision-box", VerticalScroll).focus()  # PageDown, End, arrows scroll the whole view

    def action_scroll(self, how: str) -> None:
        getattr(self.query_one("#precision-box", VerticalScroll), f"action_{how}")()

    def _title(self) -> None:
        weights = f", {self.weights} weights" if self.weights else ""
        self.query_one("#precision-title", Static).update(
            f"Precision: {self.precision}{weights} conversion vs its fp32 program, {RUNTIME_LABELS[self.runtime]}   "
            "(r certifies · m precision · w weights · c runtime · Esc closes)")
        note = NOTE if self.runtime == "mil" else CORE_AI_NOTE.format(where=self.runs_on)
        self.query_one("#precision-note", Static).update(Text(note, style="dim"))

    def action_cycle_runtime(self) -> None:
        self.runtime = RUNTIMES[(RUNTIMES.index(self.runtime) + 1) % len(RUNTIMES)]
        self._title()

    def action_cycle_precision(self) -> None:
        self.precision = PRECISIONS[(PRECISIONS.index(self.precision) + 1) % len(PRECISIONS)]
        self._title()

    def action_cycle_weights(self) -> None:
        self.weights = WEIGHTS[(WEIGHTS.index(self.weights) + 1) % len(WEIGHTS)]
        self._title()

    def action_run(self) -> None:
        where = "in the MIL interpreter" if self.runtime == "mil" else f"on {self.runs_on}"
        self.query_one("#precision-summary", Static).update(
            Text(f"Converting ({self.precision}) and running both programs {where}… "
                 "(Esc in the main screen cancels)", style="bold"))
        self.start(self, self.precision, self.weights, self.runtime)

    @on(PrecisionRefused)
    def _refused(self, message: PrecisionRefused) -> None:
        """Nothing certified: the reason, and no other runtime's figures left on screen."""
        self.query_one("#precision-summary", Static).update(
            Text(f"{RUNTIME_LABELS[self.runtime]}: not certified - {message.reason}", style="bold yellow"))
        for table in self.query(WrappedTable):
            table.set_rows([])

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
        components: list[tuple[Any, ...]] = []
        hazards: list[tuple[Any, ...]] = []
        for comp in report.get("components", []):
            drift = comp.get("first_drift") or {}
            components.append((comp["component"], num(comp.get("max_diff")), num(comp.get("relative_diff")),
                               "yes" if comp.get("finite") else Text("NO", style="bold red"), str(comp.get("ops")),
                               str(len(kept.get(comp["component"], []))), str(drift.get("op") or DASH),
                               comp.get("error") or ""))
            hazards += [(comp["component"], hazard["kind"], hazard["op"], hazard["op_type"], hazard["module"],
                         num(hazard.get("effect")), str(hazard.get("detail", "")))
                        for hazard in comp.get("hazards", [])[:12]]
        self.query_one("#precision-components", WrappedTable).set_rows(components)
        self.query_one("#precision-hazards", WrappedTable).set_rows(hazards)
        edges: list[tuple[Any, ...]] = []
        for sweep in report.get("edges", []):
            for point in sweep.get("problems", []) or ([] if not sweep.get("error") else
                                                        [{"axis": "-", "length": "-", "seconds": "-",
                                                          "status": "error", "detail": sweep["error"]}]):
                edges.append((sweep["component"], str(point["axis"]), str(point["length"]), str(point["seconds"]),
                              point["status"], num(point.get("max_diff")), str(point.get("detail", ""))))
        if not edges:
            checked = sum(len(s.get("points", [])) for s in report.get("edges", []))
            edges.append(("every component", "-", f"{checked} lengths checked", "-", "ok", DASH, ""))
        self.query_one("#precision-edges", WrappedTable).set_rows(edges)
        lint: list[tuple[Any, ...]] = []
        for package in report.get("lint", []):
            name = str(package.get("path", "")).rsplit("/", 1)[-1]
            if package.get("error"):
                lint.append((name, "error", str(package["error"]), "", ""))
            lint += [(name, str(finding.get("severity", "")), str(finding.get("message", finding.get("what", ""))),
                      str(finding.get("op") or finding.get("input") or ""), str(finding.get("module") or ""))
                     for finding in package.get("findings", [])]
        self.query_one("#precision-lint", WrappedTable).set_rows(lint)
