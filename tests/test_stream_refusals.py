"""`rnnt-tui stream` and `record --stream` refuse bad files and options before NeMo is imported: one line naming the
file and the problem (click's usage block for a malformed option), exit 2 (3 for a candidate not built), no
traceback, nothing written. Each runs in a process where torch and NeMo cannot be imported, so a refusal that
needed them fails here; each takes well under a second (they took ~7-17 s when NeMo restored first)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_stream_bundle import NO_HEAVY
from test_stream_cli import refusal_line

ROOT = Path(__file__).parents[1]
DEMO = ROOT / "assets" / "demo"
STREAMING = DEMO / "streaming-rnnt.nemo"
OFFLINE = DEMO / "demo-rnnt.nemo"
CLIP = DEMO / "stream-demo.wav"


def light(*args: str) -> subprocess.CompletedProcess[str]:
    """`rnnt-tui ARGS` where torch and NeMo cannot be imported; its stderr without the script's HEAVY line, which
    must say none was imported."""
    done = subprocess.run([sys.executable, "-c", NO_HEAVY, *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    lines = done.stderr.splitlines()
    assert lines and lines[-1] == "HEAVY []", done.stderr
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout, "\n".join(lines[:-1]))


def _tree(root: Path) -> list[tuple[str, int, int]]:
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*"))


def _bad_clip(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.wav"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "corrupt":
        path.write_bytes(bytes(range(256)) * 20)
    elif kind == "folder":
        path.mkdir()
    return path  # "missing": not created


@pytest.mark.parametrize(("kind", "says"), [("missing", "no such file"), ("empty", "is empty (0 bytes)"),
                                            ("corrupt", "not readable audio"), ("folder", "is a directory")])
def test_a_bad_clip_is_refused_before_nemo(tmp_path: Path, kind: str, says: str) -> None:
    clip = _bad_clip(tmp_path, kind)
    before = _tree(tmp_path)
    line = refusal_line(light("stream", str(STREAMING), str(clip), "--json"))
    assert clip.name in line and says in line
    assert _tree(tmp_path) == before


@pytest.mark.parametrize(("args", "says"), [
    ((str(OFFLINE), str(CLIP)), "att_context_style 'regular'"),
    ((str(STREAMING), str(CLIP), "--att-context", "5,5"), "is not one the model was trained with"),
    ((str(STREAMING), str(CLIP), "--att-context", "70"), "--att-context '70': give L,R"),
    ((str(OFFLINE), str(CLIP), "--window", "1", "--att-context", "x,1"), "give L,R"),
    ((str(STREAMING), str(CLIP), "--cache-states"), "--cache-states needs a Core ML program"),
])
def test_a_checkpoint_or_context_that_cannot_stream_is_refused_before_nemo(args: tuple[str, ...], says: str) -> None:
    line = refusal_line(light("stream", *args))
    assert says in line
    if "att_context" in says or "trained" in says:
        assert Path(args[0]).name in line


@pytest.mark.parametrize(("args", "says"), [
    (("--window", "nan"), "'nan' is not a finite number"),
    (("--window", "1", "--overlap", "nan"), "'nan' is not a finite number"),
    (("--window", "1", "--mel-left", "nan"), "'nan' is not a finite number"),
    (("--offline-window", "nan"), "'nan' is not a finite number"),
    (("--atol", "nan"), "'nan' is not a finite number"),
    (("--rtol", "-1"), "-1"),
])
def test_bad_numbers_are_usage_errors(args: tuple[str, ...], says: str) -> None:
    """NaN passes a range check (every comparison with it is false): it used to reach the run and fail there
    (exit 4), or, as a tolerance, pass every element."""
    proc = light("stream", str(STREAMING), str(CLIP), *args)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert says in proc.stderr and "Traceback" not in proc.stderr


def test_record_stream_of_a_checkpoint_that_cannot_stream_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "b.rnntb"
    line = refusal_line(light("record", str(OFFLINE), str(CLIP), "--stream", "--out", str(out)))
    assert OFFLINE.name in line and "not a cache-aware streaming model" in line
    line = refusal_line(light("record", str(STREAMING), str(CLIP), "--stream", "--att-context", "1", "--out",
                              str(out)))
    assert "--att-context '1'" in line
    assert list(tmp_path.iterdir()) == []


def test_tolerances_must_be_finite_and_not_negative() -> None:
    from rnnt_tui.core.tolerances import parse_override

    assert parse_override("encoder=1e-2", "atol") == {"encoder": 1e-2}
    for text in ("nan", "inf", "-1", "joint=nan"):
        with pytest.raises(ValueError, match="is not a tolerance"):
            parse_override(text, "atol")


def test_corpus_stream_of_a_checkpoint_that_cannot_stream_makes_no_out_folder(tmp_path: Path) -> None:
    """It used to restore the model first (~7 s) and leave --out with an empty results.jsonl."""
    manifest = tmp_path / "one.jsonl"
    manifest.write_text(json.dumps({"audio_filepath": str(CLIP), "text": "x"}) + "\n")
    out = tmp_path / "out"
    line = refusal_line(light("corpus", str(OFFLINE), str(manifest), "--stream", "--against", "onnx", "--out",
                              str(out)))
    assert OFFLINE.name in line and "not a cache-aware streaming model" in line
    line = refusal_line(light("corpus", str(STREAMING), str(manifest), "--stream", "--att-context", "9",
                              "--against", "onnx", "--out", str(out)))
    assert "--att-context '9'" in line
    assert not out.exists()
