"""Pilot tests driving the real app (real NeMo, real ONNX Runtime, real Textual) on small checkpoints.

They press keys the way a user does and assert on what the screen holds and on the messages the workers posted:
first paint before the restore, run all, step by step, the fuse-mode switch, picking good and bad files, export,
runtime controls, help and the command palette, quitting while busy.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.message import Message
from textual.pilot import Pilot
from textual.worker import WorkerState

from rnnt_tui.app.app import RnntApp
from rnnt_tui.app.choices import RuntimeChoices
from rnnt_tui.app.engine import Engine
from rnnt_tui.app.engine_process import ProcessEngine
from rnnt_tui.app.messages import EngineEvent, JobDone
from rnnt_tui.app.widgets.fuse_panel import FusePanel
from rnnt_tui.app.widgets.tables import DiffsTable
from rnnt_tui.core.components import STEPS
from rnnt_tui.core.pipeline.events import FuseChanged, ModelRestored, SessionReady, StepFinished
from rnnt_tui.core.pipeline.events import SummaryRead as SummaryReady
from rnnt_tui.paths import demo_audio, demo_checkpoint

# The README's test command (`-m "not slow"`, what CI runs) keeps two of these: the first paint then run all, and the
# UI process's import hygiene; the others are the slow tier, run in full before each landing.


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A fused char RNNT checkpoint and a CTC one (the bad pick), built from configs."""
    import factory

    root = tmp_path_factory.mktemp("app-ckpt")
    return {kind: factory.build(kind, root / f"{kind}.nemo", root / "work") for kind in ("rnnt-char", "ctc")}


def make_app(checkpoint: Path | None = None, audio: Path | None = None, export_dir: Path | None = None,
             engine: Engine | None = None, **options: Any) -> RnntApp:
    """The app as users get it (its engine in a child process) unless `engine` says otherwise."""
    return RnntApp(checkpoint or demo_checkpoint(), audio or demo_audio(), RuntimeChoices(**options),
                   export_dir=export_dir, engine=engine)


def screen_text(app: RnntApp) -> str:
    """Everything the active screen shows, as plain text lines."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def busy(app: RnntApp) -> bool:
    return any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) and w.group != "runtimes"
               for w in app.workers)


async def wait_for(pilot: Pilot[Any], condition: Callable[[], bool], what: str, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def ready(pilot: Pilot[Any]) -> RnntApp:
    app = pilot.app
    assert isinstance(app, RnntApp)
    await wait_for(pilot, lambda: app.state.session is not None and not busy(app), "the session")
    await wait_for(pilot, lambda: bool(app.state.availability), "the runtime check (asked once the session is up)")
    await pilot.pause(0.1)
    return app


async def settle(pilot: Pilot[Any]) -> None:
    await pilot.pause(0.2)
    await wait_for(pilot, lambda: not busy(pilot.app), "the background work")  # type: ignore[arg-type]
    await pilot.pause(0.1)


def events(messages: list[Message]) -> list[Any]:
    """The app's own messages and, for an `EngineEvent`, the core event it carries."""
    return [m.event if isinstance(m, EngineEvent) else m for m in messages]


def of_type(messages: list[Message], kind: type) -> list[Any]:
    return [m for m in events(messages) if isinstance(m, kind)]


async def test_summary_paints_before_restore_then_run_all_fills_tables(small: dict[str, Path]) -> None:
    from textual.widgets import TabbedContent

    from rnnt_tui.app.widgets.tables import LiveTable
    from rnnt_tui.core.pipeline.events import StepStarted

    messages: list[Message] = []
    app = make_app(small["rnnt-char"])
    shown: dict[str, list[list[str]]] = {"at the switch": [], "at the first step": []}

    def hook(message: Message) -> None:
        """The Tables tab's tables' visibility when the tab comes on screen and when the first step starts."""
        messages.append(message)
        if isinstance(message, TabbedContent.TabActivated) and message.pane.id == "tab-tables" \
                and not shown["at the switch"]:  # (the hook sees the message again as it bubbles up)
            key = "at the switch"
        elif isinstance(message, EngineEvent) and isinstance(message.event, StepStarted) \
                and not of_type(messages[:-1], StepStarted):
            key = "at the first step"
        else:
            return
        shown[key].append([str(t.styles.visibility) for t in app.query_one("#tables").query(LiveTable)])

    async with app.run_test(size=(160, 45), message_hook=hook) as pilot:
        await wait_for(pilot, lambda: bool(of_type(messages, SummaryReady)), "the summary")
        await pilot.pause(0.1)
        trust = [n for n in app._notifications if "Only open checkpoints you trust" in n.message]
        assert len(trust) == 1  # said when NeMo's loader (which unpickles) first runs
        text = screen_text(app)
        assert "fuse_loss_wer" in text and "after restore" in text  # saved flags shown, used ones not yet
        assert "rnnt-char.nemo" in text
        await ready(pilot)
        kinds = [type(m) for m in events(messages) if isinstance(m, (SummaryReady, SessionReady))]
        assert kinds == [SummaryReady, SessionReady]
        trust = [n for n in app._notifications if "Only open checkpoints you trust" in n.message]
        assert len(trust) <= 1  # said once (it may have timed out on a slow machine, never repeated)

        await pilot.press("r")
        await settle(pilot)
        finished = [m.name for m in of_type(messages, StepFinished)]
        assert finished == list(STEPS)
        # run all shows the Tables tab first, its three tables hidden for that frame, then one per frame, and only
        # then starts the steps
        assert shown == {"at the switch": [["hidden"] * 3], "at the first step": [["visible"] * 3]}
        assert app.state.results["encoder"].status == "done"
        assert app.state.results["joint"].status == "done"
        assert app.state.results["preprocessor"].status == "reference-only"  # ONNX export has no preprocessor
        table = app.query_one(DiffsTable)
        assert str(table.get_cell("encoder/encoded", "result")) == "pass"
        assert str(table.get_cell("joint/logits", "result")) == "pass"
        text = screen_text(app)
        assert "agree token for token" in text
        assert "ONNX Runtime" in text
        assert of_type(messages, JobDone)[-1].text.startswith("Done")


