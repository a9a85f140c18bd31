"""The bad-input matrix, on the headless commands and in the app.

Every bad checkpoint and every bad clip of `badfiles` goes through `inspect` (checkpoints the summary refuses),
`run` and `compare --against onnx`; each must exit 2 with one message on stderr that names the file and the
problem, no traceback, and leave every file outside the cache dir as it was (the inputs' folders, the working
directory, HOME, the temp dir and the app's state dir are snapshotted around each call). Odd but valid clips
(8-bit to float, 8 to 96 kHz, 1 to 6 channels, minutes long) must run. In the app, each bad pick must become a
notification naming the file while the session on screen stays the one that was open.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import badfiles
import numpy as np
import pytest
from badfiles import AUDIO_CASES, CHECKPOINT_CASES, Case

from rnnt_tui.cli import main
from rnnt_tui.core.audio import load_audio
from rnnt_tui.exit_codes import ExitCode
from rnnt_tui.paths import demo_checkpoint


@pytest.fixture(scope="module")
def bad_checkpoints(checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    root = tmp_path_factory.mktemp("bad-checkpoints")
    cases = badfiles.checkpoint_cases(root, checkpoints["rnnt-char"], checkpoints["ctc"], other=checkpoints["ctc"])
    assert tuple(c.name for c in cases) == CHECKPOINT_CASES
    return {c.name: c for c in cases}


@pytest.fixture(scope="module")
def bad_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    cases = badfiles.audio_cases(tmp_path_factory.mktemp("bad-clips"))
    assert tuple(c.name for c in cases) == AUDIO_CASES
    return {c.name: c for c in cases}


@dataclass
class Sandbox:
    """A private cwd, HOME and temp dir for one CLI call, and the folders whose files must not change."""

    roots: list[Path]

    def snapshot(self) -> badfiles.Snapshot:
        return badfiles.snapshot(*self.roots)


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checkpoints: dict[str, Path], clip: Path) -> Sandbox:
    cwd, home, tmp = (tmp_path / name for name in ("cwd", "home", "tmp"))
    for folder in (cwd, home, tmp):
        folder.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    state = Path(os.environ["RNNT_TUI_STATE_DIR"])
    inputs = {checkpoints["rnnt-char"].parent, clip.parent, demo_checkpoint().parent}
    return Sandbox(roots=[cwd, home, tmp, state, *sorted(inputs)])


def cli(capsys: pytest.CaptureFixture[str], sandbox: Sandbox, *extra_roots: Path,
        args: list[str]) -> tuple[int, str, str]:
    """Run `rnnt-tui args` in-process; assert no file outside the cache dir changed; return code, out, err."""
    roots = [*sandbox.roots, *extra_roots]
    before = badfiles.snapshot(*roots)
    code = main(args)
    captured = capsys.readouterr()
    assert badfiles.changes(before, badfiles.snapshot(*roots)) == {"added": [], "removed": [], "modified": []}
    return code, captured.out, captured.err


def squeeze(text: str) -> str:
    """`text` without any whitespace: Rich wraps stderr at 80 columns, inside paths and between words."""
    return "".join(text.split())


def assert_refused(code: int, err: str, case: Case) -> None:
    assert code == ExitCode.BAD_INPUT, (case.name, code, err)
    assert squeeze(str(case.path)) in squeeze(err), (case.name, err)
    assert squeeze(case.problem) in squeeze(err), (case.name, case.problem, err)
    assert err.startswith("error: ") and err.count("error:") == 1 and "Traceback" not in err, err




# -- checkpoints ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CHECKPOINT_CASES)
def test_bad_checkpoint_exits_2_naming_it(capsys: pytest.CaptureFixture[str], sandbox: Sandbox,
                                          bad_checkpoints: dict[str, Case], clip: Path, name: str) -> None:
    case = bad_checkpoints[name]
    roots = (case.path.parent,)
    commands = [["run", str(case.path), str(clip), "--runs", "1", "--warmup", "0"],
                ["compare", str(case.path), str(clip), "--against", "onnx", "--runs", "1", "--warmup", "0",
                 "--json"]]
    if case.stage == "summary":
        commands.insert(0, ["inspect", str(case.path)])
    for args in commands:
        code, out, err = cli(capsys, sandbox, *roots, args=args)
        assert_refused(code, err, case)
        assert out == ""


def test_python_tags_in_the_config_never_run(capsys: pytest.CaptureFixture[str], sandbox: Sandbox,
                                             bad_checkpoints: dict[str, Case]) -> None:
    case = bad_checkpoints["config-python-tag"]
    code, _, err = cli(capsys, sandbox, case.path.parent, args=["inspect", str(case.path)])
    assert_refused(code, err, case)
    assert not any(root.joinpath("PWNED").exists() for root in (Path.cwd(), case.path.parent))


def test_unsafe_archives_never_reach_nemo(capsys: pytest.CaptureFixture[str], sandbox: Sandbox,
                                          monkeypatch: pytest.MonkeyPatch, bad_checkpoints: dict[str, Case],
                                          clip: Path) -> None:
    from rnnt_tui.core import checkpoint

    def no_restore(*_: Any, **__: Any) -> None:
        raise AssertionError("NeMo's loader was reached")

    monkeypatch.setattr(checkpoint, "restore", no_restore)
    for name in ("dotdot", "nested-dotdot", "absolute", "symlink", "hardlink", "device", "fifo"):
        case = bad_checkpoints[name]
        code, _, err = cli(capsys, sandbox, case.path.parent, args=["run", str(case.path), str(clip)])
        assert_refused(code, err, case)
        assert squeeze("unsafe archive, refused") in squeeze(err)


# -- audio ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", AUDIO_CASES)
def test_bad_clip_exits_2_naming_it(capsys: pytest.CaptureFixture[str], sandbox: Sandbox,
                                    bad_clips: dict[str, Case], checkpoints: dict[str, Path], name: str) -> None:
    case = bad_clips[name]
    model = str(checkpoints["rnnt-char"])
    for args in (["run", model, str(case.path), "--runs", "1", "--warmup", "0", "--json"],
                 ["compare", model, str(case.path), "--against", "onnx", "--runs", "1", "--warmup", "0", "--json"]):
        code, out, err = cli(capsys, sandbox, case.path.parent, args=args)
        assert_refused(code, err, case)
        assert out == ""


def test_short_clip_refusal_names_the_encoder_frame(bad_clips: dict[str, Case]) -> None:
    """The core side of the short-clip case: `min_seconds` from the summary's hop and subsampling."""
    from rnnt_tui.core.audio import encoder_frame_seconds
    from rnnt_tui.core.errors import BadInputError

    frame = encoder_frame_seconds(0.01, 4)
    assert frame == pytest.approx(0.04)
    with pytest.raises(BadInputError) as info:
        load_audio(bad_clips["3ms"].path, 16000, min_seconds=frame)
    assert bad_clips["3ms"].problem in str(info.value)
    assert encoder_frame_seconds(None, 4) is None and encoder_frame_seconds(0.01, None) is None
    assert len(load_audio(bad_clips["3ms"].path, 16000).samples) == 48  # without a bound it still loads


