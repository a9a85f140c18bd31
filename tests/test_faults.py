"""Faults mid-work, and numbers that cannot lie quietly.

Faults: a real process SIGKILLed during NeMo's ONNX export leaves no cache entry and the next builders (two at
once, in real processes) rebuild exactly one; Ctrl-C and cancel leave nothing either; an unwritable cache dir
(a path under a regular file: even root cannot create it) and a full disk (simulated, and a real 512 KB tmpfs
when the tests run as root) give a note and the comparison still completes; a runtime that raises part way
marks that step failed and the others still show, with exit code 4.

Numbers: NaN and Inf on either side are counted and fail the row; a shape mismatch is its own finding with no
statistics; a float16 output against float32 is noted on its row and compared upcast.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from rnnt_tui.cli import main
from rnnt_tui.core import cache as cache_module
from rnnt_tui.core.cache import MANIFEST, ArtifactCache
from rnnt_tui.core.errors import CancelledError
from rnnt_tui.core.names import Status
from rnnt_tui.core.pipeline.driver import run_steps
from rnnt_tui.core.runtimes.torch_runtime import TorchRuntime
from rnnt_tui.exit_codes import ExitCode
from rnnt_tui.paths import demo_audio, demo_checkpoint

# The bundled (trained) model and one of its clips: a random fixture model emits up to max_symbols tokens per
# frame, which makes every decode here ten times slower for nothing.
MODEL, CLIP = demo_checkpoint(), demo_audio()

BUILDER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from rnnt_tui.core.checkpoint import restore
    from rnnt_tui.core.runtimes.onnx_runtime import OnnxRuntime

    loaded = restore(Path(sys.argv[1]))
    print("restored", flush=True)
    go = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    while go is not None and not go.exists():  # a start line, so that concurrent builders really overlap
        time.sleep(0.005)
    started = time.time()
    reports = OnnxRuntime(loaded).prepare()
    print(json.dumps({"cached": reports[0].cached, "artifact": reports[0].artifact, "started": started,
                      "ended": time.time()}), flush=True)
""")


def squeeze(text: str) -> str:
    """`text` without whitespace: Rich wraps at 80 columns, inside words and paths."""
    return "".join(text.split())


def _env(cache: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "RNNT_TUI_CACHE_DIR": str(cache), "PYTHONUNBUFFERED": "1", **extra}