@pytest.mark.slow
async def test_step_by_step_select_and_rerun() -> None:
    messages: list[Message] = []
    app = make_app()
    async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
        await ready(pilot)
        await pilot.press("n")
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        assert [m.name for m in of_type(messages, StepFinished)] == ["preprocessor", "encoder"]
        assert app.pipeline.selected == "encoder"
        text = screen_text(app)
        assert "encoder ✓ within tol" in text and "[1, 64," in text  # the detail: shapes of both runtimes
        await pilot.press("left_square_bracket")
        assert app.pipeline.selected == "preprocessor"
        await pilot.press("x")
        await settle(pilot)
        assert [m.name for m in of_type(messages, StepFinished)][-1] == "preprocessor"
        assert "joint" not in app.state.results


@pytest.mark.slow
async def test_fuse_toggle_reruns_joint_and_shows_nemo_error() -> None:
    messages: list[Message] = []
    app = make_app()
    async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
        await ready(pilot)
        panel = app.query_one(FusePanel)
        assert panel.mode == "validation" and panel.used is not None and not panel.used.fuse_loss_wer
        assert panel.saved is not None and panel.saved.fuse_loss_wer  # the demo is saved fused
        await pilot.press("r")
        await settle(pilot)
        assert app.state.results["joint"].status == "done"

        await pilot.press("f")
        await settle(pilot)
        changed = of_type(messages, FuseChanged)[-1]
        assert changed.fuse.mode == "as-saved" and changed.fuse.probe.startswith("raises")
        assert app.state.results["joint"].status == "failed"  # rerun: NeMo's fused joint needs lengths
        text = screen_text(app)
        assert "AS SAVED" in text and "fuse_loss_wer` is set" in text

        await pilot.press("f")
        await settle(pilot)
        assert of_type(messages, FuseChanged)[-1].fuse.mode == "validation"
        assert app.state.results["joint"].status == "done"
        assert "→ logits of" in screen_text(app)


def broken_weights(tmp_path: Path) -> Path:
    """The demo's config with garbage weights: the summary reads fine, NeMo's restore fails."""
    import tarfile

    path = tmp_path / "broken-weights.nemo"
    garbage = tmp_path / "model_weights.ckpt"
    garbage.write_bytes(b"not a torch checkpoint" * 10)
    with tarfile.open(demo_checkpoint()) as src, tarfile.open(path, "w") as out:
        config = src.getmember("./model_config.yaml")
        out.addfile(config, src.extractfile(config))
        out.add(garbage, arcname="./model_weights.ckpt")
    return path


@pytest.mark.slow
async def test_bad_picks_notify_and_keep_the_session(small: dict[str, Path], tmp_path: Path) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        session = app.state.session
        not_audio = tmp_path / "notes.wav"
        not_audio.write_text("not audio")
        for pick, bad in ((app.open_path, small["ctc"]), (app.open_path, tmp_path / "missing.nemo"),
                          (app.open_audio, not_audio), (app.open_path, broken_weights(tmp_path))):
            pick(bad)
            await settle(pilot)
            note = list(app._notifications)[-1]
            assert note.severity == "error" and bad.name in note.title, note
            assert app.state.session is session
            assert "demo-rnnt.nemo" in screen_text(app) and "restored · ready" in screen_text(app)
        assert any("CTC" in n.message and n.severity == "error" for n in app._notifications)


@pytest.mark.slow
async def test_pick_by_key_opens_the_new_checkpoint_and_remembers_it(small: dict[str, Path]) -> None:
    from rnnt_tui.app.recent import Recent
    from rnnt_tui.app.screens.pick import PickFileScreen

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        first = (await ready(pilot)).session
        await pilot.press("o")
        assert isinstance(app.screen, PickFileScreen)
        assert "demo-rnnt.nemo" in screen_text(app)  # the recent list
        await pilot.press("ctrl+b")
        assert type(app.screen).__name__ == "FileOpen"  # textual-fspicker's dialog
        await pilot.press("escape")
        assert isinstance(app.screen, PickFileScreen)
        field = app.screen.query_one("#pick-path")
        field.value = str(small["rnnt-char"])  # type: ignore[attr-defined]
        await pilot.press("enter")
        await pilot.pause(0.2)
        await ready(pilot)
        assert app.state.session is not first and app.state.checkpoint == small["rnnt-char"]
        assert "rnnt-char.nemo" in screen_text(app)
    recent = Recent.load()
    assert recent.checkpoints[0] == str(small["rnnt-char"].resolve())
    assert str(demo_checkpoint().resolve()) in recent.checkpoints


