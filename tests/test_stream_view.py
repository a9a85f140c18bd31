"""The Streaming view renders a plain streaming report (no engine, no core): timeline, transcripts, stepping."""

from __future__ import annotations

from typing import Any


def _chunk(index: int, ref: str, cand: str, drift: float) -> dict[str, Any]:
    outputs = [{"max_abs": drift}, {"max_abs": drift / 2}, {"max_abs": 0.0}]
    return {"index": index, "free_running": {"outputs": outputs}, "teacher_forced": {"outputs": outputs},
            "tokens": {"reference_text": ref, "candidate_text": cand}}


def _report() -> dict[str, Any]:
    return {"chunks": [_chunk(0, "hel", "hel", 1e-6), _chunk(1, "lo ", "lo ", 2e-2), _chunk(2, "world", "word", 1e-1)],
            "decode": {"first_divergence": {"chunk": 2}}, "tolerance": {"atol": 1e-3}}


def _text(view: Any) -> str:
    from rich.console import Console

    console = Console(width=160, record=True, file=open("/dev/null", "w"))  # noqa: SIM115 - closed with the console
    console.print(view.renderable_for())
    return console.export_text()


async def test_stream_view_renders_and_steps() -> None:
    from textual.app import App, ComposeResult

    from rnnt_tui.app.widgets.stream_view import StreamView, sparkline

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            yield StreamView(_report(), id="view")

    async with Host().run_test(size=(120, 30)) as pilot:
        view = pilot.app.query_one(StreamView)
        view.focus()
        text = _text(view)
        assert "▶2✗" in text  # cursor on the last chunk, the first divergence marked
        assert "NeMo streaming: hello world" in text and "candidate:      hello word" in text
        await pilot.press("p", "p")
        assert view.cursor == 0 and "NeMo streaming: hel\n" in _text(view)
        await pilot.press("n")
        assert view.cursor == 1 and "▶1" in _text(view)
        view.add_chunk(_chunk(3, "!", "!", 0.0))
        assert view.cursor == 3 and "hello world!" in _text(view)
    assert sparkline([0.0, 0.5, 1.0]) == "▁▄█"
    # a NaN keeps its place and shows; an unjudged value (the padded last chunk's caches) neither scales nor hides
    assert sparkline([0.0, "nan", 1.0, None, float("inf")]) == "▁!█·!"
    assert sparkline([0.5, 1.0, None]) == sparkline([0.5, 1.0]) + "·"


def test_the_padded_last_chunks_caches_do_not_set_the_cache_drift_scale() -> None:
    from rnnt_tui.app.widgets.stream_view import StreamView

    report = _report()
    report["chunks"][-1]["free_running"]["outputs"][1].update(max_abs=4.09, gates=False)
    line = next(ln for ln in _text(StreamView(report)).splitlines() if ln.startswith("cache drift:"))
    assert "▁█·" in line and "not judged" in line


def test_stream_view_says_which_cache_feed_ran() -> None:
    """The finished report names the candidate and where its caches were carried; chunk events alone say nothing."""
    from rnnt_tui.app.widgets.stream_view import StreamView
    from rnnt_tui.core.stream.state_step import CARRIES
    from rnnt_tui.core.stream.steps import StreamStep

    assert "carried in" not in _text(StreamView(_report()))
    for carried in (StreamStep.carries, CARRIES):
        report = {**_report(), "candidate": "Core ML program, MIL interpreter", "caches_carried_in": carried}
        text = " ".join(_text(StreamView(report)).split())
        assert f"Core ML program, MIL interpreter · encoder caches carried in {' '.join(carried.split())}" in text


def test_an_empty_stream_view_says_how_to_fill_it_instead_of_an_empty_table() -> None:
    """No chunk yet (the tab before s, or a new session's): one line saying what fills it, not a table of no chunk,
    whose title wrapped a word per line down a narrow column."""
    from rnnt_tui.app.widgets.stream_view import StreamView

    text = _text(StreamView({"chunks": []}))
    assert "Chunk timeline" not in text and "s streams the open clip chunk by chunk" in " ".join(text.split())
