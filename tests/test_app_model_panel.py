"""The model panel before the summary comes: its rows, pending, from the first frame (so the summary's arrival
does not grow the panel and re-lay out everything below it). No engine runs here."""

from __future__ import annotations

from idle_app import IdleApp

from rnnt_tui.app.choices import RuntimeChoices
from rnnt_tui.app.widgets.model_panel import PENDING_ROWS, ModelPanel
from rnnt_tui.paths import demo_audio, demo_checkpoint


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


async def test_the_fuse_panel_keeps_its_height_when_the_flags_come() -> None:
    """Validation mode is explained while the checkpoint is read, so the saved flags' arrival (and the restored
    joint's) leave the overview's height as it was."""
    from rnnt_tui.app.widgets.fuse_panel import FusePanel
    from rnnt_tui.core.fuse import VALIDATION, JointMode, explain

    app = IdleApp(demo_checkpoint(), demo_audio(), RuntimeChoices(against="onnx"))
    async with app.run_test(size=(120, 40)) as pilot:
        panel, overview = app.query_one(FusePanel), app.query_one("#overview")
        pending, seen = (0, 0), (-1, -1)
        for _ in range(100):  # laid out (the first layouts come a frame or more apart on a busy machine)
            await pilot.pause(0.02)
            pending, seen = (panel.size.height, overview.size.height), pending
            if pending == seen and pending[0] > 0:
                break
        assert explain(VALIDATION, None).split(" - ")[0] in str(app.query_one("#fuse-explain").render())
        saved = JointMode(fuse_loss_wer=True, fused_batch_size=4, log_softmax=None)
        panel.show_saved(saved)
        panel.show_used(VALIDATION, JointMode(False, 4, False), "logits of shape [1, 4, 2, 29] (raw logits)")
        flags = app.query_one("#fuse-flags")
        for _ in range(100):  # drawn (and laid out, if it were to grow) on a later frame
            await pilot.pause(0.02)
            if "after restore" not in "".join(s.text for s in flags.render_lines(flags.region.reset_offset)):
                break
        for _ in range(3):
            await pilot.pause(0.02)
        assert "after restore" not in "".join(s.text for s in flags.render_lines(flags.region.reset_offset))
        assert (panel.size.height, overview.size.height) == pending
