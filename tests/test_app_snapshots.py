"""SVG snapshots of the app at fixed sizes, on the bundled demo (its transcripts are stable across machines).

Only deterministic screens: nothing with timings, float-noise-sized numbers or paths that vary. Every screen at
the two sizes users hit most, 120x40 and 80x24 (`SCREENS`), plus a few wide ones. Regenerate a baseline with
`pytest tests/test_app_snapshots.py -k NAME --snapshot-update` only for a screen you meant to change.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.worker import WorkerState

from rnnt_tui.app.app import RnntApp
from rnnt_tui.app.choices import RuntimeChoices
from rnnt_tui.paths import demo_audio, demo_checkpoint

pytestmark = pytest.mark.slow


def demo_app() -> RnntApp:
    return RnntApp(demo_checkpoint(), demo_audio(), RuntimeChoices())


async def settled(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, RnntApp)
    deadline = time.monotonic() + 300
    while app.state.session is None or any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in app.workers):
        assert time.monotonic() < deadline, "the app did not settle"
        await pilot.pause(0.05)
    await pilot.pause(0.2)
    app.clear_notifications()
    await pilot.pause(0.1)


def press_then_settle(*keys: str) -> Any:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        for key in keys:
            await pilot.press(key)
            await settled(pilot)

    return run_before


def test_ready_80x24(snap_compare: Any) -> None:
    assert snap_compare(demo_app(), terminal_size=(80, 24), run_before=press_then_settle())


def test_ready_200x50(snap_compare: Any) -> None:
    assert snap_compare(demo_app(), terminal_size=(200, 50), run_before=press_then_settle())


def test_transcripts_after_run_all_200x50(snap_compare: Any) -> None:
    assert snap_compare(demo_app(), terminal_size=(200, 50), run_before=press_then_settle("r", "4"))


def test_fuse_as_saved_80x24(snap_compare: Any) -> None:
    assert snap_compare(demo_app(), terminal_size=(80, 24), run_before=press_then_settle("f"))


def test_help_80x24(snap_compare: Any) -> None:
    assert snap_compare(demo_app(), terminal_size=(80, 24), run_before=press_then_settle("question_mark"))


@pytest.mark.skipif(sys.platform == "darwin", reason="shows Linux's 'needs macOS' state")
def test_sweep_needs_macos_120x40(snap_compare: Any) -> None:
    assert snap_compare(demo_app(), terminal_size=(120, 40), run_before=press_then_settle("u"))


#: every screen and tab, by the keys that open it from the ready app (Tables and Pictures hold timings and float
#: noise; the pick dialog shows machine paths: those are covered by Pilot tests instead)
SCREENS = {
    "step": (),
    "runtimes_tab": ("5",),
    "model_key": ("6",),  # 80 columns: the Model tab; 120: stays on Step (its panel is on screen)
    "corpus_tab": ("7",),
    "help": ("question_mark",),
    "precision": ("p",),
}


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=["120x40", "80x24"])
@pytest.mark.parametrize("screen", list(SCREENS))
def test_every_screen(snap_compare: Any, screen: str, size: tuple[int, int]) -> None:
    assert snap_compare(demo_app(), terminal_size=size, run_before=press_then_settle(*SCREENS[screen]))


@pytest.mark.skipif(sys.platform == "darwin", reason="shows Linux's 'needs macOS' state")
def test_sweep_needs_macos_80x24(snap_compare: Any) -> None:
    assert snap_compare(demo_app(), terminal_size=(80, 24), run_before=press_then_settle("u"))
