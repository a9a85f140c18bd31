"""Updates that keep a widget's size repaint it without a layout of the screen: `update_in_place` (content of
another height, or sized to its content another width, still gets one, so nothing is cut or left stale) and the
status line (a job starting, progressing and ending). Layouts are counted on the real Textual screen."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.screen import Screen
from textual.widgets import Static

from rnnt_tui.app.widgets.in_place import update_in_place
from rnnt_tui.app.widgets.status import StatusLine


class CountingScreen(Screen[None]):
    layouts = 0

    def compose(self) -> ComposeResult:
        yield Static("one line", id="box")
        yield Static("flags", id="narrow")
        yield Static("below", id="below")
        yield Static("one of two", id="tall")
        yield StatusLine(id="status")

    def _refresh_layout(self, *args: Any, **kwargs: Any) -> None:
        CountingScreen.layouts += 1
        super()._refresh_layout(*args, **kwargs)


class Boxes(App[None]):
    CSS = "#box { height: auto; } #narrow { width: auto; min-width: 20; height: 1; } #tall { min-height: 2; }"

    def on_mount(self) -> None:
        self.push_screen(CountingScreen())


async def settled(pilot: Any) -> int:
    """Layouts done once the screen has settled."""
    for _ in range(3):
        await pilot.pause(0.05)
    return CountingScreen.layouts


def text_of(widget: Static) -> str:
    return "\n".join(strip.text for strip in widget.render_lines(widget.region.reset_offset)).strip()


async def test_same_size_content_repaints_without_a_layout_and_other_sizes_get_one() -> None:
    app = Boxes()
    async with app.run_test(size=(60, 12)) as pilot:
        box, narrow, below = (app.screen.query_one(f"#{name}", Static) for name in ("box", "narrow", "below"))
        before = await settled(pilot)
        update_in_place(box, Text("another line"))  # one line for one line
        update_in_place(narrow, Text("fits in 20"))  # within its min-width
        update_in_place(app.screen.query_one("#tall", Static), Text("two\nlines"))  # within its min-height
        after = await settled(pilot)
        assert after == before
        assert text_of(box) == "another line" and text_of(narrow) == "fits in 20"
        assert below.region.y == 2

        update_in_place(box, Text("three\nlines\nnow"))  # taller: laid out, the widget below moves down
        assert await settled(pilot) > after
        assert box.size.height == 3 and below.region.y == 4
        assert [line.strip() for line in text_of(box).splitlines()] == ["three", "lines", "now"]

        grown = await settled(pilot)
        update_in_place(narrow, Text("wider than its twenty-cell minimum"))  # sized to content: wider
        assert await settled(pilot) > grown
        assert narrow.size.width == len("wider than its twenty-cell minimum")


async def test_the_status_line_shows_jobs_without_a_layout_and_gives_an_idle_text_the_whole_line() -> None:
    app = Boxes()
    async with app.run_test(size=(70, 12)) as pilot:
        status = app.screen.query_one(StatusLine)
        before = await settled(pilot)
        status.working("Exporting the encoder…", 0.47)
        await settled(pilot)
        assert "Exporting the encoder…" in text_of(status) and "47%" in text_of(status)
        status.working("Restoring…")  # fraction unknown: a pulse, no percentage
        await settled(pilot)
        assert "Restoring…" in text_of(status) and "%" not in text_of(status)
        reason = "bad.nemo not opened: not a readable .nemo archive: not a tar file"  # 65 of 70 columns
        status.idle(reason)
        assert await settled(pilot) == before
        assert text_of(status) == reason and status.text == reason and not status.busy