VALID = [("PCM_U8", 8000, 1), ("PCM_16", 11025, 3), ("PCM_24", 96000, 2), ("PCM_32", 22050, 1),
         ("FLOAT", 44100, 6), ("DOUBLE", 48000, 4), ("ULAW", 8000, 1)]


@pytest.mark.parametrize(("subtype", "rate", "channels"), VALID)
def test_odd_but_valid_clips_run(capsys: pytest.CaptureFixture[str], sandbox: Sandbox, tmp_path: Path,
                                 subtype: str, rate: int, channels: int) -> None:
    """On the bundled (trained) model, which decodes a short clip in milliseconds."""
    folder = tmp_path / "clips"
    folder.mkdir()
    path = badfiles.write_audio(folder / "odd.wav", seconds=0.5, rate=rate, channels=channels, subtype=subtype)
    code, out, err = cli(capsys, sandbox, folder, args=["run", str(demo_checkpoint()), str(path), "--runs", "1",
                                                        "--warmup", "0", "--json"])
    assert code == ExitCode.OK, err
    audio = json.loads(out)["audio"]
    assert (audio["subtype"], audio["original_rate"], audio["channels"]) == (subtype, rate, channels)
    assert audio["downmixed"] == (channels > 1) and audio["resampled"] == (rate != 16000)
    assert audio["sample_rate"] == 16000 and audio["duration_s"] == pytest.approx(0.5, abs=2e-3)


def test_minutes_long_clip_loads_in_bounded_memory(tmp_path: Path) -> None:
    """Ten minutes of 48 kHz stereo: read block by block, so the peak is the 16 kHz result plus small change."""
    import soundfile as sf

    path = tmp_path / "lecture.wav"
    minute = badfiles.tone(60.0, 48000, channels=2)
    with sf.SoundFile(str(path), "w", 48000, 2, subtype="PCM_16") as out:
        for _ in range(10):
            out.write(minute)
    del minute
    tracemalloc.start()
    try:
        started = time.perf_counter()
        audio = load_audio(path, 16000)
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert audio.duration_s == pytest.approx(600.0, abs=1e-3) and audio.channels == 2 and audio.resampled
    result = audio.samples.nbytes  # 38.4 MB
    assert peak < 2.2 * result + 16e6, f"peak {peak / 1e6:.0f} MB for a {result / 1e6:.0f} MB result"
    assert seconds < 15
    assert np.all(np.isfinite(audio.samples)) and float(np.abs(audio.samples).max()) < 1.0