@pytest.mark.slow
async def test_export_writes_json_markdown_and_svg(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rnnt_tui.cli import main

    assert main(["compare", str(demo_checkpoint()), str(demo_audio()), "--against", "onnx", "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)  # what the headless twin writes for the same comparison
    messages: list[Message] = []
    app = make_app(export_dir=tmp_path)
    async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
        await ready(pilot)
        await pilot.press("r")
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        assert app.state.session is not None
        app.action_export_to()  # the palette's "Export to a directory…"
        await pilot.pause(0.2)
        assert type(app.screen).__name__ == "SelectDirectory"
        await pilot.press("escape")
    written = sorted(p.suffix for p in tmp_path.glob("rnnt-tui-report-*"))
    assert written == [".json", ".md", ".svg"]
    report = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert report.keys() == expected.keys() and report["status"] == "ok"
    assert report["decode"]["reference_text"] == expected["decode"]["reference_text"]
    assert [c["name"] for c in report["components"]] == ["preprocessor", "encoder", "decoder", "joint"]
    assert "# rnnt-tui comparison" in next(tmp_path.glob("*.md")).read_text()
    assert not list(demo_checkpoint().parent.glob("rnnt-tui-report-*"))
    assert any("Report saved" in (n.title or "") for n in app._notifications)


@pytest.mark.slow
def test_export_never_writes_into_the_checkpoint_folder(tmp_path: Path) -> None:
    from rnnt_tui.app.engine import export_directory

    ckpt = tmp_path / "model.nemo"
    assert export_directory(tmp_path, ckpt) == tmp_path / "rnnt-tui-reports"
    assert export_directory(tmp_path / "elsewhere", ckpt) == tmp_path / "elsewhere"


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "darwin", reason="Core ML runs on macOS")
async def test_coreml_is_shown_disabled_with_its_reason_and_the_reference_still_runs() -> None:
    from textual.widgets import Input, RadioButton, Select

    app = make_app(against="coreml")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await wait_for(pilot, lambda: "coreml" in app.state.availability, "the runtime check")
        assert not app.state.availability["coreml"].ok
        await pilot.press("5")
        text = screen_text(app)
        assert "Core ML: not available here" in text
        assert app.query_one("#compute-units", Select).disabled
        assert not app.query_one("#against-onnx", RadioButton).disabled
        assert app.query_one("#against-coreml", RadioButton).disabled
        assert any("cannot run here" in (n.title or "") for n in app._notifications)
        await pilot.press("r")
        await settle(pilot)
        assert app.state.results["encoder"].status == "reference-only"
        assert app.state.results["decode"].status in ("reference-only", "done")

        app.query_one("#against-onnx", RadioButton).value = True  # switch to ONNX Runtime: a new session
        await pilot.pause(0.3)
        await ready(pilot)
        assert app.state.session is not None and app.state.session.candidate_label == "ONNX Runtime"
        assert app.state.options.against == "onnx"
        assert app.query_one("#against-coreml", RadioButton).disabled

        runs = app.query_one("#runs", Input)
        runs.value = "2"
        runs.focus()
        await pilot.press("enter")  # timed runs: a new session with the new settings
        await pilot.pause(0.3)
        await ready(pilot)
        assert app.state.session.runs == 2


@pytest.mark.slow
async def test_help_palette_and_sweep_screens() -> None:
    from rnnt_tui.app.screens.help import HelpScreen
    from rnnt_tui.app.screens.sweep import SweepScreen

    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert "Run every step" in screen_text(app)
        await pilot.press("escape")
        titles = [title for title, _, _ in app.palette_commands()]
        for wanted in ("Run all", "Next step", "Switch the joint fuse mode (as saved / validation)",
                       "Export the report (JSON, Markdown, SVG)", "Open a checkpoint (.nemo) or a recorded bundle…",
                       "Open an audio clip or a corpus (manifest, list, folder)…",
                       "Core ML compute-unit sweep", "Rerun step", "Cancel", "Help", "Toggle light / dark theme",
                       "Export to a directory…", "Open recent checkpoint demo-rnnt.nemo"):
            assert wanted in titles
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"run all")
        await pilot.pause(0.3)
        assert "Run all" in screen_text(app)
        await pilot.press("escape")
        await pilot.press("u")
        assert isinstance(app.screen, SweepScreen)
        text = screen_text(app)
        assert all(unit in text for unit in ("CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL"))
        if sys.platform != "darwin":
            assert "needs macOS" in text
        await pilot.press("escape")


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "darwin", reason="Core ML runs on macOS: the drift search is not refused there")
async def test_drift_key_on_the_sweep_screen_says_core_ml_cannot_run_here() -> None:
    from rnnt_tui.app.screens.sweep import SweepScreen

    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("u")
        assert isinstance(app.screen, SweepScreen)
        assert "sweep.drift" in {b.id for b in app.screen._bindings.get_bindings_for_key("d")}
        await pilot.press("d")
        await pilot.pause(0.2)
        refusals = [n for n in app._notifications if n.title == "Drift search"]
        assert refusals and refusals[-1].message.startswith("Core ML cannot run here:")
        assert refusals[-1].severity == "warning"
        assert isinstance(app.screen, SweepScreen) and not busy(app)  # nothing started, nothing crashed
        assert "needs macOS" in screen_text(app)
        await pilot.press("escape")


@pytest.mark.slow
async def test_quit_while_loading_is_clean() -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.05)
        await pilot.press("q")
        await wait_for(pilot, lambda: app._exit, "the exit", timeout=60)
    assert app.return_code in (0, None)
    assert isinstance(app.client.engine, ProcessEngine)
    proc = app.client.engine._proc
    assert proc is None or proc.wait(10) is not None  # the engine process (mid-import) went with the app


@pytest.mark.slow
async def test_an_engine_process_that_dies_is_reported_and_the_app_recovers() -> None:
    from rnnt_tui.app.screens.error import ErrorScreen

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        assert isinstance(app.client.engine, ProcessEngine) and app.client.engine._proc is not None
        app.client.engine._proc.kill()  # as the kernel's OOM killer would
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen)
                       and "engine process stopped unexpectedly" in screen_text(app), "the error modal")
        await pilot.press("escape")
        assert app.state.session is None and "o opens a checkpoint" in screen_text(app)
        app.open_checkpoint(demo_checkpoint(), demo_audio())  # a fresh engine
        await ready(pilot)
        await pilot.press("r")
        await settle(pilot)
        assert [app.state.results[name].status for name in ("encoder", "decoder", "joint")] == ["done"] * 3


