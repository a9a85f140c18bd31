"""What `rnnt-tui` does before its first frame and until "Ready" (issue 21 item 6), without timing anything.

`rnnt-tui [CHECKPOINT] [AUDIO]` opens the app without click and reads the command line as `open` does; telling a
bundle from a checkpoint and reading its bundle.json imports no numpy in the app's process; the runtime check is
asked once the first session is ready (or when the Runtimes tab or the sweep needs it), never alongside the first
open; `u` before its answer opens the sweep screen with it; a bundle's first open, sent ahead to an engine started
before the app runs, is the session the app shows. The transport's half of a call sent ahead is in
`test_app_engine.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from idle_app import IdleApp
from test_app import busy, of_type, ready, screen_text, wait_for
from textual.message import Message
from textual.widgets import RadioButton

from rnnt_tui.app.app import RnntApp
from rnnt_tui.app.choices import RuntimeChoices
from rnnt_tui.app.engine_process import NUMBERS_PER_CHILD, ProcessEngine
from rnnt_tui.app.messages import EngineEvent
from rnnt_tui.core.pipeline.events import SessionReady, SummaryRead
from rnnt_tui.paths import demo_audio, demo_checkpoint

#: calls `rnnt_tui.cli.main` (argv[1]) and then click's own reading of the same line (`cli.group.run`), with
#: `run_app` recording the arguments it got; prints both, and whether click / numpy were imported by the first
READ_THE_LINE = """
import inspect, json, sys
import rnnt_tui.app.main as app_main
signature, calls = inspect.signature(app_main.run_app), []

def run_app(*args, **kwargs):
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    calls.append({k: None if v is None else str(v) for k, v in bound.arguments.items()})
    return 0

app_main.run_app = run_app
from rnnt_tui.cli import main
line = json.loads(sys.argv[1])
main(line)
first = {"imported_click": "click" in sys.modules, "imported_numpy": "numpy" in sys.modules}
from rnnt_tui.cli.group import run
run(line)
print(json.dumps({"fast": calls[0], "by_click": calls[1], **first}))
"""


def read_the_line(line: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", READ_THE_LINE, json.dumps(line)], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    found: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return found


@pytest.mark.parametrize("line", [[], ["model.nemo"], ["~/runs/b.rnntb", "clip.wav"], [""]])
def test_checkpoint_and_clip_open_the_app_as_open_does_without_click(line: list[str]) -> None:
    found = read_the_line(line)
    assert found["fast"] == found["by_click"]
    assert not found["imported_click"] and not found["imported_numpy"]
    if line[1:]:
        assert found["fast"]["audio"] == "clip.wav" and found["fast"]["checkpoint"] == str(Path(line[0]).expanduser())


def test_a_line_with_an_option_is_read_by_click() -> None:
    found = read_the_line(["model.nemo", "--runs", "3"])
    assert found["by_click"]["runs"] == "3" and found["fast"] == found["by_click"]


def test_telling_a_bundle_from_a_checkpoint_imports_no_numpy(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "bundle.json").write_text(json.dumps({"clips": [{"name": "hello.wav"}], "packages": {"fp32": {}}}))
    code = ("import json, sys; from pathlib import Path; from rnnt_tui.app.opening import is_manifest; "
            "from rnnt_tui.app.bundle_choice import choose; "
            f"chosen = choose(Path({str(bundle)!r}), None); "
            "print(json.dumps([chosen.against, str(chosen.clip), is_manifest(chosen.clip), 'numpy' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == ["mil", "hello.wav", False, False]


async def test_the_first_frame_mounts_no_table() -> None:
    """The Tables tab is not built for the first frame (it is mounted ahead, a widget a frame, once the clip has
    loaded: NeMo then restores for seconds with an idle screen)."""
    from rnnt_tui.app.widgets.tables import DiffsTable

    app = IdleApp(demo_checkpoint(), demo_audio(), RuntimeChoices(against="onnx"))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        assert not app.query(DiffsTable) and "tab-tables" not in app.mounted_panes


async def test_the_runtime_check_waits_for_the_runtimes_tab_when_no_session_is_ready() -> None:
    app = IdleApp(demo_checkpoint(), demo_audio(), RuntimeChoices(against="onnx"))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        assert not app.runtimes_asked and not [w for w in app.workers if w.group == "runtimes"]
        await pilot.press("5")
        assert app.runtimes_asked
        await wait_for(pilot, lambda: "coreml" in app.state.availability, "the runtime check", timeout=120)
        await pilot.pause(0.1)
        coreml = app.state.availability["coreml"]
        assert app.query_one("#against-coreml", RadioButton).disabled == (not coreml.ok)
        assert app.query_one("#against-onnx", RadioButton).value


async def test_the_sweep_asked_before_the_runtime_check_opens_with_its_answer() -> None:
    from rnnt_tui.app.screens.sweep import SweepScreen

    app = IdleApp(demo_checkpoint(), demo_audio(), RuntimeChoices(against="onnx"))
    async with app.run_test(size=(120, 40)) as pilot:
        assert not app.state.availability
        await pilot.press("u")
        assert app.runtimes_asked
        await wait_for(pilot, lambda: isinstance(app.screen, SweepScreen), "the sweep screen", timeout=120)
        screen = app.screen
        assert isinstance(screen, SweepScreen)
        assert screen.availability is not None and screen.availability == app.state.availability["coreml"]
        if sys.platform != "darwin":
            await pilot.pause(0.1)
            assert "needs macOS" in screen_text(app)


@pytest.mark.slow
async def test_a_bundle_opened_ahead_is_the_session_the_app_shows(tmp_path: Path) -> None:
    """`run_app`'s way with a bundle: the engine started `urgent` and the first open sent before the app runs; the
    app's own first open takes that call over - one summary, one session - and the steps run on it."""
    from click.testing import CliRunner

    from rnnt_tui.cli.bundle_cmd import record

    bundle = tmp_path / "demo-bundle"
    result = CliRunner().invoke(record, [str(demo_checkpoint()), str(demo_audio()), "--out", str(bundle),
                                         "--runs", "1", "--warmup", "0", "--export", "onnx"])
    assert result.exit_code == 0, result.output
    engine = ProcessEngine()
    engine.start(urgent=True)
    app = RnntApp(bundle, demo_audio(), RuntimeChoices(against="onnx", runs=1, warmup=0), engine=engine)
    app.open_ahead()
    messages: list[Message] = []
    async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
        await ready(pilot)
        assert len(of_type(messages, SummaryRead)) == 1 and len(of_type(messages, SessionReady)) == 1
        assert of_type(messages, SummaryRead)[0].recorded and "Ready" in app.status.text
        first = next(m for m in messages if isinstance(m, EngineEvent))
        assert first.envelope.seq == NUMBERS_PER_CHILD + 1  # the events of the open sent ahead: not sent again
        await pilot.press("r")
        await wait_for(pilot, lambda: "decode" in app.state.results and not busy(app), "every step")
        statuses = {n: r.status for n, r in app.state.results.items()}
        assert statuses.pop("preprocessor") == "reference-only"  # ONNX Runtime has no preprocessor
        assert set(statuses.values()) == {"done"}, {n: r.error for n, r in app.state.results.items()}
