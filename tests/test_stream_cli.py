"""`rnnt-tui stream` front end: refusals (one line, the right exit code) and the windowed pipeline's pieces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DEMO = ROOT / "assets" / "demo"


def _cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "300"}
    return subprocess.run([sys.executable, "-m", "rnnt_tui", "stream", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout, env=env)


def refusal_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one stderr line of a usage refusal (exit 2, nothing on stdout)."""
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_offline_checkpoint_refused_without_window() -> None:
    line = refusal_line(_cli(str(DEMO / "demo-rnnt.nemo"), str(DEMO / "hello-world.wav"), "--json"))
    assert "demo-rnnt.nemo" in line and "att_context_style 'regular'" in line


def test_window_plan_and_seams() -> None:
    from rnnt_tui.core.stream.seams import Word, edits, words
    from rnnt_tui.core.stream.windows import plan

    spans = plan(5.0, 2.0, 0.5)
    assert [s[0] for s in spans] == [0.0, 1.5, 3.0] and spans[-1][1] == 5.0
    assert spans[0][2] == 0.0 and spans[1][2] == 1.75 and spans[0][3] == 1.75  # owned spans meet mid-overlap
    assert plan(1.0, 2.0, 0.5) == [(0.0, 1.0, 0.0, 2.0)]
    assert words(list("ab cd"), [0.0, 0.1, 0.2, 0.3, 0.4]) == [Word("ab", 0.0), Word("cd", 0.3)]
    assert words(["▁he", "llo", "▁world"], [1.0, 1.1, 1.5]) == [Word("hello", 1.0), Word("world", 1.5)]
    full = [Word(w, i * 0.5) for i, w in enumerate(["the", "quick", "brown", "fox"])]
    lost = edits("candidate", full, [w for w in full if w.text != "brown"])
    assert [(e.kind, e.full, e.time_s) for e in lost] == [("lost", "brown", 1.0)]
    doubled = edits("candidate", full, [*full[:3], Word("brown", 1.2), full[3]])
    assert [(e.kind, e.windowed) for e in doubled] == [("doubled", "brown")]
    changed = edits("reference", full, [*full[:3], Word("box", 1.5)])
    assert [(e.kind, e.full, e.windowed) for e in changed] == [("changed", "fox", "box")]


def test_window_settings_rules_are_one_set() -> None:
    """The app's `w` checks its settings with the rules `--window / --overlap / --mel-left` apply."""
    from rnnt_tui.core.stream.config import windows_problem
    from rnnt_tui.core.stream.windows import _piece

    assert windows_problem(15, 2, 0) is None and windows_problem(0.5, 0, 60) is None
    assert "0.5 to 3600" in (windows_problem(0.4, 0, 0) or "") and windows_problem(3601, 0, 0)
    assert "shorter than the window" in (windows_problem(2, 2, 0) or "") and windows_problem(2, -0.1, 0)
    assert "0 to 60" in (windows_problem(2, 0, 61) or "") and windows_problem(float("nan"), 0, 0)
    assert _piece("the quick", "the quick brown", "brown") == (" brown", "the quick brown")
    assert _piece("foo", "fox", "x") == (" x", "fox")  # not a prefix: the window's own text
    for args in (("--window", "0.4"), ("--window", "2", "--overlap", "2"), ("--window", "2", "--mel-left", "61")):
        proc = _cli(str(DEMO / "demo-rnnt.nemo"), str(DEMO / "hello-world.wav"), *args)
        assert proc.returncode == 2 and proc.stdout == "", (args, proc.stderr)


def test_windows_on_an_offline_model(tmp_path: Path) -> None:
    md = tmp_path / "w.md"
    proc = _cli(str(DEMO / "demo-rnnt.nemo"), str(DEMO / "the-quick-brown-fox.wav"), "--window", "1.0",
                "--overlap", "0.25", "--json", "--markdown", str(md))
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    assert len(report["windows"]) >= 2 and report["full_text"] == "the quick brown fox"
    assert report["port_identical"] and report["candidate_text"] == report["reference_text"]
    for side in ("reference", "candidate"):  # each window's piece of the merged transcript: they make it up
        assert "".join(w[f"{side}_piece"] for w in report["windows"]) == report[f"{side}_text"]
    diffs = [w["encoder_max_abs"] for w in report["windows"]]
    assert all(d < 1e-3 for d in diffs) and any(d > 0 for d in diffs)  # close, not bit-equal, and not rounded away
    seams = report["seams"]
    assert [round(s["time_s"], 3) for s in seams] == [round(0.75 + i * 0.75 + 0.125, 3) for i in range(len(seams))]
    lost = [e for s in seams for e in s["edits"]]
    assert (report["status"] == "ok") == (not any(e["side"] == "candidate" for e in lost))
    assert md.read_text().startswith("# Windows")


