"""`w`: the app compares the open clip in fixed windows (`stream --window`) in the Streaming tab.

The settings modal's rules (fast, no engine), the windows view drawing a plain report (fast), and the whole key on
the real app: real Textual, the engine in its child process running real NeMo and ONNX Runtime on the offline demo,
checked against the core's own result for the same inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Input, Label

from rnnt_tui.app.choices import WindowChoices
from rnnt_tui.app.screens.windows import WindowsScreen


class _Host(App[None]):
    """A bare app that opens the settings modal and keeps what it returned."""

    def __init__(self) -> None:
        super().__init__()
        self.returned: list[WindowChoices | None] = []

    def compose(self) -> ComposeResult:
        yield Label("host")

    def on_mount(self) -> None:
        self.push_screen(WindowsScreen(WindowChoices(), "ONNX Runtime"), self.returned.append)


async def _fill(pilot: Any, field: str, text: str) -> None:
    pilot.app.screen.query_one(f"#{field}", Input).focus()
    await pilot.press("end", "ctrl+u", *text)


async def test_window_settings_refuse_bad_values_and_stay_open() -> None:
    app = _Host()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, WindowsScreen)
        values = [screen.query_one(f"#{f}", Input).value for f in ("windows-window", "windows-overlap",
                                                                      "windows-mel-left")]
        assert values == ["15", "2", "0"]  # the defaults: the common Core ML export's 15 s window
        problem = screen.query_one("#windows-problem", Label)
        for field, text, words in (("windows-overlap", "15", "shorter than the window"),
                                   ("windows-window", "0.1", "0.5 to 3600 s"),
                                   ("windows-window", "", "give a number"),
                                   ("windows-mel-left", "61", "0 to 60 s")):
            await _fill(pilot, "windows-window", "15")
            await _fill(pilot, "windows-overlap", "2")
            await _fill(pilot, "windows-mel-left", "0")
            await _fill(pilot, field, text)
            await pilot.press("enter")
            await pilot.pause()
            assert app.screen is screen and not app.returned, (field, text)  # still open, nothing run
            assert words in str(problem.render()), (field, text, str(problem.render()))
        await _fill(pilot, "windows-mel-left", "0.5")
        await _fill(pilot, "windows-window", "2")
        await _fill(pilot, "windows-overlap", "0.5")
        await pilot.press("enter")
        await pilot.pause()
        assert app.returned == [WindowChoices(2.0, 0.5, 0.5)] and app.screen is not screen

    app = _Host()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert app.returned == [None]


def _report() -> dict[str, Any]:
    def window(i: int, ref: str, cand: str, drift: float) -> dict[str, Any]:
        return {"index": i, "start_s": 1.5 * i, "end_s": 1.5 * i + 2, "keep_from_s": 0.0, "keep_to_s": 1.75,
                "encoder_max_abs": drift, "encoder_ok": drift <= 1e-3, "reference_text": ref.strip(),
                "candidate_text": cand.strip(), "reference_piece": ref, "candidate_piece": cand}

    edit = {"side": "candidate", "kind": "lost", "full": "brown", "windowed": "", "time_s": 1.7}
    return {"reference": "NeMo / PyTorch", "candidate": "ONNX Runtime", "window_s": 2.0, "overlap_s": 0.5,
            "mel_left_s": 0.0, "merge_rule": "each window keeps …", "tolerance": {"atol": 1e-3},
            "windows": [window(0, "the quick", "the quick", 1e-6), window(1, " brown fox", " fox", float("nan"))],
            "full_text": "the quick brown fox", "reference_text": "the quick brown fox",
            "candidate_text": "the quick fox",
            "seams": [{"index": 0, "time_s": 1.75, "edits": [edit]}]}


def _text(renderable: Any) -> str:
    from rich.console import Console

    console = Console(width=120, record=True, file=open("/dev/null", "w"))  # noqa: SIM115 - closed with the console
    console.print(renderable)
    return console.export_text()


async def test_windows_view_draws_a_report_and_steps() -> None:
    """One column per window, a NaN drift shown as !!, the seam's edit marked on its left window and in the table,
    the merged transcript growing by each window's piece."""
    from rnnt_tui.app.widgets.windows_view import WindowsView

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            yield WindowsView(id="view")

    async with Host().run_test(size=(120, 40)) as pilot:
        view = pilot.app.query_one(WindowsView)
        view.start({"reference": "NeMo / PyTorch", "candidate": "ONNX Runtime", "window_s": 2.0, "overlap_s": 0.5,
                    "mel_left_s": 0.0})
        report = _report()
        view.add_window(report["windows"][0], 2)
        assert "1 of 2 windows" in _text(view.header()) and view.cursor == 0
        view.add_window(report["windows"][1], 2)
        view.show(report)
        text = _text(view.renderable_for())
        assert "NeMo / PyTorch vs ONNX Runtime: 2 windows of 2 s, overlap 0.5 s, mel left context 0 s" in text
        timeline = view.timeline().renderables[1]
        assert len(timeline.columns) == 1 + 2  # the row labels, then a column per window
        assert "!!" in text and "0-2" in text and "1.5-3.5" in text
        assert view.seam_marks("candidate")[0].plain == "L" and not view.seam_marks("reference")
        assert view.seam_rows() == [("1.75", "candidate", "lost", "1.70", "brown", "")]
        assert "candidate:     the quick fox" in text and view.cursor == 1
        await pilot.press("tab")  # focus the view: n / p are its keys
        view.focus()
        await pilot.press("p")
        assert view.cursor == 0 and "candidate:     the quick\n" in _text(view.transcripts())
        await pilot.press("p")
        assert view.cursor == 0
        await pilot.press("n")
        assert view.cursor == 1


