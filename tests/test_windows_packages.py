"""`stream --packages DIR`: a clip longer than a window-sized package set runs in windows of it (the common Parakeet
export's fixed window), through the user's own packages, instead of being refused; the window read from the
packages, refused naming the file when it does not fit."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from test_stream_cli import DEMO, _cli

from rnnt_tui.core.errors import BadInputError
from rnnt_tui.core.stream.config import StreamRequest
from rnnt_tui.core.stream.windows import plan, run_windows

CKPT = DEMO / "demo-rnnt.nemo"
WINDOW_SECONDS = 2.5
MIL = "Core ML program, MIL interpreter"


@pytest.fixture(scope="module")
def demo() -> Any:
    from rnnt_tui.core.checkpoint import restore

    return restore(CKPT)


@pytest.fixture(scope="module")
def layout(demo: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo model in the third-party layout, a fixed 2.5 s window (`thirdparty_layout`)."""
    import thirdparty_layout

    return thirdparty_layout.build(demo, tmp_path_factory.mktemp("layout"), WINDOW_SECONDS)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two bundled clips with a pause between: 3.76 s, longer than the packages' window."""
    a, rate = sf.read(str(DEMO / "the-quick-brown-fox.wav"), dtype="float32")
    b, _ = sf.read(str(DEMO / "core-ml-on-a-mac.wav"), dtype="float32")
    path = tmp_path_factory.mktemp("clips") / "two.wav"
    sf.write(str(path), np.concatenate([a, np.zeros(rate // 4, np.float32), b]), rate)
    return path


def _run(demo: Any, clip: Path, packages: Path, **options: Any) -> dict[str, Any]:
    request = StreamRequest(CKPT, clip, "mil", packages_dir=packages, tolerance_given=False, **options)
    return run_windows(request, lambda event: None, loaded=demo).to_json()


def test_a_clip_longer_than_the_package_window_runs_in_windows_of_it(demo: Any, layout: Path,
                                                                      long_clip: Path) -> None:
    report = _run(demo, long_clip, layout, overlap_s=0.5)
    assert report["candidate"] == MIL and report["packages"] == str(layout)
    assert report["window_s"] == WINDOW_SECONDS  # read from encoder.mlpackage's fixed input
    assert report["notes"][0] == f"window {WINDOW_SECONDS:g} s: encoder.mlpackage takes a fixed {WINDOW_SECONDS:g} s " \
                                 "of audio per call"
    assert "compute precision" in report["notes"][1]  # fp16 programs judged at fp16 tolerances, and said
    clip_s = sf.info(str(long_clip)).duration
    assert len(report["windows"]) == len(plan(clip_s, WINDOW_SECONDS, 0.5)) == 2
    diffs = [w["encoder_max_abs"] for w in report["windows"]]
    assert all(0 < d < 0.05 for d in diffs) and all(w["encoder_ok"] for w in report["windows"]), diffs
    assert report["port_identical"], (report["reference_text"], report["candidate_text"])


def test_the_mel_left_context_comes_out_of_the_package_window(demo: Any, layout: Path, long_clip: Path) -> None:
    report = _run(demo, long_clip, layout, overlap_s=0.5, mel_left_s=0.5)
    assert report["window_s"] == 2.0 and "less the 0.5 s of mel left context" in report["notes"][0]


def test_a_fused_mel_encoder_is_fed_each_window_of_audio(demo: Any, layout: Path, long_clip: Path,
                                                         tmp_path: Path) -> None:
    for name in ("mel_encoder.mlpackage", "decoder.mlpackage", "joint.mlpackage", "metadata.json"):
        (shutil.copytree if (layout / name).is_dir() else shutil.copy)(layout / name, tmp_path / name)
    report = _run(demo, long_clip, tmp_path, overlap_s=0.5)
    assert report["window_s"] == WINDOW_SECONDS and report["notes"][0].startswith(
        f"window {WINDOW_SECONDS:g} s: mel_encoder.mlpackage")
    assert "atol 0.05" in report["notes"][1]  # its fp16 program, not the fp32 default of a missing encoder
    assert all(w["encoder_ok"] and w["encoder_max_abs"] > 0 for w in report["windows"])
    assert report["port_identical"]


@pytest.mark.parametrize(("options", "says"), [
    ({"window_s": 3.0}, "encoder.mlpackage: --window 3 s is longer than the 2.5 s of audio it takes in one call "
                        "(its fixed window); give --window 2.5 or less"),
    ({"window_s": 2.2, "mel_left_s": 0.5}, "--window 2.2 s + --mel-left 0.5 s is longer than the 2.5 s"),
    ({"overlap_s": 2.5}, "--overlap 2.5 s must be shorter than the window (2.5 s)"),
])
def test_a_window_that_does_not_fit_the_packages_is_refused_naming_them(demo: Any, layout: Path, long_clip: Path,
                                                                        options: dict[str, float], says: str) -> None:
    with pytest.raises(BadInputError) as caught:
        _run(demo, long_clip, layout, **options)
    assert says in str(caught.value)


def test_packages_need_a_package_runtime_and_no_streaming_step(layout: Path, long_clip: Path) -> None:
    for args, says in (
            (("--against", "onnx"), "--packages is a folder of Core ML packages"),
            (("--against", "mil", "--step", str(layout / "encoder.mlpackage")), "--step is for cache-aware streaming")):
        proc = _cli(str(CKPT), str(long_clip), "--packages", str(layout), *args)
        assert proc.returncode == 2 and proc.stdout == "" and says in proc.stderr and "Traceback" not in proc.stderr


def test_a_one_pass_comparison_too_long_for_the_packages_points_at_windows(demo: Any, layout: Path) -> None:
    from rnnt_tui.core.options import RuntimeOptions
    from rnnt_tui.core.runtimes.mil_runtime import MilRuntime

    runtime = MilRuntime(demo, RuntimeOptions(packages_dir=str(layout)))
    runtime.prepare()
    try:
        capacity = runtime.time_capacity("encoder")
        assert capacity is not None and capacity.fixed and capacity.path.name == "encoder.mlpackage"
        features = np.zeros((1, 80, capacity.size + 1), np.float32)
        with pytest.raises(BadInputError) as caught:
            runtime.run("encoder", {"features": features, "features_length": np.array([capacity.size + 1])})
    finally:
        runtime.close()
    assert "compare it in windows of its length (`rnnt-tui stream --packages`)" in str(caught.value)