UI_PROCESS_SCRIPT = """
import asyncio, json, sys
from rnnt_tui.app.app import RnntApp
from rnnt_tui.app.choices import RuntimeChoices
from rnnt_tui.paths import demo_audio, demo_checkpoint

async def main():
    app = RnntApp(demo_checkpoint(), demo_audio(), RuntimeChoices())
    async with app.run_test(size=(120, 40)) as pilot:
        while app.state.session is None:
            await pilot.pause(0.1)
        await pilot.press("r")
        while "decode" not in app.state.results:
            await pilot.pause(0.1)
        statuses = {name: result.status for name, result in app.state.results.items()}
    heavy = sorted(m for m in ("torch", "nemo", "onnxruntime", "coremltools", "lightning") if m in sys.modules)
    print(json.dumps({"statuses": statuses, "heavy": heavy, "agree": app.state.decode.first_divergence is None}))

asyncio.run(main())
"""


def test_the_ui_process_never_imports_torch_nemo_or_the_runtimes() -> None:
    """The app's own process only draws: the whole comparison ran in the engine process."""
    out = subprocess.run([sys.executable, "-c", UI_PROCESS_SCRIPT], capture_output=True, text=True, timeout=300,
                         check=True).stdout
    found = json.loads(out.strip().splitlines()[-1])
    assert found["statuses"]["encoder"] == found["statuses"]["joint"] == "done" and found["agree"]
    assert found["heavy"] == []


@pytest.mark.slow
async def test_cancel_leaves_a_working_app() -> None:
    """Esc mid-step: the end state is set by the cancel itself (nothing the engine still finishes changes it);
    the test waits on the run's own end message, never on time."""
    from rnnt_tui.core.pipeline.events import StepStarted

    messages: list[Message] = []
    app = make_app(runs=300, warmup=0)  # steps long enough that Esc lands in one, whatever the machine's load
    async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
        await ready(pilot)
        await pilot.press("r")
        await wait_for(pilot, lambda: bool(of_type(messages, StepStarted)), "a step to start")
        await pilot.press("escape")
        assert all(app.pipeline.status(name) not in ("running", "preparing") for name in STEPS)
        assert "cancelled" in [app.pipeline.status(name) for name in STEPS]
        assert app.status.text == "Cancelled"
        await wait_for(pilot, lambda: bool(of_type(messages, JobDone)), "the cancelled run's end")
        await pilot.pause(0)  # let every message queued before it be handled
        assert all(app.pipeline.status(name) not in ("running", "preparing") for name in STEPS)
        assert app.status.text == "Cancelled"
        ended = len(of_type(messages, JobDone))
        await pilot.press("r")
        await wait_for(pilot, lambda: len(of_type(messages, JobDone)) > ended, "the second run")
        assert of_type(messages, JobDone)[-1].text.startswith("Done")
        assert [r.status for r in app.state.results.values()].count("done") >= 3


@pytest.mark.slow
async def test_unwritable_export_is_a_notification_and_errors_open_a_modal(tmp_path: Path) -> None:
    from rnnt_tui.app.screens.error import ErrorScreen

    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        blocked = tmp_path / "a-file"
        blocked.write_text("")
        app.write_report(blocked / "reports", "x", blocked / "x.svg")  # a folder cannot be made inside a file
        await settle(pilot)
        note = list(app._notifications)[-1]
        assert note.severity == "error" and "reports" in note.message
        assert app.state.session is not None

        app.push_screen(ErrorScreen("Something went wrong while testing", "RuntimeError: boom",
                                    "Traceback (most recent call last):\n  ...\nRuntimeError: boom"))
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "RuntimeError: boom" in text and "Details" in text
        assert "Traceback" not in text  # details stay folded until asked for
        await pilot.press("escape")
        assert not isinstance(app.screen, ErrorScreen)


