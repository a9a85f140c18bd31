"""Fixed windows (`stream --window`) against Core AI and Core ML: each window through the candidate's offline
conversion, run by Apple's Core AI runtime here and by Core ML on a Mac (the test stand-in elsewhere), the result
labelled with what ran."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from test_stream_cli import DEMO, _cli

from rnnt_tui.core.coreai.platform import coreai_problem

CKPT, CLIP = DEMO / "demo-rnnt.nemo", DEMO / "the-quick-brown-fox.wav"
needs_coreai = pytest.mark.skipif(coreai_problem(need_converter=True) is not None,
                                  reason=str(coreai_problem(need_converter=True)))


def _same_as_nemo(report: dict[str, Any]) -> None:
    assert len(report["windows"]) >= 2 and report["full_text"] == "the quick brown fox"
    assert report["port_identical"] and report["candidate_text"] == report["reference_text"]
    diffs = [w["encoder_max_abs"] for w in report["windows"]]
    assert all(d < 1e-3 for d in diffs) and any(d > 0 for d in diffs), diffs  # run, not copied from the reference
    candidate_edits = [e for s in report["seams"] for e in s["edits"] if e["side"] == "candidate"]
    assert (report["status"] == "ok") == (not candidate_edits)


@needs_coreai
def test_windows_against_core_ai_say_which_runtime_ran_them() -> None:
    from rnnt_tui.core.runtimes.coreai_runtime import CoreAIRuntime

    proc = _cli(str(CKPT), str(CLIP), "--window", "1.0", "--overlap", "0.25", "--against", "coreai", "--json")
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    assert report["candidate"] == CoreAIRuntime.label and "Apple Core AI runtime" in report["candidate"]
    _same_as_nemo(report)


@pytest.mark.skipif(sys.platform == "darwin", reason="off a Mac only: Core ML predicts there")
def test_windows_against_core_ml_off_a_mac_say_why_not(tmp_path: Path) -> None:
    md = tmp_path / "w.md"
    proc = _cli(str(CKPT), str(CLIP), "--window", "1.0", "--against", "coreml", "--markdown", str(md))
    assert proc.returncode == 3 and proc.stdout == "", proc.stderr
    assert "macOS" in proc.stderr and "Traceback" not in proc.stderr
    assert not md.exists()  # nothing made up, nothing written


@pytest.mark.macos
def test_windows_through_core_ml(core_ml_label: str) -> None:
    """Core ML predicts every window's encoder and the decoder / joint of both merges (the stand-in off a Mac)."""
    from rnnt_tui.core.stream.config import StreamRequest
    from rnnt_tui.core.stream.windows import run_windows

    request = StreamRequest(CKPT, CLIP, "coreml", window_s=1.0, overlap_s=0.25)
    report = run_windows(request, lambda event: None).to_json()
    assert report["candidate"] == core_ml_label
    _same_as_nemo(report)


@needs_coreai
def test_windows_through_a_users_core_ai_assets(tmp_path: Path) -> None:
    """`--packages` of Core AI assets: they run every window; assets that take any length set no window."""
    import shutil

    from rnnt_tui.core.checkpoint import restore
    from rnnt_tui.core.coreai.convert import convert_components
    from rnnt_tui.core.errors import BadInputError
    from rnnt_tui.core.stream.config import StreamRequest
    from rnnt_tui.core.stream.windows import run_windows

    loaded = restore(CKPT)
    for asset in convert_components(loaded, precision="fp32", components=["encoder", "decoder", "joint"]):
        shutil.copytree(asset.path, tmp_path / asset.path.name)
    request = StreamRequest(CKPT, CLIP, "coreai", window_s=1.0, overlap_s=0.25, packages_dir=tmp_path,
                            tolerance_given=False)
    report = run_windows(request, lambda event: None, loaded=loaded).to_json()
    assert report["packages"] == str(tmp_path) and "Apple Core AI runtime" in report["candidate"]
    _same_as_nemo(report)
    with pytest.raises(BadInputError, match="take any length, so they set no window: give --window S"):
        run_windows(StreamRequest(CKPT, CLIP, "coreai", packages_dir=tmp_path), lambda event: None, loaded=loaded)