@pytest.fixture
def two_clips(tmp_path: Path) -> Path:
    """A clip a few seconds long: two bundled demo clips back to back."""
    import numpy as np
    import soundfile as sf

    from rnnt_tui.paths import demo_dir

    parts = [sf.read(demo_dir() / name, dtype="float32") for name in ("the-quick-brown-fox.wav",
                                                                       "core-ml-on-a-mac.wav")]
    assert parts[0][1] == parts[1][1]
    path = tmp_path / "two-clips.wav"
    sf.write(path, np.concatenate([p[0] for p in parts]), parts[0][1])
    return path


@pytest.mark.slow
async def test_w_compares_the_offline_demo_in_windows(two_clips: Path) -> None:
    """On the offline demo: s says why not and names w; w asks for the settings, runs them in the engine process,
    and the Streaming tab grows a column per window, then holds the core's own seams for the same inputs."""
    from test_app import busy, make_app, ready, screen_text, wait_for

    from rnnt_tui.app.widgets.windows_view import WindowsView
    from rnnt_tui.paths import demo_checkpoint

    app = make_app(demo_checkpoint(), two_clips, against="onnx")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: not busy(app), "the refusal")
        await pilot.pause(0.2)
        refusals = [n for n in app._notifications if n.title == "Cannot stream"]
        assert refusals and "w compares it in fixed windows" in refusals[-1].message
        assert "--window" not in refusals[-1].message

        await pilot.press("8")  # the Streaming tab (mounted by s's refusal already)
        view = app.query_one("#windows-view", WindowsView)
        seen: list[int] = []
        original = view.add_window
        view.add_window = lambda w, total: (seen.append(w["index"]), original(w, total))[1]  # type: ignore[method-assign]
        await pilot.press("w")
        await wait_for(pilot, lambda: isinstance(app.screen, WindowsScreen), "the window settings")
        await _fill(pilot, "windows-window", "2")
        await _fill(pilot, "windows-overlap", "0.5")
        await pilot.press("enter")
        await wait_for(pilot, lambda: view.whole and not busy(app), "the windowed comparison")
        await pilot.pause(0.2)
        assert app.query_one("TabbedContent").active == "tab-stream"  # type: ignore[attr-defined]
        assert view.display and not app.query_one("#stream-view").display
        report = view.report
        windows = report["windows"]
        assert len(windows) == 3 and seen == [w["index"] for w in windows]  # 0-2, 1.5-3.5, 3-3.51 s; each live
        assert len(view.timeline().renderables[1].columns) == 1 + len(windows)
        text = screen_text(app)
        assert "NeMo / PyTorch vs ONNX Runtime: 3 windows of 2 s, overlap 0.5 s, mel left context 0 s" in text
        assert all(view.span(w) in text for w in windows)
        assert "".join(w["reference_piece"] for w in windows) == report["reference_text"]
        assert view.cursor == 2
        await pilot.press("p")
        assert view.cursor == 1 and "to window 1" in screen_text(app)
        await pilot.press("n")
        assert view.cursor == 2 and "to window 2" in screen_text(app)
        assert app.state.windows == WindowChoices(2.0, 0.5, 0.0)  # offered again on the next w
        shown_rows = view.seam_rows()

    from rnnt_tui.core.stream.config import StreamRequest
    from rnnt_tui.core.stream.windows import run_windows

    core = run_windows(StreamRequest(demo_checkpoint(), two_clips, "onnx", window_s=2.0, overlap_s=0.5),
                       lambda event: None).to_json()
    assert report["seams"] == core["seams"] and report["candidate"] == core["candidate"]
    assert [w["reference_text"] for w in windows] == [w["reference_text"] for w in core["windows"]]
    assert shown_rows == [(f"{s['time_s']:.2f}", {"reference": "NeMo windowed"}.get(e["side"], e["side"]), e["kind"],
                           f"{e['time_s']:.2f}", e["full"], e["windowed"]) for s in core["seams"] for e in s["edits"]]
