"""The live tables: shapes, timings and diffs, one row per (step, tensor or runtime), updated in place.

Rows are created once (`prime`, when the table is mounted) from the component contract
(`core.components.INPUTS` / `OUTPUTS`) with stable keys, then each `StepResult` in the state fills its cells with
`update_cell` (only cells whose value changed); nothing is cleared and rebuilt.

Why the care: DataTable re-renders every visible cell after any update (its render caches are keyed by an update
count), and a cell updated with `update_width=True` is measured again on idle - its whole column when it got
narrower. So a cell is set only when it changed, as `Text` (a `str` would be parsed as markup at each render), and
asks for a width update only when the column's width can change (it grows, or its widest cell shrinks); the row
it is in is repainted, not the table, and each cell's rendered lines are kept until its value, style or width
changes (`LiveTable._render_cell`); `warm` renders them while the table's tab is hidden.
Every number shown is a field of a core result (`DiffStats`, `Timings`, `StepResult.to_json` for the RTF).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from rich.segment import Segment
from rich.text import Text
from textual.cache import LRUCache
from textual.coordinate import Coordinate
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from rnnt_tui.app.format import DASH, ms, num, passfail, shape, state_text
from rnnt_tui.core.components import COMPONENTS, INPUTS, OUTPUTS, STEPS
from rnnt_tui.core.names import Status
from rnnt_tui.formatting import cosine

if TYPE_CHECKING:
    from rnnt_tui.core.components import TensorInfo
    from rnnt_tui.core.stats.diff import DiffStats
    from rnnt_tui.core.stats.results import StepResult

PENDING_CELL = Text("…", style="dim")
SIDES = ("reference", "candidate")


class LiveTable(DataTable[Any]):
    """A DataTable whose rows have stable keys and whose cells update in place."""

    COLUMNS: tuple[tuple[str, str], ...] = ()
    #: columns' starting widths (a label padded to it): the width their results' format takes, so the first results
    #: repaint their rows instead of growing the column and repainting the whole table, step after step
    FLOORS: ClassVar[dict[str, int]] = {}

    def __init__(self, **kwargs: Any) -> None:
        self._rows_only = False  # set while `set_cells` updates a row: the row is repainted, not the table
        self._cells: LRUCache[tuple[Any, ...], tuple[Any, Any]] = LRUCache(4000)  # key -> (value, lines)
        self._last_width: LRUCache[tuple[Any, ...], tuple[Any, int, Any]] = LRUCache(2000)  # -> (value, width, lines)
        self._size_before: Any = None  # the virtual size while `_update_dimensions` runs
        super().__init__(zebra_stripes=True, cursor_type="row", **kwargs)

    def _render_cell(self, row_index: int, column_index: int, base_style: Any, width: int, cursor: bool = False,
                     hover: bool = False) -> Any:
        """DataTable's cell rendering, reusing the lines of a cell whose value (the same object: cells are
        replaced, never mutated), place, style and width are unchanged. DataTable keys its own cell cache by one
        update counter, so after any change - a new row of results, a column grown by one character - it
        rendered every visible cell again through Rich (~0.2-0.3 ms each, ~140 in the diffs table)."""
        if column_index < 0 or row_index < -1:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        value = self.ordered_columns[column_index].label if row_index == -1 else \
            self.get_cell_at(Coordinate(row_index, column_index))
        place = (row_index, column_index, id(value), base_style, cursor, hover, self._show_hover_cursor,
                 self._pseudo_class_state, self.show_cursor, self.cursor_type)
        hit = self._cells.get((*place, width))
        if hit is not None and hit[0] is value:
            return hit[1]
        last = self._last_width.get(place)  # the same cell rendered at another width (its column grew)
        lines = _widened(value, last[2], last[1], width, self.cell_padding) \
            if last is not None and last[0] is value else None
        if lines is None:
            lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        self._cells[(*place, width)] = (value, lines)
        self._last_width[place] = (value, width, lines)
        return lines

    def warm(self, lines: int = 3) -> bool:
        """Render the next `lines` lines (header first) into the cell cache, off screen; False once every line
        is. Called a few lines per frame while the table's tab is hidden, so the tab's first paint (run all shows
        it) finds its cells rendered instead of rendering them all in one frame."""
        start = getattr(self, "_warmed", 0)
        total = self.header_height + self.row_count
        self._pseudo_class_state = self.get_pseudo_class_state()  # as `render_lines` sets it before painting
        for y in range(start, min(start + lines, total)):
            self.render_line(y)
        self._warmed = min(start + lines, total)
        return self._warmed < total

    def notify_style_update(self) -> None:
        self._cells.clear()  # a new theme or a CSS change: the component styles the cells were rendered with
        self._last_width.clear()
        super().notify_style_update()

    def refresh(self, *regions: Any, repaint: bool = True, layout: bool = False, recompose: bool = False) -> Any:
        """As DataTable's, except that the whole-table repaint `update_cell` asks for is skipped while `set_cells`
        updates one row (it repaints that row's lines itself), and a column that grew without changing the
        table's box is a repaint of the table, not a layout of the screen (`_update_dimensions`)."""
        if self._rows_only and not regions and repaint and not layout and not recompose:
            return self
        if layout and not regions and not recompose and self._same_box():
            self._scroll_update(self.virtual_size)  # the horizontal scrollbar's thumb, if it has one
            return super().refresh()
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def _update_dimensions(self, new_rows: Iterable[Any]) -> None:
        """DataTable's, noting the virtual size before, for `refresh`: a column grown by a result changes the
        table's virtual width, which would lay the whole screen out again (~10-20 ms a step) although the table's
        box - its container's width, its rows' height - is the same."""
        self._size_before = self.virtual_size
        try:
            super()._update_dimensions(new_rows)
        finally:
            self._size_before = None

    def _same_box(self) -> bool:
        """During `_update_dimensions`: the new virtual size leaves the table's region as it is - the same height,
        and a horizontal scrollbar before and after or neither (a width that only grew, once one is shown)."""
        before, after = self._size_before, self.virtual_size
        room = self.scrollable_content_region.width
        if before is None or not room or after.height != before.height:
            return False
        return (before.width <= room and after.width <= room) or (room < before.width <= after.width)

    def on_mount(self) -> None:
        for key, label in self.COLUMNS:
            self.add_column(label.ljust(self.FLOORS.get(key, 0)), key=key)
        self.prime()
        if self.styles.overflow_x == "scroll":  # its scrollbar from now: made when first shown, it took a layout
            self.show_horizontal_scrollbar = True
            self.horizontal_scrollbar.display = True

    def prime(self) -> None:
        """Add the rows known before any result (their cells pending)."""

    def ensure_row(self, key: str, cells: Iterable[Any]) -> None:
        if key not in self.rows:
            self.add_row(*[_text(cell) for cell in cells], key=key)

    def set_cells(self, key: str, values: dict[str, Any]) -> None:
        """Update the cells whose value or style changed (each result re-sends every row)."""
        if key not in self.rows:
            return
        changed = False
        self._rows_only = True
        try:
            for column, value in values.items():
                value = _text(value)
                old = self.get_cell(key, column)
                if old == value and getattr(old, "style", None) == value.style:
                    continue
                width, old_width = value.cell_len, _width(old)
                widest = self.columns[ColumnKey(column)].content_width
                resize = width > widest or (old_width >= widest and width < old_width)
                self.update_cell(key, column, value, update_width=resize)
                changed = True
        finally:
            self._rows_only = False
        if changed:
            self.refresh_row(self.get_row_index(key))

    def reset_rows(self, keys: Iterable[str]) -> None:
        """Blank every value cell of `keys` (a new session), keeping the rows and their order."""
        value_columns = [key for key, _ in self.COLUMNS[2:]]
        for key in keys:
            self.set_cells(key, dict.fromkeys(value_columns, PENDING_CELL))

    def blank(self, steps: Iterable[str]) -> None:
        """Blank the rows of `steps` (steps with no result in the state)."""
        steps = set(steps)
        self.reset_rows([str(k.value) for k in self.rows if str(k.value).split("/", 1)[0] in steps])


class ShapesTable(LiveTable):
    """Each component's inputs and outputs: shape and dtype on both runtimes; mismatches highlighted."""

    COLUMNS = (("step", "step"), ("tensor", "tensor"), ("reference", "reference"), ("candidate", "candidate"),
               ("match", "match"))

    def prime(self) -> None:
        for step in COMPONENTS:
            for io, names in (("in", INPUTS[step]), ("out", OUTPUTS[step])):
                for name in names:
                    self.ensure_row(f"{step}/{io}/{name}", [step, f"{io}: {name}", PENDING_CELL, PENDING_CELL,
                                                            PENDING_CELL])

    def show(self, result: StepResult) -> None:
        if result.name not in INPUTS:
            return
        for info in result.inputs:
            key = f"{result.name}/in/{info.name}"
            self.ensure_row(key, [result.name, f"in: {info.name}", "", "", ""])
            self.set_cells(key, {"reference": _tensor(info), "candidate": Text("same input", style="dim"),
                                 "match": Text("", style="dim")})
        compared = {c.name: c for c in result.comparisons}
        candidates = {t.name: t for t in result.candidate_outputs}
        for info in result.reference_outputs:
            key = f"{result.name}/out/{info.name}"
            self.ensure_row(key, [result.name, f"out: {info.name}", "", "", ""])
            comparison = compared.get(info.name)
            cand = comparison.candidate if comparison is not None else candidates.get(info.name)
            if comparison is not None and cand is not None:
                match = Text("✓", style="green") if comparison.shape_match else \
                    Text("✗ shape", style="bold white on red")
                cand_cell = _tensor(cand, bad=not comparison.shape_match)
            elif result.comparisons or result.candidate_outputs:
                match, cand_cell = Text("not exposed", style="dim"), Text(DASH, style="dim")
            else:
                match, cand_cell = state_text(result.status), Text(DASH, style="dim")
            self.set_cells(key, {"reference": _tensor(info), "candidate": cand_cell, "match": match})


def _widened(value: Any, lines: list[list[Segment]], width: int, new_width: int, padding: int) -> Any:
    """A one-line, left-aligned `Text` cell rendered at `width`, at the wider `new_width`: the same segments with
    the difference in blanks before the right padding, styled as that padding (Rich pads the text with the
    padding's style, then DataTable styles both alike). None when the cell is anything else (Rich renders it)."""
    if new_width <= width or not isinstance(value, Text) or value.justify not in (None, "default") or \
            "\n" in value.plain or value.cell_len > width - 2 * padding or len(lines) != 1:
        return None
    line = lines[0]
    if not line or line[-1].text != " " * padding or padding == 0 or Segment.get_line_length(line) != width:
        return None
    right = line[-1]
    return [[*line[:-1], Segment(" " * (new_width - width), right.style), right]]


def _text(value: Any) -> Text:
    """A cell as Text: DataTable would parse a `str` as markup each time it renders it."""
    return value if isinstance(value, Text) else Text(str(value), end="")


def _width(value: Any) -> int:
    return value.cell_len if isinstance(value, Text) else len(str(value))


def _tensor(info: TensorInfo, bad: bool = False) -> Text:
    return Text(f"{shape(info.shape)} {info.dtype}", style="bold white on red" if bad else "")


class TimingsTable(LiveTable):
    """Prepare, load, first, median, p90 (ms), real-time factor and speedup, per step and runtime."""

    COLUMNS = (("step", "step"), ("runtime", "runtime"), ("prepare", "prepare ms"), ("load", "load ms"),
               ("first", "first ms"), ("median", "median ms"), ("p90", "p90 ms"), ("rtf", "RTF"),
               ("speedup", "speedup"))

    def __init__(self, labels: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.labels = dict(labels or {})

    def prime(self, labels: dict[str, str] | None = None) -> None:
        """The rows, with each runtime's label (`labels`: the session's; by default the ones it was built with)."""
        if labels is not None:
            self.labels = dict(labels)
        labels = self.labels
        for step in STEPS:
            for side in SIDES:
                key = f"{step}/{side}"
                self.ensure_row(key, [step, labels.get(side, side), *([PENDING_CELL] * 7)])
                self.set_cells(key, {"runtime": labels.get(side, side)})

    def show(self, result: StepResult, duration_s: float) -> None:
        rtf = result.to_json(duration_s)["rtf"]
        for side in SIDES:
            t = result.timings.get(side)
            key = f"{result.name}/{side}"
            if t is None:
                self.set_cells(key, dict.fromkeys(("prepare", "load", "first", "median", "p90", "rtf", "speedup"),
                                                  Text(DASH, style="dim")))
                continue
            prepare = ms(t.prepare_ms) + (" (cached)" if t.cached else "")
            speed: Any = DASH
            if side == "candidate" and result.speedup is not None:
                speed = Text(f"{result.speedup:.2f}×", style="green" if result.speedup >= 1 else "yellow")
            self.set_cells(key, {"prepare": prepare, "load": ms(t.load_ms), "first": ms(t.first_ms),
                                 "median": ms(t.median_ms), "p90": ms(t.p90_ms), "rtf": num(rtf.get(side)),
                                 "speedup": speed})


class DiffsTable(LiveTable):
    """Diff statistics per output, pass/fail coloured against the tolerance the core applied."""

    COLUMNS = (("step", "step"), ("output", "output"), ("max_abs", "max abs"), ("at", "at index"),
               ("mean_abs", "mean abs"), ("rmse", "RMSE"), ("max_rel", "max rel"), ("cosine", "cosine"),
               ("snr", "SNR dB"), ("naninf", "NaN/Inf"), ("argmax", "argmax agree"), ("tol", "atol / rtol"),
               ("result", "result"))
    FLOORS: ClassVar[dict[str, int]] = {  # `num`'s 3 digits in scientific notation, `cosine`'s "1 - x", a 4-D index
        "max_abs": 8, "at": 14, "mean_abs": 8, "rmse": 8, "max_rel": 8, "cosine": 11, "tol": 16}

    def prime(self) -> None:
        for step in COMPONENTS:
            for name in OUTPUTS[step]:
                self.ensure_row(f"{step}/{name}", [step, name, *([PENDING_CELL] * 11)])
        self.ensure_row("decode/tokens", ["decode", "tokens", *([PENDING_CELL] * 11)])

    def show(self, result: StepResult, token_agreement: float | None = None) -> None:
        if result.name == "decode":
            cells: dict[str, Any] = dict.fromkeys(("max_abs", "at", "mean_abs", "rmse", "max_rel", "cosine", "snr",
                                                   "naninf", "tol"), Text(DASH, style="dim"))
            cells["argmax"] = num(token_agreement) if token_agreement is not None else Text(DASH, style="dim")
            cells["result"] = state_text(result.status, step="decode")
            self.set_cells("decode/tokens", cells)
            return
        compared = {c.name: c for c in result.comparisons}
        for name in OUTPUTS.get(result.name, ()):
            comparison = compared.get(name)
            key = f"{result.name}/{name}"
            if comparison is None or comparison.stats is None:
                note = comparison.note if comparison is not None and comparison.note else None
                cells = dict.fromkeys([k for k, _ in self.COLUMNS[2:]], Text(DASH, style="dim"))
                if comparison is not None:
                    cells["result"] = passfail(comparison.ok) if comparison.candidate is not None else \
                        Text(note or "not exposed", style="dim")
                else:
                    cells["result"] = state_text(result.status) if result.status != Status.MISMATCH else passfail(False)
                self.set_cells(key, cells)
                continue
            self.set_cells(key, _stats_cells(comparison.stats, comparison.atol, comparison.rtol, comparison.ok))


def _stats_cells(s: DiffStats, atol: float | None, rtol: float | None, ok: bool | None) -> dict[str, Any]:
    bad = "bold red"
    nan_inf = f"{s.nan.get('candidate', 0)}/{s.inf.get('candidate', 0)}"
    return {
        "max_abs": Text(num(s.max_abs), style="" if ok else bad),
        "at": shape(s.max_abs_index) if s.max_abs_index is not None else DASH,
        "mean_abs": num(s.mean_abs),
        "rmse": num(s.rmse),
        "max_rel": num(s.max_rel),
        "cosine": cosine(s.cosine),
        "snr": num(s.snr_db),
        "naninf": Text(nan_inf, style=bad if nan_inf != "0/0" else ""),
        "argmax": num(s.argmax_agreement) if s.argmax_agreement is not None else DASH,
        "tol": f"{num(atol)} / {num(rtol)}",
        "result": passfail(ok),
    }