@pytest.mark.slow
async def test_a_mismatching_candidate_is_marked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A candidate with one joint weight nudged (tests/perturbed_runtime.py): the joint fails its tolerance."""
    from rnnt_tui.core import runtimes

    monkeypatch.setitem(runtimes.RUNTIMES, "perturbed", "perturbed_runtime:PerturbedRuntime")
    app = make_app(against="perturbed", engine=Engine())  # in-process: the patched registry is this process's
    async with app.run_test(size=(160, 50)) as pilot:
        await ready(pilot)
        await pilot.press("r")
        await settle(pilot)
        assert app.state.results["joint"].status == "mismatch"
        assert app.state.results["encoder"].status == "done"
        assert str(app.query_one(DiffsTable).get_cell("joint/logits", "result")) == "FAIL"
        assert "✗ mismatch" in screen_text(app)
        await pilot.press("3")
        assert "█" in screen_text(app)  # the joint heatmaps are drawn


async def test_a_bad_checkpoint_on_the_command_line_leaves_the_app_usable(tmp_path: Path) -> None:
    app = make_app(tmp_path / "nope.nemo")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        note = list(app._notifications)[-1]
        assert note.severity == "error" and "nope.nemo" in note.title
        assert app.state.session is None
        assert "o opens a checkpoint" in screen_text(app)
        await pilot.press("r")  # nothing to run yet: a warning, no crash
        assert list(app._notifications)[-1].severity == "warning"


async def test_a_bad_checkpoint_keeps_its_reason_on_the_status_line_after_the_notice(tmp_path: Path) -> None:
    """The notice names the file and the whole problem but times out; the status line keeps the reason, short."""
    empty = tmp_path / "empty.nemo"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.nemo"
    corrupt.write_bytes(bytes(range(256)) * 8)
    folder = tmp_path / "folder.nemo"
    folder.mkdir()
    notes = tmp_path / "notes.nemo"
    notes.write_text("these are my meeting notes, not a checkpoint\n" * 20)
    reasons = {empty: "is empty, not a .nemo checkpoint", corrupt: "not a readable .nemo archive: not a tar file",
               folder: "is a directory, not a .nemo checkpoint", notes: "not a readable .nemo archive: not a tar file"}
    app = make_app(empty)
    async with app.run_test(size=(120, 30)) as pilot:
        for path, reason in reasons.items():
            if path is not empty:  # the first came from the command line
                app.open_path(path)
            await settle(pilot)
            note = list(app._notifications)[-1]
            assert note.severity == "error" and path.name in note.title, note
            app.clear_notifications()  # as when the notice times out
            await pilot.pause(0.1)
            assert app.state.session is None
            assert f"{path.name} not opened: {reason} (o opens a checkpoint)" in screen_text(app)


@pytest.mark.slow
async def test_a_conversion_crash_shows_its_traceback_folded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A candidate that crashes while being prepared: a modal with the reason, the traceback folded under
    Details; the reference still runs."""
    from textual.widgets import Collapsible

    from rnnt_tui.app.screens.error import ErrorScreen
    from rnnt_tui.core import runtimes

    monkeypatch.setitem(runtimes.RUNTIMES, "crashing", "perturbed_runtime:CrashingRuntime")
    app = make_app(engine=Engine(), against="crashing")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen) and bool(app.screen.query(Collapsible)),
                       "the error modal")
        screen = app.screen
        assert isinstance(screen, ErrorScreen)
        assert "slice_by_index_42" in screen.message
        assert "Traceback" in screen.details and screen.query_one(Collapsible).collapsed
        assert "Traceback" not in screen_text(app)  # folded: not on screen until opened
        await pilot.press("escape")
        await ready(pilot)
        assert app.state.session is not None and app.state.session.candidate_note is not None


@pytest.mark.slow
async def test_corpus_tab_runs_a_manifest_opens_an_utterance_and_returns(tmp_path: Path) -> None:
    """`rnnt-tui CHECKPOINT MANIFEST`: the corpus runs on the open model, its rows and totals fill the Corpus tab,
    Enter opens an utterance in the explorer (no second restore) and Esc returns."""
    import json

    from textual.widgets import TabbedContent

    from rnnt_tui.app.widgets.corpus_view import CorpusTable
    from rnnt_tui.paths import demo_dir

    clips = json.loads((demo_dir() / "clips.json").read_text())[:2]
    manifest = tmp_path / "two.jsonl"
    manifest.write_text("\n".join(json.dumps({"audio_filepath": str(demo_dir() / c["audio"]), "text": c["text"]})
                                  for c in clips) + "\n")
    app = RnntApp(demo_checkpoint(), demo_audio(), RuntimeChoices(), engine=Engine(), manifest=manifest)
    messages: list[Message] = []
    async with app.run_test(size=(140, 44), message_hook=messages.append) as pilot:
        await wait_for(pilot, lambda: any(type(e).__name__ == "CorpusFinished" for e in events(messages)),
                       "the corpus run", timeout=180)
        await pilot.pause(0.2)
        table = app.query_one(CorpusTable)
        assert table.row_count == 2 and app.query_one(TabbedContent).active == "tab-corpus"
        text = screen_text(app)
        assert "QoI 100.0% of 2" in text and "identical 100.0% of 2" in text, text
        assert "ONNX Runtime" in text and "NeMo / PyTorch" in text
        restores = len(of_type(messages, ModelRestored))
        table.focus()
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: app.state.audio_path.name == clips[1]["audio"] and "decode" in app.state.results,
                       "the utterance in the explorer", timeout=120)
        await ready(pilot)
        assert len(of_type(messages, ModelRestored)) == restores  # same restored model
        await pilot.press("escape")
        assert app.query_one(TabbedContent).active == "tab-corpus"


