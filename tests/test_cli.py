"""The headless commands: JSON shapes, exit codes, messages on stderr, nothing written beside the user's files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rnnt_tui.cli import main
from rnnt_tui.exit_codes import ExitCode


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_version_reads_metadata_without_importing_the_libraries() -> None:
    code = ("import sys; from rnnt_tui.cli import main; main(['--version']); "
            "print(sorted(m for m in ('torch', 'nemo', 'coremltools', 'textual') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for name in ("rnnt-tui", "nemo_toolkit", "torch", "coremltools", "textual"):
        assert any(line.startswith(name + " ") for line in out.splitlines()), out
    assert out.strip().splitlines()[-1] == "[]"


def test_inspect_json_has_the_documented_keys(capsys: pytest.CaptureFixture[str],
                                             checkpoints: dict[str, Path]) -> None:
    code, out, _ = _run(capsys, "inspect", str(checkpoints["tdt"]), "--json")
    assert code == ExitCode.OK
    data = json.loads(out)
    assert data["kind"] == "tdt" and data["durations"] == [0, 1, 2, 3, 4]
    assert set(data["joint"]) >= {"fuse_loss_wer", "fused_batch_size", "log_softmax", "num_classes_with_blank"}
    assert data["joint"]["num_classes_with_blank"] == 48 + 1 + 5
    assert {"model_class", "sample_rate", "n_mels", "vocab_size", "blank_id", "encoder", "decoder"} <= set(data)


@pytest.mark.parametrize("kind", ["rnnt-char", "hybrid"])
def test_run_json(capsys: pytest.CaptureFixture[str], checkpoints: dict[str, Path], clip: Path, kind: str) -> None:
    code, out, _ = _run(capsys, "run", str(checkpoints[kind]), str(clip), "--runs", "3", "--warmup", "1", "--json")
    assert code == ExitCode.OK
    data = json.loads(out)
    assert [c["name"] for c in data["components"]] == ["preprocessor", "encoder", "decoder", "joint"]
    for comp in data["components"]:
        assert comp["timings"]["runs"] == 3 and comp["timings"]["median_ms"] > 0
        assert all({"name", "shape", "dtype"} <= set(t) for t in comp["inputs"] + comp["outputs"])
    assert data["audio"]["duration_s"] == pytest.approx(1.6, abs=1e-3)
    assert isinstance(data["transcript"], str) and data["tokens"] == [int(t) for t in data["tokens"]]
    assert data["matches_nemo"] is True
    assert data["fuse"]["fuse_loss_wer"] == {"found": True, "used": False}


def test_bad_inputs_exit_2_naming_the_file(capsys: pytest.CaptureFixture[str], checkpoints: dict[str, Path],
                                           clip: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.nemo"
    junk.write_bytes(b"\x00garbage" * 100)
    text = tmp_path / "speech.wav"
    text.write_text("not audio at all\n")
    cases = [
        (("inspect", str(tmp_path / "nope.nemo")), "no such file"),
        (("inspect", str(junk)), "not a readable .nemo archive"),
        (("inspect", str(checkpoints["ctc"])), "CTC model"),
        (("run", str(checkpoints["rnnt-char"]), str(text)), "not readable audio"),
        (("compare", str(checkpoints["ctc"]), str(clip), "--against", "onnx"), "CTC model"),
    ]
    for args, problem in cases:
        code, _, err = _run(capsys, *args)
        assert code == ExitCode.BAD_INPUT, (args, err)
        flat = "".join(err.split())  # Rich wraps stderr at the terminal width, anywhere in a phrase
        assert "".join(problem.split()) in flat and "Traceback" not in err, err
        named = args[2] if args[0] == "run" else args[1]
        assert Path(named).name in flat


def test_unknown_candidate_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "compare", "--against", "tensorrt")
    assert code == ExitCode.BAD_INPUT and "not a candidate runtime" in err


def test_perturbed_candidate_exits_1_at_the_joint(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                                 checkpoints: dict[str, Path], clip: Path) -> None:
    from rnnt_tui.core import runtimes

    monkeypatch.setitem(runtimes.RUNTIMES, "perturbed", "perturbed_runtime:PerturbedRuntime")
    monkeypatch.setenv("RNNT_TUI_TEST_PERTURB", "joint.joint_net.2.weight")
    code, out, _ = _run(capsys, "compare", str(checkpoints["rnnt-char"]), str(clip), "--against", "perturbed",
                        "--runs", "1", "--warmup", "0", "--json")
    assert code == ExitCode.MISMATCH
    report = json.loads(out)
    assert report["status"] == "mismatch"
    by_name = {c["name"]: c for c in report["components"]}
    assert [o["ok"] for o in by_name["joint"]["outputs"]] == [False]
    assert all(o["ok"] is not False for n in ("preprocessor", "encoder", "decoder") for o in by_name[n]["outputs"])


def test_cache_list_and_clear(capsys: pytest.CaptureFixture[str]) -> None:
    from rnnt_tui.core.cache import ArtifactCache

    store = ArtifactCache()
    store.get_or_build("k" * 40, lambda tmp: (tmp / "a.bin").write_bytes(b"x" * 10) and {"runtime": "test"})
    code, out, _ = _run(capsys, "cache", "list", "--json")
    assert code == ExitCode.OK
    assert any(e["key"] == "k" * 40 and e["size_bytes"] == 10 for e in json.loads(out))
    code, _, err = _run(capsys, "cache", "clear")
    assert code == ExitCode.OK and "removed" in err
    assert store.entries() == []


def test_run_exits_4_when_a_step_fails_in_validation_mode(capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          checkpoints: dict[str, Path], clip: Path) -> None:
    """A real joint failure (here injected into the reference runtime) is a failed run, not exit 0."""
    from rnnt_tui.core.runtimes.torch_runtime import TorchRuntime

    original = TorchRuntime.bind

    def broken_joint(self: TorchRuntime, component: str, inputs: dict[str, object]) -> object:
        if component == "joint":
            raise RuntimeError("the joint's weights are corrupt")
        return original(self, component, inputs)  # type: ignore[arg-type]

    monkeypatch.setattr(TorchRuntime, "bind", broken_joint)
    code, _, err = _run(capsys, "run", str(checkpoints["rnnt-char"]), str(clip), "--runs", "1", "--warmup", "0")
    assert code == ExitCode.FAILED
    assert "joint" in err and "corrupt" in err


def test_run_as_saved_fused_joint_is_not_a_failure(capsys: pytest.CaptureFixture[str],
                                                   checkpoints: dict[str, Path], clip: Path) -> None:
    code, out, _ = _run(capsys, "run", str(checkpoints["rnnt-char"]), str(clip), "--runs", "1", "--warmup", "0",
                        "--joint-mode", "as-saved", "--json")
    assert code == ExitCode.OK
    data = json.loads(out)
    joint = next(c for c in data["components"] if c["name"] == "joint")
    assert joint["status"] == "failed" and "fuse_loss_wer" in joint["error"]
    assert data["fuse"]["mode"] == "as-saved"


def test_a_conversion_crash_reaches_stderr_with_its_traceback(capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              checkpoints: dict[str, Path], clip: Path) -> None:
    from rnnt_tui.core import runtimes

    monkeypatch.setitem(runtimes.RUNTIMES, "crashing", "perturbed_runtime:CrashingRuntime")
    code, out, err = _run(capsys, "compare", str(checkpoints["rnnt-char"]), str(clip), "--against", "crashing",
                          "--runs", "1", "--warmup", "0", "--json")
    assert code == ExitCode.FAILED  # a converter crash is a failure (4), not "cannot run here" (3)
    assert "crashing converter could not be prepared" in err and "slice_by_index_42" in err
    assert "Traceback (most recent call last)" in err  # folded under the one-line reason
    report = json.loads(out)
    assert report["status"] == "failed" and "slice_by_index_42" in report["candidate"]["reason"]
    # the reference still ran: every component has its reference outputs, none was compared
    assert [c["name"] for c in report["components"]] == ["preprocessor", "encoder", "decoder", "joint"]
    assert all(c["status"] == "reference-only" for c in report["components"])


def test_piped_output_is_complete_and_errors_are_one_line(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    """stdout to a pipe: tables at their natural width (no "compon…", nothing folded); `--width N` anywhere on the
    line lays them out for N columns; a one-line error stays one line on a piped stderr."""
    import shutil

    deep = tmp_path / ("a-folder-with-a-long-name-" * 4) / "and-another-one-below-it" / "model-checkpoint.nemo"
    deep.parent.mkdir(parents=True)
    shutil.copy(checkpoints["rnnt-char"], deep)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        return subprocess.run([sys.executable, "-m", "rnnt_tui", *args], capture_output=True, text=True, env=env,
                              check=False)

    piped = cli("inspect", str(deep))
    assert piped.returncode == 0, piped.stderr
    assert any(str(deep) in line for line in piped.stdout.splitlines()), piped.stdout  # whole, on one line
    assert "…" not in piped.stdout
    narrow = cli("inspect", str(deep), "--width", "60")
    assert narrow.returncode == 0 and max(len(line) for line in narrow.stdout.splitlines()) <= 60
    missing = tmp_path / ("nowhere-" * 12) / "missing-checkpoint.nemo"
    failed = cli("run", str(missing))
    assert failed.returncode == ExitCode.BAD_INPUT
    lines = [line for line in failed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(missing) in lines[0], failed.stderr


def test_cache_list_names_runtime_and_checkpoint_from_each_manifest(capsys: pytest.CaptureFixture[str]) -> None:
    from rnnt_tui.core.cache import ArtifactCache

    store = ArtifactCache()
    old_coreml = {"component": "encoder", "precision": "fp16", "target": "macOS14", "sha256": "abcdef1234567890"}
    onnx = {"runtime": "onnx", "checkpoint": "/models/demo.nemo", "component": "encoder+decoder_joint"}
    for key, meta in (("c" * 40, old_coreml), ("o" * 40, onnx)):
        store.get_or_build(key, lambda tmp, meta=meta: (tmp / "a.bin").write_bytes(b"x" * 2_000_000) and meta)
    code, out, _ = _run(capsys, "cache", "list", "--json")
    rows = {e["key"]: e for e in json.loads(out)}
    assert code == ExitCode.OK
    assert (rows["c" * 40]["runtime"], rows["c" * 40]["checkpoint"]) == ("coreml (package)", "sha256 abcdef123456")
    assert (rows["o" * 40]["runtime"], rows["o" * 40]["checkpoint"]) == ("onnx", "/models/demo.nemo")
    code, out, _ = _run(capsys, "cache", "list")
    line = next(ln for ln in out.splitlines() if "cccccccccccc" in ln)
    assert "coreml (package)" in line and "sha256 abcdef123456" in line and "2.0 MB" in line, out
    _run(capsys, "cache", "clear")


def test_one_size_format_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    """The demo is one size in `inspect`, the reports and the app: decimal units, `formatting.file_size`."""
    from rnnt_tui.formatting import file_size
    from rnnt_tui.paths import demo_checkpoint

    assert (file_size(999), file_size(1_572_864), file_size(2_470_000_000)) == ("999 B", "1.6 MB", "2.5 GB")
    code, out, _ = _run(capsys, "inspect")
    assert code == ExitCode.OK and f"({file_size(demo_checkpoint().stat().st_size)})" in out