def _artifacts(cache: Path) -> tuple[list[Path], list[Path]]:
    """(complete-looking entry dirs, temp build dirs) under the cache's artifacts folder."""
    root = cache / "artifacts"
    if not root.is_dir():
        return [], []
    dirs = [p for p in root.iterdir() if p.is_dir()]
    return [p for p in dirs if not p.name.startswith(".")], [p for p in dirs if p.name.startswith(".tmp-")]


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 180.0, proc: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended (rc {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


# -- kill, concurrency, cancel ----------------------------------------------------------------------------------
def test_sigkill_mid_export_then_two_concurrent_rebuilds(tmp_path: Path) -> None:
    """Three real processes start together (their imports overlap): the victim exports at once and is killed
    mid-export; the two builders wait at a start line until then, and rebuild at the same moment."""
    cache = tmp_path / "cache"
    script = tmp_path / "build.py"
    script.write_text(BUILDER)
    checkpoint, go = str(MODEL), tmp_path / "go"
    logs = [(tmp_path / f"builder{i}.err").open("w") for i in range(2)]  # a file: a full pipe would block it
    victim = subprocess.Popen([sys.executable, str(script), checkpoint], env=_env(cache), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    builders = [subprocess.Popen([sys.executable, str(script), checkpoint, str(go)], env=_env(cache),
                                 stdout=subprocess.PIPE, stderr=log, text=True) for log in logs]
    try:
        _wait_for(lambda: bool(_artifacts(cache)[1]), "the export's temp dir", proc=victim)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        assert victim.returncode == -signal.SIGKILL
        entries, temps = _artifacts(cache)
        assert entries == [], "a killed export left an entry"
        assert len(temps) == 1, "the kill did not land mid-build"
        assert ArtifactCache(cache).entries() == []

        for builder in builders:  # both restored and waiting at the start line
            assert builder.stdout is not None and builder.stdout.readline().strip() == "restored"
        go.touch()
        outputs = [b.communicate(timeout=300) for b in builders]
    finally:
        procs: list[subprocess.Popen[Any]] = [victim, *builders]
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        for log in logs:
            log.close()
    for builder, log in zip(builders, logs, strict=True):
        assert builder.returncode == 0, Path(log.name).read_text()[-3000:]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert max(r["started"] for r in results) < min(r["ended"] for r in results), results  # they overlapped
    assert sorted(r["cached"] for r in results) == [False, True], results  # exactly one build, one hit
    assert results[0]["artifact"] == results[1]["artifact"]
    entries, temps = _artifacts(cache)
    assert len(entries) == 1 and temps == [], (entries, temps)  # the dead process's temp dir was swept
    manifest = json.loads((entries[0] / MANIFEST).read_text())
    assert set(manifest["files"]) >= {"encoder-model.onnx", "decoder_joint-model.onnx"}
    assert [e.meta.get("corrupt") for e in ArtifactCache(cache).entries()] == [None]


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, empty cache dir for this test, and this process's fallback state reset around it."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("RNNT_TUI_CACHE_DIR", str(cache))
    monkeypatch.setattr(cache_module, "_fallback_root", None)
    return cache


def test_cancel_during_export_keeps_nothing(own_cache: Path, demo_model: Any) -> None:
    from rnnt_tui.core.runtimes.onnx_runtime import OnnxRuntime

    cancel = threading.Event()

    def progress(message: str, fraction: float | None = None) -> None:
        if "exporting" in message:
            cancel.set()  # the user presses Esc as the export starts

    runtime = OnnxRuntime(demo_model)
    with pytest.raises(CancelledError):
        runtime.prepare(progress, cancel)
    assert _artifacts(own_cache) == ([], [])
    reports = runtime.prepare()  # and the next run builds cleanly
    assert reports[0].cached is False and len(_artifacts(own_cache)[0]) == 1


def test_ctrl_c_mid_export_exits_130_with_no_entry(own_cache: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from rnnt_tui.core.runtimes.onnx_runtime import OnnxRuntime

    real = OnnxRuntime._export

    def interrupted(self: Any, out: Path) -> dict[str, Any]:
        real(self, out)  # the files are written, then the user presses Ctrl-C before the entry is renamed in
        raise KeyboardInterrupt

    monkeypatch.setattr(OnnxRuntime, "_export", interrupted)
    code = main(["compare", str(MODEL), str(CLIP), "--against", "onnx", "--json"])
    assert code == ExitCode.INTERRUPTED and "interrupted" in capsys.readouterr().err
    assert _artifacts(own_cache) == ([], [])


def test_cache_clear_leaves_builds_of_live_processes(tmp_path: Path) -> None:
    store = ArtifactCache(tmp_path)
    store.get_or_build("k" * 40, lambda out: {"size": (out / "a.bin").write_bytes(b"x")})
    live = store.root / f".tmp-{os.getppid()}-00000000-kkkkkkkkkkkk"  # pytest's parent: alive, not us
    dead = store.root / ".tmp-999999999-00000000-kkkkkkkkkkkk"
    for folder in (live, dead):
        folder.mkdir()
    assert store.clear() == 1
    assert sorted(p.name for p in store.root.iterdir()) == [live.name]


# -- an unusable cache dir --------------------------------------------------------------------------------------
def _compare_json(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = main(["compare", str(MODEL), str(CLIP), "--against", "onnx", "--runs", "1", "--warmup", "0", "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


def _prepare_notes(report: dict[str, Any]) -> str:
    return " ".join(n for p in report["candidate"]["prepare"] for n in p["notes"])


def test_cache_dir_under_a_file_still_compares(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a regular file where the cache dir's parent should be\n")
    monkeypatch.setenv("RNNT_TUI_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setattr(cache_module, "_fallback_root", None)
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    code, report = _compare_json(capsys)
    assert code == ExitCode.OK, report
    notes = _prepare_notes(report)
    assert f"cache dir {blocker / 'cache' / 'artifacts'} is not writable" in notes
    assert "working without a cache" in notes
    assert blocker.read_text().startswith("a regular file")
    fallback = cache_module._fallback_root
    assert fallback is not None and fallback.parent == private_tmp  # removed at exit: see the next test
    for _ in range(2):  # one fallback per process, however many caches are opened
        assert ArtifactCache().root == fallback / "artifacts"


def test_fallback_cache_is_removed_when_the_process_exits(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    code = textwrap.dedent("""
        from rnnt_tui.core.cache import ArtifactCache
        store = ArtifactCache()
        entry, cached = store.get_or_build("k" * 40, lambda out: (out / "a.bin").write_bytes(b"x") and {})
        print(store.note)
        print(entry.path)
    """)
    out = subprocess.run([sys.executable, "-c", code], env=_env(blocker / "sub", TMPDIR=str(private_tmp)),
                         capture_output=True, text=True, timeout=120, check=True).stdout.splitlines()
    assert "is not writable" in out[0] and Path(out[1]).parent.parent.parent == private_tmp
    assert list(private_tmp.iterdir()) == []


def test_full_disk_mid_build_falls_back_and_compares(own_cache: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """ENOSPC raised where the export writes into the cache dir (what a full disk does); the fallback works."""
    from rnnt_tui.core.runtimes.onnx_runtime import OnnxRuntime

    real = OnnxRuntime._export

    def full_disk(self: Any, out: Path) -> dict[str, Any]:
        if own_cache in out.parents:
            (out / "encoder-model.onnx").write_bytes(b"\0" * 1000)  # a partial file, as a full disk leaves
            raise OSError(errno.ENOSPC, "No space left on device", str(out / "encoder-model.onnx"))
        return real(self, out)

    monkeypatch.setattr(OnnxRuntime, "_export", full_disk)
    code, report = _compare_json(capsys)
    assert code == ExitCode.OK, report
    assert "cannot take the entry (No space left on device)" in _prepare_notes(report)
    assert _artifacts(own_cache) == ([], [])


@contextlib.contextmanager
def _tiny_tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


@pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0, reason="mounting a tmpfs needs root on Linux")
def test_really_full_disk_falls_back_and_compares(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with _tiny_tmpfs(tmp_path / "full", "512k") as cache:  # the tiny model's export is ~1.6 MB
        monkeypatch.setenv("RNNT_TUI_CACHE_DIR", str(cache))
        monkeypatch.setattr(cache_module, "_fallback_root", None)
        code, report = _compare_json(capsys)
        assert code == ExitCode.OK, report
        assert "No space left on device" in _prepare_notes(report)
        assert _artifacts(cache) == ([], [])


# -- a runtime that raises part way -----------------------------------------------------------------------------
class EncoderFailure(TorchRuntime):
    """A candidate whose encoder graph fails whenever it runs."""

    name: ClassVar[str] = "encoder-fails"
    label: ClassVar[str] = "failing runtime"

    def bind(self, component: str, inputs: dict[str, np.ndarray]) -> Any:
        if component == "encoder":
            raise RuntimeError("encoder graph: out of memory on the device")
        return super().bind(component, inputs)


class JointStepFailure(TorchRuntime):
    """A candidate whose joint fails after a few greedy steps (a device lost half way through a decode)."""

    name: ClassVar[str] = "joint-fails"
    label: ClassVar[str] = "failing runtime"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.steps = 0

    def joint_step(self, frame: np.ndarray, decoder_output: Any) -> np.ndarray:
        self.steps += 1
        if self.steps > 3:
            raise RuntimeError("joint: device lost after 3 steps")
        return super().joint_step(frame, decoder_output)


@pytest.mark.parametrize(("runtime", "failed", "error"), [
    (EncoderFailure, {"encoder", "decode"}, "encoder graph: out of memory on the device"),
    (JointStepFailure, {"decode"}, "joint: device lost after 3 steps"),
])
def test_runtime_raising_mid_run_fails_that_step_and_the_rest_shows(monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str],
                                                                   runtime: type[TorchRuntime], failed: set[str],
                                                                   error: str) -> None:
    from rnnt_tui.core import runtimes

    monkeypatch.setitem(runtimes.RUNTIMES, runtime.name, f"{__name__}:{runtime.__name__}")
    args = ["compare", str(MODEL), str(CLIP), "--against", runtime.name, "--runs", "1", "--warmup", "0"]
    code = main([*args, "--json"])
    captured = capsys.readouterr()
    assert code == ExitCode.FAILED and "Traceback" not in captured.err
    report = json.loads(captured.out)
    assert report["status"] == "failed"
    by_name = {c["name"]: c for c in report["components"]}
    for name in ("encoder", "decoder", "joint"):
        if name in failed:
            assert error in json.dumps(by_name[name]), by_name[name]
        else:
            assert all(o["ok"] is True for o in by_name[name]["outputs"]), by_name[name]
    assert report["decode"]["status"] == "failed" and error in report["decode"]["error"]
    assert report["decode"]["reference_text"] is not None  # the reference's own decode still shows
    code = main(args)
    captured = capsys.readouterr()
    assert code == ExitCode.FAILED
    if "encoder" in failed:
        assert squeeze(f"encoder: failing runtime: RuntimeError: {error}") in squeeze(captured.out)  # footnote
    for name in failed:
        assert squeeze(f"failed: {name}: ") in squeeze(captured.err) and squeeze(error) in squeeze(captured.err)


def test_failed_step_status_is_failed_not_mismatch(demo_model: Any) -> None:
    session = _session(demo_model, candidate=JointStepFailure)
    run_steps(session)
    assert session.results["decode"].status == Status.FAILED
    assert "device lost" in (session.results["decode"].error or "")
    assert all(session.results[n].status == Status.DONE for n in ("encoder", "decoder", "joint"))


# -- numbers ----------------------------------------------------------------------------------------------------
class _Doctored(TorchRuntime):
    """PyTorch, with one output of one component altered after the call (set by the test)."""

    name: ClassVar[str] = "doctored"
    label: ClassVar[str] = "doctored"
    component = ""
    alter: ClassVar[Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]]

    def bind(self, component: str, inputs: dict[str, np.ndarray]) -> Any:
        bound = super().bind(component, inputs)
        if component != self.component:
            return bound
        from rnnt_tui.core.runtimes.base import FunctionCall

        return FunctionCall(bound, lambda raw: type(self).alter(bound.outputs(raw)))


def _doctored(component: str, alter: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]) -> type[_Doctored]:
    return type("Doctored", (_Doctored,), {"component": component, "alter": staticmethod(alter)})


def _session(loaded: Any, reference: type[TorchRuntime] = TorchRuntime,
             candidate: type[TorchRuntime] = TorchRuntime) -> Any:
    from rnnt_tui.core.audio import load_audio
    from rnnt_tui.core.pipeline.driver import prepare_session
    from rnnt_tui.core.pipeline.facts import NemoFacts
    from rnnt_tui.core.pipeline.request import Settings

    settings = Settings(runs=1, warmup=0)
    return prepare_session(NemoFacts(loaded, settings.joint_mode), load_audio(CLIP, 16000), reference(loaded),
                           candidate(loaded), settings)


@pytest.fixture(scope="module")
def demo_model() -> Iterator[Any]:
    from rnnt_tui.core.checkpoint import restore
    from rnnt_tui.core.fuse import AS_SAVED, fuse_mode_of

    loaded = restore(MODEL)
    yield loaded
    fuse_mode_of(loaded.model).set(AS_SAVED)


def _poison(value: float, at: tuple[int, ...] = (0, 3, 0)) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    def alter(out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        encoded = out["encoded"].copy()
        encoded[at] = value
        return {**out, "encoded": encoded}

    return alter


@pytest.mark.parametrize(("side", "value"), [("candidate", np.nan), ("candidate", np.inf), ("reference", np.nan),
                                             ("reference", -np.inf)])
def test_nan_or_inf_on_either_side_fails_the_row_and_is_counted(demo_model: Any, side: str,
                                                                value: float) -> None:
    from rnnt_tui.core.report import build_report

    doctored = _doctored("encoder", _poison(value))
    session = _session(demo_model, **{side: doctored})
    result = session.run_step("encoder")
    row = result.comparisons[0]
    assert result.status == Status.MISMATCH and row.ok is False and row.stats is not None
    counts = row.stats.nan if np.isnan(value) else row.stats.inf
    assert counts == {"reference": int(side == "reference"), "candidate": int(side == "candidate")}
    assert np.isnan(row.stats.max_abs) or np.isinf(row.stats.max_abs)  # never a finite max over the rest
    assert row.stats.max_abs_index == [0, 3, 0]
    assert np.isnan(row.stats.mean_abs) and np.isnan(row.stats.rmse)
    stats_json = build_report(session)["components"][1]["outputs"][0]["stats"]
    assert stats_json["max_abs"] in ("nan", "inf") and stats_json["mean_abs"] == "nan"


def test_nan_in_both_outputs_is_not_a_pass(demo_model: Any) -> None:
    """Both runtimes agreeing on a NaN is still a NaN: the row must not read as a pass."""
    from rnnt_tui.core.stats.diff import diff_stats

    probe = diff_stats(np.array([np.nan, 1.0], np.float32), np.array([np.nan, 1.0], np.float32), 1e-3, 1e-3)
    assert not probe.ok
    poison = _doctored("encoder", _poison(np.nan))
    session = _session(demo_model, reference=poison, candidate=poison)
    result = session.run_step("encoder")
    row = result.comparisons[0]
    assert row.stats is not None and row.stats.nan == {"reference": 1, "candidate": 1}
    assert row.ok is False and result.status == Status.MISMATCH


def test_shape_mismatch_is_its_own_finding_and_the_rest_goes_on(demo_model: Any) -> None:
    def shorter(out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {**out, "encoded": out["encoded"][:, :, :-1]}

    session = _session(demo_model, candidate=_doctored("encoder", shorter))
    run_steps(session)
    encoder = session.results["encoder"]
    rows = {r.name: r for r in encoder.comparisons}
    assert encoder.status == Status.MISMATCH
    assert rows["encoded"].stats is None and rows["encoded"].ok is False
    assert "shape mismatch" in rows["encoded"].note
    assert rows["encoded_length"].ok is True
    assert session.results["decoder"].status == Status.DONE and session.results["joint"].status == Status.DONE


def test_float16_output_is_noted_and_compared_upcast(demo_model: Any) -> None:
    def half(out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {**out, "encoded": out["encoded"].astype(np.float16)}

    session = _session(demo_model, candidate=_doctored("encoder", half))
    result = session.run_step("encoder")
    row = result.comparisons[0]
    assert "dtype differs: float16 vs float32" in row.note
    assert row.candidate is not None and row.candidate.dtype == "float16"
    assert row.stats is not None and 0 < row.stats.max_abs < 1e-2  # fp16 rounding, measured not hidden
    from rnnt_tui.core.report import build_report

    output = build_report(session)["components"][1]["outputs"][0]
    assert (output["dtype_reference"], output["dtype_candidate"]) == ("float32", "float16")
    assert "dtype differs" in output["note"]