@pytest.mark.slow
async def test_corpus_subset_runs_the_candidate_on_some_entries_and_each_row_says_what_ran_it(tmp_path: Path) -> None:
    """The Corpus tab's subset field (`corpus --subset first:1 --rest mil`): a spec it cannot read, or a rest that
    is the candidate itself, is refused with the reason and nothing runs; first:1 runs ONNX Runtime on the first
    entry and the MIL interpreter on the other, the "ran on" column says which, and the runner's estimate stays on
    the tab."""
    from textual.widgets import Input, Select, Static

    from rnnt_tui.app.widgets.corpus_view import CorpusTable
    from rnnt_tui.core.corpus.subset import Subset
    from rnnt_tui.paths import demo_dir

    clips = json.loads((demo_dir() / "clips.json").read_text())[:2]
    manifest = tmp_path / "two.jsonl"
    manifest.write_text("\n".join(json.dumps({"audio_filepath": str(demo_dir() / c["audio"]), "text": c["text"]})
                                  for c in clips) + "\n")
    app = RnntApp(demo_checkpoint(), demo_audio(), RuntimeChoices(), engine=Engine(),
                  subset=Subset.parse("every:2", "onnx"))  # `rnnt-tui … --subset every:2 --rest onnx`
    messages: list[Message] = []
    async with app.run_test(size=(160, 44), message_hook=messages.append) as pilot:
        await ready(pilot)
        await pilot.press("7")
        field, rest = app.query_one("#corpus-subset", Input), app.query_one("#corpus-rest", Select)
        note = app.query_one("#corpus-subset-note", Static)
        assert (field.value, rest.value) == ("every:2", "onnx")
        assert "the candidate on every 2nd manifest entry (from the first), ONNX Runtime on the rest" in str(
            note.render())
        field.value = ""
        await pilot.pause(0.1)
        assert "Every entry on the candidate" in str(note.render())
        for spec, reason in (("some:2", "expected first:N or every:K"),
                             ("first:1", "another runtime than the candidate (ONNX Runtime)")):
            field.value = spec
            rest.value = "onnx"
            await pilot.pause(0.1)
            app.open_audio(manifest)
            await pilot.pause(0.1)
            told = list(app._notifications)[-1]
            assert reason in told.message and told.severity == "warning", told.message
            assert not app.corpus_running() and app.query_one(CorpusTable).row_count == 0
        assert "expected first:N or every:K" not in str(note.render())
        rest.value = "mil"
        await pilot.pause(0.1)
        assert "the candidate on the first 1 manifest entry, Core ML program, MIL interpreter on the rest" in str(
            note.render())
        app.open_audio(manifest)
        await wait_for(pilot, lambda: any(type(e).__name__ == "CorpusFinished" for e in events(messages)),
                       "the corpus run", timeout=300)
        await pilot.pause(0.2)
        table = app.query_one(CorpusTable)
        assert [str(cell) for cell in table.get_column("ran_on")] == ["ONNX Runtime",
                                                                       "Core ML program, MIL interpreter"]
        estimate = str(app.query_one("#corpus-estimate", Static).render())
        assert "estimate after the first utterance of" in estimate, estimate
        planned = [e for e in events(messages) if type(e).__name__ == "CorpusPlanned"]
        assert "ONNX Runtime: 1 utterance" in planned[0].estimate and "MIL interpreter: 1 utterance" in \
            planned[0].estimate


@pytest.mark.slow
async def test_a_recorded_bundle_opens_like_a_checkpoint(tmp_path: Path) -> None:
    """`rnnt-tui BUNDLE`: the summary and fuse panel from the bundle, no restore, steps run the candidate only
    against the recorded reference."""
    from click.testing import CliRunner

    from rnnt_tui.cli.bundle_cmd import record

    bundle = tmp_path / "demo-bundle"
    result = CliRunner().invoke(record, [str(demo_checkpoint()), str(demo_audio()), "--out", str(bundle),
                                         "--runs", "1", "--warmup", "0", "--export", "onnx"])
    assert result.exit_code == 0, result.output
    app = RnntApp(bundle, demo_audio(), RuntimeChoices(against="onnx", runs=1, warmup=0), engine=Engine())
    messages: list[Message] = []
    async with app.run_test(size=(140, 44), message_hook=messages.append) as pilot:
        await ready(pilot)
        summaries = of_type(messages, SummaryReady)
        assert summaries and summaries[0].recorded and not of_type(messages, ModelRestored)
        assert "recorded reference" in screen_text(app)
        await pilot.press("r")
        await wait_for(pilot, lambda: "decode" in app.state.results and not busy(app), "every step")
        statuses = {n: r.status for n, r in app.state.results.items()}
        assert statuses.pop("preprocessor") == "reference-only"  # ONNX Runtime has no preprocessor
        assert set(statuses.values()) == {"done"}, {n: r.error for n, r in app.state.results.items()}
        assert app.state.labels["reference"].endswith("(recorded)")
        assert app.state.decode is not None and app.state.decode.first_divergence is None
        from rnnt_tui.app.widgets.corpus_view import CorpusTable, CorpusView

        await pilot.press("7")
        await pilot.pause(0.2)
        app.query_one(CorpusTable).focus()
        await pilot.press("m")  # streaming needs the restored model: refused, the tab stays offline
        await pilot.pause(0.1)
        assert not app.state.corpus_stream and not app.query_one(CorpusView).stream
        assert any("a bundle holds none" in n.message for n in app._notifications)


@pytest.mark.slow
async def test_precision_screen_certifies_the_conversion_in_the_mil_interpreter() -> None:
    """p, r: the demo's fp16 conversion against its fp32 program, every component finite, the decode identical,
    hazards and lint listed, and the label says what computed it."""
    from rnnt_tui.app.screens.precision import PrecisionScreen, WrappedTable

    app = make_app(engine=Engine())
    async with app.run_test(size=(80, 24)) as pilot:  # the smallest size: every row reachable, nothing cut
        await ready(pilot)
        await pilot.press("p")
        assert isinstance(app.screen, PrecisionScreen)
        await pilot.press("r")
        screen = app.screen
        await wait_for(pilot, lambda: screen.query_one("#precision-components", WrappedTable).row_count == 4,
                       "the precision report", timeout=300)
        text = " ".join(screen_text(app).split())
        assert "Core ML program in rnnt-tui's MIL interpreter" in text
        assert "decode through the programs: identical" in text and "status ok" in text, text
        rows = screen.query_one("#precision-components", WrappedTable).rows
        assert [str(row[3]) for row in rows] == ["yes"] * 4  # finite
        lint = screen.query_one("#precision-lint", WrappedTable)
        assert lint.row_count > 0
        await pilot.pause(0.5)  # the tables laid out: taller than 24 rows
        await pilot.press("end")  # the screen scrolls as a whole: the lint rows are reachable
        box = screen.query_one("#precision-box")
        await wait_for(pilot, lambda: box.scroll_y > 0 and box.scroll_y == box.max_scroll_y
                       and str(lint.rows[-1][1]) in screen_text(app), "the last lint row", timeout=30)


