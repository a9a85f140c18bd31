"""Pictures where a glance beats a number: the encoder's per-frame diff as a sparkline, and the joint's T × U
grid as two terminal heatmaps (max |Δ| per cell against the tolerance, and argmax agreement per cell).

The data are the core's maps (`StepResult.maps`: "per_frame_max_abs", "cell_max_abs", "cell_argmax_agree").
When the grid is wider or taller than the widget, neighbouring cells share a character and it shows their
worst value (the largest diff, any disagreement), so nothing bad is hidden by the drawing.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from rich.console import RenderableType
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Sparkline, Static

from rnnt_tui.app.format import num

if TYPE_CHECKING:
    import numpy as np

    from rnnt_tui.core.stats.results import StepResult

LEVELS = (  # (upper bound as a multiple of atol, colour, words)
    (0.01, "#1b5e20", "< 1% of atol"),
    (0.1, "#43a047", "< 10%"),
    (1.0, "#fdd835", "within atol"),
    (math.inf, "#e53935", "over atol"),
)
NAN_COLOUR = "#d500f9"
LABEL_WIDTH = 6


def _pool(grid: np.ndarray, rows: int, cols: int, worst: str) -> np.ndarray:
    """Shrink a [T, U] grid to at most cols × rows cells, keeping each block's worst value."""
    import numpy as np  # here, not at import: the first frame does not wait for numpy
    t, u = grid.shape
    t_edges = np.linspace(0, t, min(t, cols) + 1).astype(int)
    u_edges = np.linspace(0, u, min(u, rows) + 1).astype(int)
    reduce = np.nanmax if worst == "max" else np.min
    out = np.empty((len(t_edges) - 1, len(u_edges) - 1), dtype=grid.dtype)
    for i in range(len(t_edges) - 1):
        for j in range(len(u_edges) - 1):
            block = grid[t_edges[i]:t_edges[i + 1], u_edges[j]:u_edges[j + 1]]
            out[i, j] = reduce(block) if not (worst == "max" and np.isnan(block).all()) else np.nan
    return out


