"""The Streaming tab's view of a fixed-window comparison (`w`, `stream --window`): a window timeline, the transcripts
growing window by window, and the words lost, doubled or changed at each seam.

Renders a plain result and computes nothing: the `to_json` dict of `core.stream.windows`' `WindowsResult` (whole, or
growing: `add_window` takes one window's JSON as a `WindowCompared` event arrives; `start` shows what was asked before
the first one). One column per window: its encoder drift as a heat cell (`stream_view.heat`), its time span, whether
the two runtimes kept the same text, and marks for the edits at the seam on its right (lost, doubled, changed,
added; red on the candidate's side, yellow on NeMo's windowed one). Only the columns that fit the width are drawn,
around the cursor. `n` / `p` step the cursor one window (the merged transcripts show up to it: each window's piece,
`Window.reference_piece`, so a word glued across a seam shows as merged); under them the full-context transcript and
the seam table. Why a view of its own: porters of offline models run them in fixed
windows (the common Core ML export takes 15 s), and the words lost at the seams are what they need to see.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Static

from rnnt_tui.app.widgets.stream_view import heat

#: an edit's kind as a seam mark, and the words the legend gives it
MARKS = {"lost": "L", "doubled": "D", "changed": "C", "added": "A"}
#: each side of the comparison: the words the seam table uses, the style of its seam marks
SIDES = {"reference": ("NeMo windowed", "bold yellow"), "candidate": ("candidate", "bold red")}
LABEL_W = 7  # the timeline's row-label column
DEFAULT_ATOL = 1e-3  # until the whole report says its tolerance (the core's default for windows)


def seconds(value: float) -> str:
    """Seconds as short as they read (15, 1.75, 3.51)."""
    return f"{round(value, 2):g}"


class WindowsView(VerticalScroll):
    """A fixed-window comparison, window by window (scrolls when taller than the tab)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "step(1)", "Next window", tooltip="Show the windowed transcripts up to the next window",
                id="windows.next"),
        Binding("p", "step(-1)", "Previous window", tooltip="Show the windowed transcripts up to the previous window",
                id="windows.previous"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.report: dict[str, Any] = {"windows": []}
        self.cursor = 0

    def compose(self) -> Any:
        yield Static(id="windows-body")

    # -- what the app calls -----------------------------------------------------------------------------
    def start(self, asked: dict[str, Any]) -> None:
        """A run begins: what was asked (reference and candidate labels, window_s, overlap_s, mel_left_s)."""
        self.report = {**asked, "windows": []}
        self.cursor = 0
        self.refresh_view()

    def add_window(self, window: dict[str, Any], total: int) -> None:
        self.report["windows"].append(window)
        self.report["total"] = total
        self.cursor = len(self.report["windows"]) - 1
        self.refresh_view()

    def show(self, report: dict[str, Any]) -> None:
        """The whole report (the cursor stays where the user put it, on the last window if it was following)."""
        following = self.cursor >= len(self.report.get("windows", [])) - 1
        self.report = report
        last = len(report["windows"]) - 1
        self.cursor = max(0, last if following else min(self.cursor, last))
        self.refresh_view()

    @property
    def whole(self) -> bool:
        return "seams" in self.report

    def action_step(self, delta: int) -> None:
        self.cursor = max(0, min(len(self.report["windows"]) - 1, self.cursor + delta))
        self.refresh_view()

    # -- drawing --------------------------------------------------------------------------------------------
    def on_mount(self) -> None:
        self.refresh_view()

    def on_resize(self) -> None:
        self.refresh_view()

    def refresh_view(self) -> None:
        if self.is_mounted:
            self.query_one("#windows-body", Static).update(self.renderable_for())

    def renderable_for(self) -> Group:
        windows = self.report["windows"]
        if "window_s" not in self.report:
            return Group(Text("No windowed comparison yet: w runs one.", style="dim"))
        parts: list[Any] = [self.header()]
        if windows:
            parts += [self.timeline(), self.transcripts()]
        parts.append(self.seam_table())
        return Group(*parts)

    def header(self) -> Text:
        r = self.report
        count = len(r["windows"])
        so_far = f"{count} windows" if self.whole else f"{count} of {r['total']} windows" if "total" in r else "windows"
        line = Text.assemble((f"{r.get('reference', 'NeMo / PyTorch')} vs {r.get('candidate', 'candidate')}", "bold"),
                             f": {so_far} of {seconds(r['window_s'])} s, overlap {seconds(r['overlap_s'])} s, "
                             f"mel left context {seconds(r['mel_left_s'])} s")
        if r.get("packages"):
            line.append(f"\nthrough your packages: {r['packages']}")
        if "merge_rule" in r:
            line.append(f"\nmerge: {r['merge_rule']}", style="dim")
        for note in r.get("notes", []):  # where the window came from, whose tolerance judged it
            line.append(f"\n{note}", style="dim")
        return line

    def shown_windows(self) -> range:
        """The windows whose columns fit the width, the cursor among them."""
        n = len(self.report["windows"])
        per = max(len(self.span(w)) for w in self.report["windows"]) + 3  # a cell, its padding and rule
        fits = max(1, (max(self.size.width, 40) - LABEL_W - 4) // per)
        first = max(0, min(self.cursor - fits // 2, n - fits))
        return range(first, min(n, first + fits))

    @staticmethod
    def span(window: dict[str, Any]) -> str:
        return f"{seconds(window['start_s'])}-{seconds(window['end_s'])}"

    def seam_marks(self, side: str) -> dict[int, Text]:
        """The marks of each seam's edits on `side`, by the index of the window on its left."""
        marks: dict[int, Text] = {}
        for seam in self.report.get("seams", []):
            kinds = "".join(MARKS.get(e["kind"], "?") for e in seam["edits"] if e["side"] == side)
            if kinds:
                marks[seam["index"]] = Text(kinds, style=SIDES[side][1])
        return marks

    def timeline(self) -> Group:
        windows, shown = self.report["windows"], self.shown_windows()
        atol = float(self.report.get("tolerance", {}).get("atol", DEFAULT_ATOL))
        title = "Window timeline: encoder drift, kept text alike, edits at the seam on each window's right"
        if len(shown) < len(windows):
            title += f" · windows {shown.start}-{shown.stop - 1} of {len(windows)}"
        table = Table()
        table.add_column("", width=LABEL_W, no_wrap=True)
        for i in shown:
            table.add_column(f"{'▶' if i == self.cursor else ''}{i}", justify="center", no_wrap=True)
        marks = {side: self.seam_marks(side) for side in SIDES}
        rows: dict[str, list[str | Text]] = {"span s": [], "drift": [], "text": [], "NeMo ▸": [], "cand ▸": []}
        for i in shown:
            w = windows[i]
            rows["span s"].append(self.span(w))
            drift = w["encoder_max_abs"]
            finite = isinstance(drift, (int, float)) and math.isfinite(drift)
            rows["drift"].append(heat(drift if finite else None, atol))
            same = w["reference_text"] == w["candidate_text"]
            rows["text"].append(Text("=" if same else "≠", style="green" if same else "bold red"))
            no_seam = Text("" if i == len(windows) - 1 or not self.whole else "·", style="dim")
            rows["NeMo ▸"].append(marks["reference"].get(i, no_seam))
            rows["cand ▸"].append(marks["candidate"].get(i, no_seam))
        for name, cells in rows.items():
            table.add_row(name, *cells)
        return Group(Text(title, style="bold"), table)

    def transcripts(self) -> Text:
        windows = self.report["windows"]
        upto = windows[: self.cursor + 1]
        w = windows[self.cursor]
        ref = "".join(x["reference_piece"] for x in upto)  # the merged transcripts through this window
        cand = "".join(x["candidate_piece"] for x in upto)
        full = self.report.get("full_text")
        legend = "  ".join(f"{m} {kind}" for kind, m in MARKS.items())
        return Text.assemble(
            (f"to window {self.cursor} ({self.span(w)} s, keeps {seconds(w['keep_from_s'])}-"
             f"{seconds(w['keep_to_s'])} s):  n next · p previous\n", "dim"),
            ("NeMo windowed: ", "bold"), ref, "\n", ("candidate:     ", "bold"), (cand, "" if cand == ref else "red"),
            "\n", ("full context:  ", "bold"),
            (full, "") if full is not None else ("(once every window has run)", "dim"),
            "\n", (f"▸ the edits at the seam on a window's right, NeMo windowed and candidate: {legend}", "dim"))

    def seam_rows(self) -> list[tuple[str, str, str, str, str, str]]:
        """The seam table's rows: seam s, side, kind, at s, full-context words, windowed words."""
        return [(f"{seam['time_s']:.2f}", SIDES[e["side"]][0], e["kind"], f"{e['time_s']:.2f}", e["full"],
                 e["windowed"]) for seam in self.report.get("seams", []) for e in seam["edits"]]

    def seam_table(self) -> Table | Text:
        if not self.whole:
            return Text("Seams: compared with the full-context transcript once every window has run.", style="dim")
        rows = self.seam_rows()
        if not rows:
            return Text("Seams: no word lost, doubled or changed at any seam.", style="green")
        table = Table(title="Seams: words lost, doubled or changed against the full-context transcript",
                      title_justify="left")
        for column in ("seam s", "side", "kind", "at s", "full context", "windowed"):
            table.add_column(column, justify="right" if column.endswith(" s") else "left")
        for row in rows:
            table.add_row(*row)
        return table