@pytest.mark.slow
async def test_recent_files_that_cannot_be_saved_are_said_once(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("RNNT_TUI_STATE_DIR", str(blocker / "state"))  # a directory cannot be made in a file
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("t")  # the theme is remembered: a write
        await pilot.press("t")
        notes = [n for n in app._notifications if n.title == "Cannot save recent files"]
        assert len(notes) == 1 and notes[0].severity == "warning" and "state" in notes[0].message


@pytest.mark.slow
async def test_streaming_tab_streams_the_demo_chunk_by_chunk_and_refuses_an_offline_checkpoint() -> None:
    from rnnt_tui.app.widgets.stream_view import StreamView
    from rnnt_tui.core.stream.config import stream_demo

    checkpoint, clip = stream_demo()
    app = make_app(checkpoint, clip, against="onnx")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        assert not app.query("#stream-view")  # mounted when first shown or needed, not for the first frame
        await pilot.press("8")
        await pilot.pause(0.1)
        view = app.query_one("#stream-view", StreamView)
        seen: list[int] = []
        original = view.add_chunk
        view.add_chunk = lambda chunk: (seen.append(chunk["index"]), original(chunk))[1]  # type: ignore[method-assign]
        await pilot.press("s")
        await wait_for(pilot, lambda: "status" in view.report and not busy(app), "the streaming comparison")
        await pilot.pause(0.2)
        chunks = view.report["chunks"]
        assert len(chunks) > 1 and seen == [c["index"] for c in chunks]  # each chunk arrived as it was compared
        assert app.query_one("TabbedContent").active == "tab-stream"  # type: ignore[attr-defined]
        reference = "".join(c["tokens"]["reference_text"] for c in chunks)
        candidate = "".join(c["tokens"]["candidate_text"] for c in chunks)
        assert reference.strip() and candidate == reference
        text = screen_text(app)
        assert "Chunk timeline" in text and "NeMo streaming:" in text and "candidate:" in text
        assert reference.split()[0] in text

    app = make_app(against="onnx")  # the offline demo: not cache-aware
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: not busy(app), "the refusal")
        await pilot.pause(0.2)
        refusals = [n for n in app._notifications if n.title == "Cannot stream"]
        assert refusals and "demo-rnnt.nemo" in refusals[-1].message
        assert app.state.session is not None  # the session on screen is kept


@pytest.mark.slow
async def test_a_replaced_streaming_runs_late_report_does_not_land_on_the_new_run() -> None:
    """s pressed again while a run was ending: the replaced run can still return its report (its last cancel check is
    between chunks; NeMo's offline transcript and the report come after it). That late report is dropped: the
    Streaming tab shows the new run only, whose chunks are never appended to the old report."""
    from rnnt_tui.app.messages import ChunkCompared, StreamDone
    from rnnt_tui.app.widgets.stream_view import StreamView
    from rnnt_tui.core.stream.config import stream_demo

    checkpoint, clip = stream_demo()
    app = make_app(checkpoint, clip, against="onnx")
    messages: list[Message] = []
    async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
        await ready(pilot)
        await pilot.press("s")
        view = app.query_one("#stream-view", StreamView)
        await wait_for(pilot, lambda: "status" in view.report and not busy(app), "the first streaming comparison")
        finished = view.report
        messages.clear()
        await pilot.press("s")
        await wait_for(pilot, lambda: any(isinstance(m, ChunkCompared) for m in messages), "the second run's chunk")
        replaced = next(m for m in messages if isinstance(m, ChunkCompared)).envelope.call
        await pilot.press("s")  # the third run replaces the second, live
        assert app.client.is_stale(replaced)
        # the second run's report arriving now, as it does when that run was past its last cancel check
        app.post_message(StreamDone(finished, call=replaced))
        await pilot.pause(0.2)
        assert view.report is not finished, "the replaced run's report is on screen"
        await wait_for(pilot, lambda: "status" in view.report and not busy(app), "the third streaming comparison")
        indexes = [c["index"] for c in view.report["chunks"]]
        last = [m for m in messages if isinstance(m, StreamDone)][-1]
        assert indexes == sorted(set(indexes)) and last.call != replaced and view.report is last.report


@pytest.mark.slow
async def test_opening_another_clip_mid_stream_cancels_it_and_empties_the_streaming_tab(tmp_path: Path) -> None:
    """A clip opened while a long streaming run is going: the run is cancelled (it held the model, so the new clip
    waited for the whole run), and once the new clip's session is ready the Streaming tab no longer shows the old
    clip's chunks or report under the new clip's name."""
    import numpy as np
    import soundfile as sf

    from rnnt_tui.app.messages import ChunkCompared, StreamDone
    from rnnt_tui.app.widgets.stream_view import StreamView
    from rnnt_tui.core.stream.config import stream_demo

    checkpoint, clip = stream_demo()
    samples, rate = sf.read(clip, dtype="float32")
    long_clip = tmp_path / "long.wav"
    sf.write(long_clip, np.tile(samples, 12), rate)  # about a minute: over a hundred chunks
    app = make_app(checkpoint, long_clip, against="onnx")
    messages: list[Message] = []
    async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
        await ready(pilot)
        await pilot.press("s")
        view = app.query_one("#stream-view", StreamView)
        await wait_for(pilot, lambda: len(view.report["chunks"]) >= 3, "a few chunks of the long clip")
        run = next(m for m in messages if isinstance(m, ChunkCompared)).envelope.call
        app.open_audio(clip)  # what the clip picker (a) does with the file chosen
        assert app.client.is_stale(run)  # cancelled with the open
        await wait_for(pilot, lambda: app.state.session is not None and app.state.audio_path == clip
                       and not busy(app), "the new clip's session")
        await pilot.pause(0.2)
        assert view.report == {"chunks": []}, "the old clip's streaming result is still on screen"
        assert not any(isinstance(m, StreamDone) and m.call == run and "status" in view.report for m in messages)


