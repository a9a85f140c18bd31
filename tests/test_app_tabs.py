"""The tabs other than Step are mounted when first shown and drawn from the app's state then (issue 21: the first
frame lays out the Step tab only). No engine runs here: the app's background work is not started."""

from __future__ import annotations

import asyncio

from idle_app import IdleApp
from rich.text import Text
from textual.widgets import Input, RadioButton, TabbedContent
from textual.widgets.data_table import ColumnKey

from rnnt_tui.app.choices import RuntimeChoices
from rnnt_tui.app.widgets.runtime_panel import RuntimePanel
from rnnt_tui.app.widgets.tables import PENDING_CELL, DiffsTable, ShapesTable, TimingsTable
from rnnt_tui.core.runtimes.base import Availability
from rnnt_tui.paths import demo_audio, demo_checkpoint


async def test_tabs_are_mounted_when_shown_and_drawn_from_the_state() -> None:
    app = IdleApp(demo_checkpoint(), demo_audio(), RuntimeChoices(against="onnx", runs=3))
    async with app.run_test(size=(120, 40)) as pilot:
        assert not app.query(DiffsTable) and not app.query(RuntimePanel)
        app.state.availability = {"coreml": Availability(ok=False, reason="needs macOS")}
        app.draw_tabs("tab-runtimes")  # a change while the tab is not shown: drawn when it is
        await pilot.press("5")
        await pilot.pause(0.2)
        assert app.query_one("#against-onnx", RadioButton).value
        assert app.query_one("#against-coreml", RadioButton).disabled
        assert app.query_one("#runs", Input).value == "3"
        await pilot.press("2")
        await pilot.pause(0.2)
        table = app.query_one(DiffsTable)
        assert table.get_cell("encoder/encoded", "result") == PENDING_CELL
        assert str(app.query_one(TimingsTable).get_cell("encoder/reference", "runtime")) == "NeMo / PyTorch"


async def test_the_tables_are_mounted_ahead_one_widget_per_frame_and_shown_whole() -> None:
    """`premount_tables` (called when a session is ready) mounts the Tables tab's widgets while it is hidden; a
    tab switch in the middle finishes the mount at once: one set of tables, rows primed, nothing mounted twice."""
    app = IdleApp(demo_checkpoint(), demo_audio(), RuntimeChoices(against="onnx"))
    async with app.run_test(size=(120, 40)) as pilot:
        app.premount_tables()
        for _ in range(200_000):  # one widget per frame: 8 frames
            if "tab-tables" in app.mounted_panes:
                break
            app.premount_tables()  # asked again meanwhile (SessionReady after ModelRestored): mounted once
            await asyncio.sleep(0)  # every turn of the loop, so also while the last widget is in flight
        await pilot.pause(0.1)
        assert len(app.query("#tables")) == 1
        assert app.query_one(TabbedContent).active == "tab-step"
        assert "tab-tables" in app.mounted_panes and not app.premounting
        assert app.query_one(DiffsTable).get_cell("joint/logits", "result") == PENDING_CELL

    app = IdleApp(demo_checkpoint(), demo_audio(), RuntimeChoices(against="onnx"))
    async with app.run_test(size=(120, 40)) as pilot:
        app.premount_tables()
        await pilot.press("2")  # before the premount has finished
        await pilot.pause(0.3)
        assert len(app.query(DiffsTable)) == len(app.query(TimingsTable)) == len(app.query(ShapesTable)) == 1
        assert [w.id for w in app.query_one("#tables").children] == [
            "transcript-line", None, "diffs", None, "timings", None, "shapes"]
        assert str(app.query_one(TimingsTable).get_cell("joint/candidate", "runtime")) == "ONNX Runtime"


async def test_a_column_is_resized_only_when_its_width_can_change() -> None:
    app = IdleApp(demo_checkpoint(), demo_audio(), RuntimeChoices(against="onnx"))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await pilot.pause(0.2)
        table = app.query_one(DiffsTable)
        column = table.columns[ColumnKey("rmse")]
        start = column.content_width
        table.set_cells("encoder/encoded", {"rmse": "1.234567890123"})  # wider: the column grows
        await pilot.pause(0.1)
        assert column.content_width == len("1.234567890123") > start
        table.set_cells("joint/logits", {"rmse": "0.5"})  # narrower than the widest: nothing to measure
        await pilot.pause(0.1)
        assert column.content_width == len("1.234567890123")
        table.set_cells("encoder/encoded", {"rmse": "0.25"})  # the widest shrank: measured again
        await pilot.pause(0.1)
        assert column.content_width == start
        assert isinstance(table.get_cell("encoder/encoded", "rmse"), Text)  # never parsed as markup


