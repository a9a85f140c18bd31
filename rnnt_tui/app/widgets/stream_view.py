"""The Streaming tab's view: a chunk timeline, the transcripts growing chunk by chunk, cache drift as a sparkline.

Renders a plain result and computes nothing: the `to_json` dict of `core.stream`'s `StreamResult` (whole, or
growing: `add_chunk` takes one chunk's JSON as a `ChunkCompared` event arrives). One column per chunk: the
free-running encoder drift as a heat cell (relative to the tolerance), the tokens each runtime emitted, the first
divergence marked; above it, once the report is whole, what ran the candidate and where its encoder caches were
carried (explicit inputs and outputs, or Core ML / Core AI states: `stream --cache-states`). `n` steps the cursor one
chunk (the transcripts show up to it); `p` steps back. The timeline shows as many chunks as its width holds, around the
cursor (a minute of audio is over a hundred chunks: all of them in one table left each column no room for its cell),
and the view scrolls (arrows, PageUp / PageDown, the mouse), so at 80x24 the transcripts and the cache drift below the
timeline can be reached. Self-contained: the app hooks it up by mounting it in a tab and calling `show(report)` /
`add_chunk(chunk_json)`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import ScrollableContainer
from textual.widgets import Static

if TYPE_CHECKING:
    from textual.app import ComposeResult

BLOCKS = "▁▂▃▄▅▆▇█"
#: cells a chunk's column of the timeline takes: its widest cell ("7e-07", the header "▶108✗"), padding and a border
CHUNK_CELLS = 9
#: cells of the timeline's row labels ("drift", "NeMo", "cand") with their padding and the table's two outer borders
LABEL_CELLS = 10


def heat(value: float | str | None, atol: float) -> Text:
    """A cell coloured by how far the drift is from the tolerance (green within, yellow up to 10x, red beyond)."""
    if value is None or isinstance(value, str):
        return Text("!!", style="bold white on red")
    style = "black on green" if value <= atol else ("black on yellow" if value <= 10 * atol else "white on red")
    return Text(f"{value:.0e}", style=style)


def sparkline(values: list[float | str | None]) -> str:
    """One character per chunk, in order: a block scaled to the largest finite value; `!` for NaN / Inf (JSON "nan",
    "inf": never dropped or hidden), `·` for None (a value shown but not judged, the padded last chunk's caches,
    which would otherwise set the scale)."""
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    top = max(finite, default=0.0) or 1.0

    def char(v: float | str | None) -> str:
        if v is None:
            return "·"
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            return "!"
        return BLOCKS[min(len(BLOCKS) - 1, int(v / top * (len(BLOCKS) - 1)))]

    return "".join(char(v) for v in values)


class StreamView(ScrollableContainer):
    """A streaming comparison, chunk by chunk (a scrolling view of one drawing of the report)."""

    DEFAULT_CSS = """
    StreamView > Static {
        height: auto;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "step(1)", "Next chunk", tooltip="Show the transcripts up to the next chunk", id="stream.next"),
        Binding("p", "step(-1)", "Previous chunk", tooltip="Show the transcripts up to the previous chunk",
                id="stream.previous"),
    ]

    def __init__(self, report: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.report: dict[str, Any] = report or {"chunks": []}
        self.cursor = max(0, len(self.report["chunks"]) - 1)
        self.body = Static()

    def compose(self) -> ComposeResult:
        yield self.body

    def show(self, report: dict[str, Any]) -> None:
        self.report = report
        self.cursor = max(0, len(report.get("chunks", [])) - 1)
        self.refresh_view()

    def add_chunk(self, chunk: dict[str, Any]) -> None:
        self.report.setdefault("chunks", []).append(chunk)
        self.cursor = len(self.report["chunks"]) - 1
        self.refresh_view()

    def action_step(self, delta: int) -> None:
        chunks = self.report.get("chunks", [])
        self.cursor = max(0, min(len(chunks) - 1, self.cursor + delta))
        self.refresh_view()

    def on_mount(self) -> None:
        self.refresh_view()

    def on_resize(self) -> None:
        self.refresh_view()  # the timeline holds as many chunks as the new width does

    def refresh_view(self) -> None:
        width = self.scrollable_content_region.width
        self.body.update(self.renderable_for(width or None))

    def renderable_for(self, width: int | None = None) -> Group:
        """The drawing; `width`: the cells the timeline may take (None: every chunk gets a column)."""
        chunks = self.report.get("chunks", [])
        if not chunks:  # a table of no chunk is one narrow column: its title wrapped a word per line down the tab
            return Group(*self._ran(), Text.assemble(
                "No chunk compared yet. ", ("s", "bold"), " streams the open clip chunk by chunk, ", ("S", "bold"),
                " with the candidate's encoder caches in states.", style="dim"))
        atol = float(self.report.get("tolerance", {}).get("atol", 1e-3))
        divergence = (self.report.get("decode") or {}).get("first_divergence") or {}
        fit = max(1, (width - LABEL_CELLS) // CHUNK_CELLS) if width else len(chunks)
        start = max(0, min(self.cursor - fit // 2, len(chunks) - fit))
        shown = chunks[start:start + fit]
        window = (f" · chunks {start}-{start + len(shown) - 1} of {len(chunks)}, n / p move"
                  if len(shown) < len(chunks) else "")
        timeline = Table(title=f"Chunk timeline (free-running drift, tokens per chunk){window}", show_lines=False)
        timeline.add_column("")
        for c in shown:
            marked = c["index"] == divergence.get("chunk")
            timeline.add_column(f"{'▶' if c['index'] == self.cursor else ''}{c['index']}{'✗' if marked else ''}",
                                justify="center", style="bold red" if marked else "")
        timeline.add_row("drift", *[heat(c["free_running"]["outputs"][0]["max_abs"], atol) for c in shown])
        timeline.add_row("NeMo", *[c["tokens"]["reference_text"] for c in shown])
        timeline.add_row("cand", *[c["tokens"]["candidate_text"] for c in shown])
        upto = chunks[: self.cursor + 1]
        ref = "".join(c["tokens"]["reference_text"] for c in upto)
        cand = "".join(c["tokens"]["candidate_text"] for c in upto)
        caches = [c["free_running"]["outputs"][1] for c in chunks]
        drift = [o["max_abs"] if o.get("gates", True) else None for o in caches]
        lines = Text.assemble(
            ("NeMo streaming: ", "bold"), ref, "\n", ("candidate:      ", "bold"),
            (cand, "" if cand == ref else "red"), "\n", ("cache drift:    ", "bold"), sparkline(drift),
            ("  (· shown, not judged: the padded last chunk)", "dim") if None in drift else "")
        return Group(*self._ran(), timeline, lines)

    def _ran(self) -> list[Text]:
        """What ran the candidate and which cache feed it used (explicit caches, Core ML or Core AI states), once the
        report says (the finished report; chunk events alone do not)."""
        carried = self.report.get("caches_carried_in")
        if carried is None:
            return []
        return [Text.assemble((f"{self.report.get('candidate', 'candidate')}", "bold"), " · encoder caches carried in ",
                              (carried, "bold" if carried.startswith("explicit") else "bold cyan"))]