def test_a_tail_shorter_than_an_encoder_frame_joins_the_last_window(tmp_path: Path) -> None:
    """A clip 1 ms past a window boundary: the 1 ms tail was its own window, which NeMo encodes to no frame and the
    ONNX export to one, so the port "emitted" a token there, the window's encoder figure was NaN (invalid JSON) and
    the run a mismatch. The window before it now runs to the clip's end; a whole clip shorter than one encoder frame
    is refused as `compare` refuses it."""
    import soundfile as sf

    from rnnt_tui.core.stream.windows import plan

    assert plan(2.001, 1.0, 0.0, 0.04) == [(0.0, 1.0, 0.0, 1.0), (1.0, 2.001, 1.0, 3.001)]
    assert plan(2.5, 1.0, 0.0, 0.04)[-1][:2] == (2.0, 2.5)  # a tail of one frame or more is its own window
    samples, rate = sf.read(str(DEMO / "stream-demo.wav"), dtype="float32")
    clip = tmp_path / "tail.wav"
    sf.write(str(clip), samples[: 2 * rate + 16], rate)
    proc = _cli(str(DEMO / "demo-rnnt.nemo"), str(clip), "--window", "1.0", "--json")
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert [(w["start_s"], w["end_s"]) for w in report["windows"]] == [(0.0, 1.0), (1.0, 2.001)]
    assert all(w["encoder_ok"] for w in report["windows"]) and report["port_identical"]
    from rnnt_tui.core.stream.windows import Window

    shapes_differ = Window(0, 0.0, 1.0, 0.0, 1.0, float("nan"), False, "", "")  # as run_windows makes it then
    assert json.loads(json.dumps(shapes_differ.to_json()))["encoder_max_abs"] is None
    tiny = tmp_path / "tiny.wav"
    sf.write(str(tiny), samples[:16], rate)
    line = refusal_line(_cli(str(DEMO / "demo-rnnt.nemo"), str(tiny), "--window", "1.0"))
    assert "tiny.wav" in line and "shorter than one encoder frame" in line


def test_windows_against_mil() -> None:
    proc = _cli(str(DEMO / "demo-rnnt.nemo"), str(DEMO / "the-quick-brown-fox.wav"), "--window", "1.0",
                "--overlap", "0.25", "--against", "mil", "--json")
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    assert report["candidate"] == "Core ML program, MIL interpreter"
    assert len(report["windows"]) >= 2 and report["full_text"] == "the quick brown fox"
    assert report["port_identical"] and report["candidate_text"] == report["reference_text"]
    assert all(w["encoder_max_abs"] < 1e-3 for w in report["windows"])
    candidate_edits = [e for s in report["seams"] for e in s["edits"] if e["side"] == "candidate"]
    assert (report["status"] == "ok") == (not candidate_edits)


def test_stream_demo_json_and_markdown(tmp_path: Path) -> None:
    md = tmp_path / "s.md"
    proc = _cli("--against", "onnx", "--json", "--markdown", str(md))  # no files: the bundled streaming demo
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert {"chunks", "decode", "streaming_cfg", "att_context_size"} <= set(report)
    assert report["streaming_cfg"]["drop_extra_pre_encoded"] >= 0 and report["chunks"][0]["start_s"] == 0.0
    times = [c["start_s"] for c in report["chunks"]]
    assert times == sorted(times) and report["chunks"][-1]["start_s"] < report["clip_s"]
    assert md.read_text().startswith("# Streaming")


def test_stream_no_offline_says_so(tmp_path: Path) -> None:
    md = tmp_path / "s.md"
    proc = _cli("--against", "onnx", "--no-offline", "--markdown", str(md))  # the bundled streaming demo, as text
    assert proc.returncode == 0, proc.stderr
    assert "NeMo offline:   -  (skipped (--no-offline))" in proc.stdout
    assert "differs from its offline one" not in proc.stdout
    assert "- NeMo offline (skipped (--no-offline)): ``" in md.read_text()