class Heatmap(Widget):
    """A [T, U] grid drawn with frames left to right and decoder steps top to bottom."""

    DEFAULT_CSS = "Heatmap { height: auto; }"

    def __init__(self, kind: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kind = kind  # "diff" or "agree"
        self.grid: np.ndarray | None = None
        self.atol = 1.0
        self.labels: list[str] = []
        self.empty = "run the joint step to draw its T × U grid"
        self._pooled: tuple[tuple[int, int], np.ndarray] | None = None

    def show(self, grid: np.ndarray | None, atol: float = 1.0, labels: list[str] | None = None,
             empty: str | None = None) -> None:
        self.grid, self.atol, self.labels = grid, atol, list(labels or [])
        self._pooled = None
        if empty is not None:
            self.empty = empty
        self.refresh(layout=True)

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        if self.grid is None or self.grid.size == 0:
            return max(1, -(-len(self.empty) // max(1, width)))
        return min(self.grid.shape[1], 24) + 1

    def render(self) -> RenderableType:
        if self.grid is None or self.grid.size == 0:
            return Text(self.empty, style="dim italic")
        cols = max(4, self.size.width - LABEL_WIDTH - 1)
        rows = max(1, min(self.grid.shape[1], 24))
        worst = "max" if self.kind == "diff" else "min"
        import numpy as np

        grid = self.grid.astype(np.float32) if self.kind == "diff" else self.grid.astype(bool)
        if self._pooled is None or self._pooled[0] != (rows, cols):  # pool once per size, not per repaint
            self._pooled = ((rows, cols), _pool(grid, rows, cols, worst))
        pooled = self._pooled[1]
        t_total, u_total = self.grid.shape
        cell = max(1, min(4, cols // max(1, pooled.shape[0])))  # short clips: wider cells
        text = Text()
        for j in range(pooled.shape[1]):
            u_index = int(j * u_total / pooled.shape[1])
            label = self.labels[u_index] if u_index < len(self.labels) and pooled.shape[1] == u_total else \
                str(u_index)
            text.append(f"{label[:LABEL_WIDTH - 1]:>{LABEL_WIDTH - 1}} ", style="dim")
            for i in range(pooled.shape[0]):
                text.append("█" * cell, style=self._colour(pooled[i, j]))
            text.append("\n")
        text.append(" " * LABEL_WIDTH + f"frame 0 … {t_total - 1}  (T = {t_total}, U = {u_total}"
                    + (", pooled" if pooled.shape != self.grid.shape else "") + ")", style="dim")
        return text

    def _colour(self, value: Any) -> str:
        if self.kind == "agree":
            return "#43a047" if bool(value) else "#e53935"
        v = float(value)
        if math.isnan(v):
            return NAN_COLOUR
        ratio = v / self.atol if self.atol > 0 else math.inf
        for bound, colour, _ in LEVELS:
            if ratio <= bound:
                return colour
        return LEVELS[-1][1]


def legend(kind: str) -> Text:
    text = Text("  ")
    if kind == "agree":
        text.append("█", style="#43a047")
        text.append(" same argmax  ")
        text.append("█", style="#e53935")
        text.append(" argmax differs")
        return text
    for _, colour, words in LEVELS:
        text.append("█", style=colour)
        text.append(f" {words}  ")
    text.append("█", style=NAN_COLOUR)
    text.append(" NaN")
    return text


class PicturesView(VerticalScroll):
    """Encoder sparkline and joint heatmaps for the current session."""

    def compose(self) -> Any:
        yield Static("Encoder · max |Δ| per frame", classes="picture-title")
        yield Static(id="spark-caption", classes="caption")
        yield Sparkline([], id="encoder-spark")
        yield Static("Joint · max |Δ| per cell (T × U)", classes="picture-title")
        yield Static(legend("diff"), classes="caption")
        yield Heatmap("diff", id="joint-diff")
        yield Static("Joint · argmax agreement per cell", classes="picture-title")
        yield Static(legend("agree"), classes="caption")
        yield Heatmap("agree", id="joint-agree")

    def clear(self) -> None:
        self.show_encoder(None)
        self.show_joint(None, [])

    def show_encoder(self, result: StepResult | None) -> None:
        spark = self.query_one("#encoder-spark", Sparkline)
        caption = self.query_one("#spark-caption", Static)
        data = result.maps.get("per_frame_max_abs") if result is not None else None
        if data is None or len(data) == 0:
            spark.data = []
            caption.update(Text("run the encoder step (with a candidate) to draw it", style="dim italic"))
            return
        spark.data = [float(v) for v in data]
        encoded = next((c for c in result.comparisons if c.name == "encoded"), None) if result else None
        peak = encoded.stats.max_abs if encoded is not None and encoded.stats is not None else None
        where = encoded.stats.max_abs_index if encoded is not None and encoded.stats is not None else None
        frame = f" at frame {where[-1]}" if where else ""
        atol = f", atol {num(encoded.atol)}" if encoded is not None else ""
        bad = encoded is not None and encoded.ok is False
        spark.set_class(bad, "-fail")
        caption.update(Text(f"{len(data)} frames · peak {num(peak)}{frame}{atol} · bar height is relative",
                            style="bold red" if bad else "dim"))

    def show_joint(self, result: StepResult | None, pieces: list[str]) -> None:
        cell = result.maps.get("cell_max_abs") if result is not None else None
        agree = result.maps.get("cell_argmax_agree") if result is not None else None
        logits = next((c for c in result.comparisons if c.name == "logits"), None) if result else None
        labels = ["∅", *pieces]
        if result is None:
            empty = "run the joint step to draw its T × U grid"
        elif result.error:
            empty = f"no grid: {result.error}"
        else:
            empty = "no grid: the joint was not compared (no candidate ran it)"
        self.query_one("#joint-diff", Heatmap).show(cell, (logits.atol if logits else None) or 1.0, labels, empty)
        self.query_one("#joint-agree", Heatmap).show(agree, 1.0, labels, empty)
