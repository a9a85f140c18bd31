"""The model panel before the summary comes: its rows, pending, from the first frame (so the summary's arrival
does not grow the panel and re-lay out everything below it). No engine runs here."""

from __future__ import annotations

from rnnt_tui.app.app import RnntApp
from rnnt_tui.app.choices import RuntimeChoices
from rnnt_tui.app.widgets.model_panel import PENDING_ROWS, ModelPanel
from rnnt_tui.paths import demo_audio, demo_checkpoint


class IdleApp(RnntApp):
    def on_ready(self) -> None:  # no engine: the summary never comes
        pass


async def test_the_pending_rows_show_from_the_first_frame() -> None:
    app = IdleApp(demo_checkpoint(), demo_audio(), RuntimeChoices(against="onnx"))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.1)
        panel = app.query_one("#model-panel", ModelPanel)
        assert panel.size.height == len(PENDING_ROWS) + 1  # the rows and the status line
        text = "\n".join(strip.text for strip in panel.render_lines(panel.region.reset_offset))
        assert "encoder" in text and "clip" in text and "reading the checkpoint…" in text
        panel.show(status="no model open · o opens a checkpoint")  # not pending: one line says so
        for _ in range(100):  # laid out on a later frame
            await pilot.pause(0.02)
            if panel.size.height == 1:
                break
        assert panel.size.height == 1
