"""The key bar (`widgets/footer.KeyFooter`): composed once after the first frame, kept while the keys it shows stay
the same (Textual's `Footer` recomposed on every publication of the screen's bindings: focus, tab switches), and
composed again when they change. No engine runs here."""

from __future__ import annotations

from idle_app import IdleApp
from textual.widgets._footer import FooterKey

from rnnt_tui.app.app import RnntApp
from rnnt_tui.app.choices import RuntimeChoices
from rnnt_tui.app.widgets.footer import CHECK_AFTER, KeyFooter
from rnnt_tui.paths import demo_audio, demo_checkpoint


def _keys(app: RnntApp) -> list[FooterKey]:
    return list(app.query_one(KeyFooter).query(FooterKey))


async def test_the_keys_are_composed_once_and_again_only_when_they_change() -> None:
    app = IdleApp(demo_checkpoint(), demo_audio(), RuntimeChoices(against="onnx"))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(CHECK_AFTER * 3)
        keys = _keys(app)
        shown = {key.description: key.key_display for key in keys}
        assert shown["Run all"] == "r" and shown["Next step"] == "n" and "Prev step" not in shown  # show=False
        assert not any(key.has_class("-compact") for key in keys if not key.has_class("-command-palette"))
        for pane in ("2", "5", "1"):  # tab switches and focus changes publish the bindings again
            await pilot.press(pane)
            await pilot.pause(CHECK_AFTER * 2)
        app.screen.refresh_bindings()
        await pilot.pause(CHECK_AFTER * 2)
        assert _keys(app) == keys  # the same widgets: not composed again
        app.update_keymap({"rnnt.run_all": "R"})  # a key shown changes: composed again
        await pilot.pause(CHECK_AFTER * 3)
        shown = {key.description: key.key_display for key in _keys(app)}
        assert shown["Run all"] == "R" and _keys(app) != keys


async def test_narrow_keys_are_compact_like_textuals() -> None:
    """Keys built in the footer's compact state look as Textual's own: each bound key takes the footer's `compact`
    (and its class: a preset value runs no watcher), the command palette's key is not bound and stays compact."""
    app = IdleApp(demo_checkpoint(), demo_audio(), RuntimeChoices(against="onnx"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(CHECK_AFTER * 3)
        footer = app.query_one(KeyFooter)
        assert footer.compact
        keys = _keys(app)
        assert keys and all(key.compact and key.has_class("-compact") for key in keys)
