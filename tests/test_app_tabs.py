"""The tabs other than Step are mounted when first shown and drawn from the app's state then (issue 21: the first
frame lays out the Step tab only). No engine runs here: the app's background work is not started."""

from __future__ import annotations

from textual.widgets import Input, RadioButton

from rnnt_tui.app.app import RnntApp
from rnnt_tui.app.choices import RuntimeChoices
from rnnt_tui.app.widgets.runtime_panel import RuntimePanel
from rnnt_tui.app.widgets.tables import PENDING_CELL, DiffsTable, TimingsTable
from rnnt_tui.core.runtimes.base import Availability
from rnnt_tui.paths import demo_audio, demo_checkpoint


class IdleApp(RnntApp):
    def on_ready(self) -> None:  # no engine: only what the widgets draw from the state
        pass


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