def test_max_seconds_refuses_before_reading(tmp_path: Path) -> None:
    from rnnt_tui.core.errors import BadInputError

    path = badfiles.write_audio(tmp_path / "long.wav", seconds=3.0)
    with pytest.raises(BadInputError, match=r"clip is 3\.0 s long; longer than the 2\.0 s"):
        load_audio(path, 16000, max_seconds=2.0)
    assert load_audio(path, 16000, max_seconds=3.0).duration_s == pytest.approx(3.0)


def test_a_minute_long_clip_runs_headless(capsys: pytest.CaptureFixture[str], sandbox: Sandbox,
                                          tmp_path: Path) -> None:
    """The bundled (trained) model on 60 s: the random fixture models emit up to max_symbols tokens per frame
    (a minute takes them ~45 s to decode, for reasons that have nothing to do with the clip)."""
    folder = tmp_path / "clips"
    folder.mkdir()
    path = badfiles.write_audio(folder / "minute.flac", seconds=60.0, rate=44100, channels=2)
    code, out, err = cli(capsys, sandbox, folder, args=["run", str(demo_checkpoint()), str(path), "--runs", "1",
                                                        "--warmup", "0", "--json"])
    assert code == ExitCode.OK, err
    report = json.loads(out)
    assert report["audio"]["duration_s"] == pytest.approx(60.0, abs=1e-3)
    encoder = next(c for c in report["components"] if c["name"] == "encoder")
    assert encoder["outputs"][0]["shape"][-1] == 1501  # 6001 feature frames (centred STFT) / 4, rounded up


# -- the app ----------------------------------------------------------------------------------------------------
@pytest.fixture
def app_factory() -> Iterator[Callable[..., Any]]:
    pytest.importorskip("textual")
    from rnnt_tui.app.app import RnntApp
    from rnnt_tui.app.choices import RuntimeChoices
    from rnnt_tui.paths import demo_audio

    def make(**options: Any) -> Any:
        return RnntApp(demo_checkpoint(), demo_audio(), RuntimeChoices(**options))

    yield make


async def _settle(pilot: Any, timeout: float = 90.0) -> None:
    from textual.worker import WorkerState

    app = pilot.app
    await pilot.pause(0.1)
    deadline = time.monotonic() + timeout
    while any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) and w.group != "runtimes" for w in app.workers):
        assert time.monotonic() < deadline, "the app stayed busy"
        await pilot.pause(0.05)
    await pilot.pause(0.1)


@pytest.mark.slow
async def test_app_bad_picks_notify_and_keep_the_session_and_says_what_it_trusts(app_factory: Callable[..., Any],
                                                        bad_checkpoints: dict[str, Case],
                                                        bad_clips: dict[str, Case], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch, checkpoints: dict[str, Path],
                                                        clip: Path) -> None:

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    from textual.notifications import Notify

    said: list[Any] = []  # every notification, including one that timed out before the session was ready
    app = app_factory()
    async with app.run_test(size=(140, 44), message_hook=said.append) as pilot:
        await _settle(pilot)
        session = app.session
        assert session is not None
        shown = " ".join(f"{m.notification.title} {m.notification.message}" for m in said
                         if isinstance(m, Notify))
        assert "checkpoints you trust" in " ".join(shown.split())
        picks = [(app.open_path, c) for c in bad_checkpoints.values()]
        picks += [(app.open_audio, c) for c in bad_clips.values()]
        roots = [cwd, Path(os.environ["RNNT_TUI_STATE_DIR"]), *{c.path.parent for _, c in picks}]
        before = badfiles.snapshot(*roots)
        for pick, case in picks:
            before_ids = {n.identity for n in app._notifications}  # old ones expire (10 s): compare identities
            pick(case.path)
            await _settle(pilot)
            fresh = [n for n in app._notifications if n.identity not in before_ids]
            assert len(fresh) == 1, (case.name, fresh)
            note = fresh[0]
            assert note.severity == "error", (case.name, note)
            assert case.path.name in note.title and squeeze(case.problem) in squeeze(note.message), (case.name, note)
            assert app.session is session, case.name
            assert app.checkpoint == demo_checkpoint() and app.summary is session.summary, case.name
            assert not [s for s in app.screen_stack if type(s).__name__ == "ErrorScreen"], case.name
        assert badfiles.changes(before, badfiles.snapshot(*roots)) == {"added": [], "removed": [], "modified": []}
        await pilot.press("r")  # the session still works after all of that
        await _settle(pilot)
        assert app.results["decode"].status == "done"