@pytest.mark.slow
async def test_streaming_tab_at_80x24_keeps_its_cells_readable_scrolls_and_steps_chunks_with_n_and_p() -> None:
    """At 80x24 the Streaming tab shows as many chunks as fit, whole (every chunk in one table cut each drift cell to
    "8e-…", and a minute of audio left each column empty), scrolls to the transcripts and cache drift below the
    timeline, and n / p step its chunk cursor after s (n used to run the next pipeline step on the Step tab)."""
    import re

    from rnnt_tui.app.widgets.stream_view import StreamView
    from rnnt_tui.core.stream.config import stream_demo

    checkpoint, clip = stream_demo()
    app = make_app(checkpoint, clip, against="onnx")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("s")
        view = app.query_one("#stream-view", StreamView)
        await wait_for(pilot, lambda: "status" in view.report and not busy(app), "the streaming comparison")
        await pilot.pause(0.3)
        total = len(view.report["chunks"])
        text = screen_text(app)
        drift_row = next(line for line in text.splitlines() if "│ drift" in line or "│ dri" in line)
        cells = re.findall(r"\d+e-\d\d", drift_row)
        assert cells and "…" not in drift_row, drift_row  # each shown chunk's drift whole
        assert f"of {total}" in " ".join(text.split())  # which chunks are shown
        assert view.cursor == total - 1
        await pilot.press("p", "p")
        assert view.cursor == total - 3 and app.query_one("TabbedContent").active == "tab-stream"  # type: ignore[attr-defined]
        await pilot.press("n")
        assert view.cursor == total - 2 and not busy(app)  # no pipeline step started
        await pilot.press("end")
        await pilot.pause(0.3)
        text = screen_text(app)
        assert "NeMo streaming:" in text and "cache drift:" in text


@pytest.mark.slow
async def test_shift_s_streams_with_the_caches_in_states_and_says_where_they_were() -> None:
    """S: the streaming comparison with the candidate's encoder caches in states (`stream --cache-states`) - the MIL
    interpreter running the multifunction Core ML package's two functions on one state - and the Streaming tab says
    they were carried in Core ML states; with ONNX Runtime (no states) a notice says why, and nothing runs."""
    from rnnt_tui.app.widgets.stream_view import StreamView
    from rnnt_tui.core.stream.config import stream_demo

    checkpoint, clip = stream_demo()
    app = make_app(checkpoint, clip, against="mil")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("S")
        await pilot.pause(0.1)
        view = app.query_one("#stream-view", StreamView)
        await wait_for(pilot, lambda: "status" in view.report and not busy(app), "the streaming comparison")
        await pilot.pause(0.2)
        report = view.report
        assert report["caches_carried_in"].startswith("Core ML states") and "multifunction" in report[
            "caches_carried_in"]
        assert report["candidate"] == "Core ML program, MIL interpreter"
        assert report["decode"]["candidate_text"] == report["decode"]["reference_text"]
        assert "carried in Core ML states" in " ".join(screen_text(app).split())

    app = make_app(checkpoint, clip, against="onnx")
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("S")
        await pilot.pause(0.2)
        refusals = [n for n in app._notifications if n.title == "Cannot stream with states"]
        assert refusals and "onnx" in refusals[-1].message
        assert not busy(app) and not app.query("#stream-view")


@pytest.mark.slow
async def test_corpus_tab_streams_a_manifest(tmp_path: Path) -> None:
    """m on the Corpus tab: the corpus scores streaming transcripts (the runner's `corpus --stream`, on the open
    model); the per-context rows and the rows' streaming figures are the run's own report's."""
    import json

    from rnnt_tui.app.format import num
    from rnnt_tui.app.widgets.corpus_view import CorpusTable, CorpusView
    from rnnt_tui.core.stream.config import stream_demo

    checkpoint, clip = stream_demo()
    manifest = tmp_path / "two.jsonl"
    manifest.write_text("\n".join(json.dumps({"audio_filepath": str(clip.parent / name), "text": text}) for name, text
                                  in (("hello-world.wav", "hello world"), ("the-quick-brown-fox.wav", "the quick"))))
    app = make_app(checkpoint, clip, against="onnx")
    messages: list[Message] = []
    async with app.run_test(size=(160, 44), message_hook=messages.append) as pilot:
        await ready(pilot)
        await pilot.press("7")
        app.query_one(CorpusTable).focus()
        await pilot.press("m")  # no corpus yet: the mode is kept for the next one
        assert app.state.corpus_stream and app.query_one(CorpusView).stream
        app.start_corpus(manifest)
        await wait_for(pilot, lambda: any(type(e).__name__ == "CorpusFinished" for e in events(messages)),
                       "the streaming corpus run", timeout=300)
        await pilot.pause(0.3)
        finished = next(e for e in events(messages) if type(e).__name__ == "CorpusFinished")
        report = json.loads((finished.out_dir / "report.json").read_text())
        assert report["run"]["stream"] is not None and "-onnx-stream-" in finished.out_dir.name  # its own folder
        assert [r["att_context_size"] for r in finished.totals["stream"]] == \
            [r["att_context_size"] for r in report["stream"]]
        assert app.query_one(CorpusTable).row_count == 2
        text = screen_text(app)
        assert "streaming" in text and "Per att context" in text and "NeMo streaming" in text, text
        assert str(report["stream"][0]["att_context_size"]) in text
        drift = report["stream"][0]["drift_free_running"]["worst"]
        assert f"drift worst {num(drift)}" in " ".join(text.split())
