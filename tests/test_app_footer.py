"""The key bar (`widgets/footer.KeyFooter`): one widget that draws the keys from the first frame (Textual's `Footer`
composed a widget per key after it, a ~25 ms frame of its own), repaints when the keys change, and does what
`Footer` does with the mouse: a click presses the key, a hovered key shows its tooltip, the wheel scrolls keys that
do not fit. No engine runs here."""

from __future__ import annotations

from idle_app import IdleApp

from rnnt_tui.app.choices import RuntimeChoices
from rnnt_tui.app.screens.help import HelpScreen
from rnnt_tui.app.widgets.footer import EDGE, KeyFooter
from rnnt_tui.paths import demo_audio, demo_checkpoint


def _app() -> IdleApp:
    return IdleApp(demo_checkpoint(), demo_audio(), RuntimeChoices(against="onnx"))


def _line(footer: KeyFooter) -> str:
    return footer.render().plain


async def test_the_keys_are_drawn_from_the_first_frame_by_one_widget() -> None:
    app = _app()
    async with app.run_test(size=(120, 40)) as pilot:
        footer = app.query_one(KeyFooter)
        assert not footer.children  # no widget per key, so nothing to compose or lay out after the first frame
        shown = {item.description: item.display for item in footer.items}
        assert shown["Run all"] == "r" and shown["Next step"] == "n" and shown["Help"] == "?"
        assert "Prev step" not in shown  # show=False
        line = _line(footer)
        assert line.startswith(" n Next step  r Run all ") and len(line) == 120
        assert line.rstrip().endswith(f"{EDGE}^p palette")  # the command palette's key, on the right
        items = footer.items
        for pane in ("2", "5", "1"):  # tab switches and focus changes publish the bindings again
            await pilot.press(pane)
        await pilot.pause()
        assert footer.items is items  # the same keys: nothing to redraw
        app.update_keymap({"rnnt.run_all": "R"})  # a key shown changes: drawn again
        await pilot.pause()
        assert {item.description: item.display for item in footer.items}["Run all"] == "R"
        footer.scroll_keys(1000)  # a rebound key goes last, as on `Footer`
        assert " R Run all " in _line(footer)


async def test_narrow_keys_are_compact_and_the_rest_scroll_under_the_palette() -> None:
    app = _app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        footer = app.query_one(KeyFooter)
        assert footer.compact
        line = _line(footer)
        assert line.startswith("n Next step r Run all f Fuse ") and len(line) == 80
        assert "q Quit" not in line and line.endswith(f"{EDGE}^p palette")
        footer.scroll_keys(1000)  # as far as it goes: the last key shows, the palette's stays
        line = _line(footer)
        assert "p Precision q Quit" in line and line.endswith(f"{EDGE}^p palette") and len(line) == 80
        assert not line.startswith("n Next step")
        footer.scroll_keys(-1000)
        assert _line(footer).startswith("n Next step")


async def test_a_click_presses_the_key_and_a_hovered_key_shows_its_tooltip() -> None:
    app = _app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        footer = app.query_one(KeyFooter)
        _line(footer)  # the spans as drawn
        start, _end, item = next(span for span in footer.spans if span[2].description == "Help")
        await pilot.hover(KeyFooter, offset=(start + 1, 0))
        assert footer.hovered == item and footer.tooltip == "Keys, step states and the fuse modes"
        await pilot.hover("#status")
        assert footer.hovered is None and footer.tooltip is None
        await pilot.click(KeyFooter, offset=(start + 1, 0))
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