async def test_the_tables_paint_exactly_what_a_fresh_render_paints() -> None:
    """A cell update repaints its row only and cells keep their rendered lines (`LiveTable`): after updates that
    grow, keep and shrink columns, the lines on screen equal those of a render from scratch (all caches dropped)."""
    from textual.geometry import Region

    app = IdleApp(demo_checkpoint(), demo_audio(), RuntimeChoices(against="onnx"))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await pilot.pause(0.2)
        table = app.query_one(DiffsTable)
        shown = []
        for cells in ({"rmse": "1.234567890123", "result": Text("pass", style="bold green")},  # grows
                      {"rmse": "0.5", "cosine": "1 - 2.0e-07"},  # narrower / another column grows
                      {"rmse": "0.25", "result": Text("FAIL", style="bold white on red")}):  # the widest shrank
            table.set_cells("encoder/encoded", cells)
            table.set_cells("joint/logits", {"max_abs": "3.5e-06"})
            await pilot.pause(0.1)
            whole = Region(0, 0, *table.size)
            shown = [list(strip) for strip in table.render_lines(whole)]
            table.notify_style_update()  # drops every cache (DataTable's and LiveTable's) and repaints it all
            await pilot.pause(0.1)
            assert shown == [list(strip) for strip in table.render_lines(whole)]
        assert any("1 - 2.0e-07" in "".join(s.text for s in line) for line in shown)


async def test_work_deferred_a_frame_survives_a_modal_dismissed_before_it_refreshed() -> None:
    """`after_frame` queues on the main screen: Textual's `call_after_refresh` queues on the screen on top, and a
    modal dismissed before its next refresh dropped it (the runtime check of a session that became ready under the
    error modal was never asked)."""
    from textual.screen import ModalScreen

    app = IdleApp(demo_checkpoint(), demo_audio(), RuntimeChoices(against="onnx"))
    async with app.run_test(size=(120, 40)) as pilot:
        ran: list[str] = []
        app.push_screen(ModalScreen())
        await pilot.pause(0.1)
        main, modal = app.screen_stack
        queued = len(main._callbacks), len(modal._callbacks)  # Textual's own may be pending on a loaded machine
        app.after_frame(ran.append, "ours")
        # queued where the modal's dismissal cannot drop it
        assert (len(main._callbacks), len(modal._callbacks)) == (queued[0] + 1, queued[1])
        app.pop_screen()  # before the modal's next refresh
        await pilot.pause(0.3)
        assert ran == ["ours"]


async def test_a_chain_of_work_deferred_a_frame_lets_the_event_loop_run_between_its_links() -> None:
    """With nothing to paint, Textual runs a screen's queued callbacks at its next idle, and hands its pump the next
    message without yielding: a chain of `after_frame` callbacks (the Tables tab warmed a few lines a frame) ran
    back to back as one 50-70 ms stall, the UI's timers and keys waiting. Each link now sees the loop turn."""
    app = IdleApp(demo_checkpoint(), demo_audio(), RuntimeChoices(against="onnx"))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        turns = [0]

        async def spin() -> None:
            while True:
                turns[0] += 1
                await asyncio.sleep(0)

        seen: list[int] = []

        def link() -> None:
            seen.append(turns[0])
            if len(seen) < 5:
                app.after_frame(link)

        spinner = asyncio.create_task(spin())
        app.after_frame(link)
        await pilot.pause(0.3)
        spinner.cancel()
        assert len(seen) == 5
        assert seen == sorted(set(seen)), seen  # each link in a later turn of the loop


async def test_the_tables_made_ahead_are_taken_out_of_the_cyclic_gc_once_warmed() -> None:
    """The Tables tab, mounted and warmed ahead, is the last of the app's long-lived objects: once its tables are
    warmed they are frozen (`gc.freeze`), so no full collection walks them again while the steps run."""
    import gc
    import time

    from rnnt_tui.app.widgets.tables import LiveTable

    app = IdleApp(demo_checkpoint(), demo_audio(), RuntimeChoices(against="onnx"))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.1)
        app.premount_tables()
        deadline = time.monotonic() + 30
        while "tab-tables" not in app.mounted_panes or \
                any(getattr(t, "_warmed", 0) < t.header_height + t.row_count for t in app.query(LiveTable)):
            assert time.monotonic() < deadline
            await pilot.pause(0.05)
        await pilot.pause(0.1)
        tables = list(app.query(LiveTable))
        assert len(tables) == 3
        tracked = {id(o) for o in gc.get_objects()}  # every generation but the frozen one
        assert not any(id(t) in tracked for t in tables)


async def test_resizing_the_terminal_across_120_columns_switches_the_layout() -> None:
    """A terminal resized from 120x40 to 80x24 gets the narrow layout (the Model tab, the compact key bar), and back;
    the layout used to keep the size the app started with (the resize handler read the size before Textual set it)."""
    from rnnt_tui.app.widgets.footer import KeyFooter

    app = IdleApp(demo_checkpoint(), demo_audio())
    async with app.run_test(size=(120, 40)) as pilot:
        tabs = app.query_one(TabbedContent)
        assert not app.has_class("-narrow") and tabs.get_tab("tab-model").has_class("-hidden")
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.2)
        assert app.has_class("-narrow") and app.query_one(KeyFooter).compact
        assert not tabs.get_tab("tab-model").has_class("-hidden")
        await pilot.resize_terminal(120, 40)
        await pilot.pause(0.2)
        assert not app.has_class("-narrow") and tabs.get_tab("tab-model").has_class("-hidden")
