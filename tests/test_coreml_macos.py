"""Core ML predictions on a Mac: converted packages agree with the NeMo/PyTorch reference on CPU_ONLY, every compute
unit loads and runs, the compiled-model cache spares the second load its compilation, and Core ML's compute plan
lists the ops. Skipped elsewhere: Core ML itself only runs on Apple platforms."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = [
    pytest.mark.macos,
    pytest.mark.skipif(sys.platform != "darwin", reason="Core ML predictions need macOS (coremltools can convert "
                                                        "here, but Core ML itself only runs on Apple platforms)"),
    pytest.mark.filterwarnings("ignore:Converting a tensor to a Python boolean"),
]

KINDS = ("rnnt-char", "tdt")
#: fp32 packages on CPU_ONLY against eager PyTorch (absolute, relative)
TOLERANCE = {"features": (5e-3, 1e-3), "encoded": (2e-3, 1e-3), "decoder_output": (1e-4, 1e-4), "h": (1e-4, 1e-4),
             "c": (1e-4, 1e-4), "logits": (1e-3, 1e-3)}


def _close(name: str, got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    atol, rtol = TOLERANCE[name]
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), atol=atol, rtol=rtol, err_msg=name)


@pytest.fixture(scope="module")
def audio(clip: Path) -> dict[str, np.ndarray]:
    import soundfile as sf

    samples, _ = sf.read(str(clip), dtype="float32")
    return {"audio_signal": samples[None, :], "length": np.array([samples.shape[0]], np.int64)}


@pytest.fixture(scope="module")
def reference(loaded_model: Callable[[str], Any]) -> Callable[[str], Any]:
    from rnnt_tui.core.runtimes.torch_runtime import TorchRuntime

    memo: dict[str, Any] = {}

    def get(kind: str) -> Any:
        if kind not in memo:
            memo[kind] = TorchRuntime(loaded_model(kind))
            memo[kind].prepare()
        return memo[kind]

    return get


def _runtime(loaded: Any, units: str = "CPU_ONLY") -> Any:
    from rnnt_tui.core.coreml.convert import default_max_frames
    from rnnt_tui.core.runtimes.base import RuntimeOptions
    from rnnt_tui.core.runtimes.coreml_runtime import CoreMLRuntime

    runtime = CoreMLRuntime(loaded, RuntimeOptions(compute_units=units, max_frames=default_max_frames(loaded)))
    runtime.prepare()
    return runtime


@pytest.fixture
def validation_mode(loaded_model: Callable[[str], Any]) -> Iterator[None]:
    from rnnt_tui.core.fuse import AS_SAVED, VALIDATION, fuse_mode_of

    modes = [fuse_mode_of(loaded_model(kind).model) for kind in KINDS]
    for mode in modes:
        mode.set(VALIDATION)
    yield
    for mode in modes:
        mode.set(AS_SAVED)


@pytest.mark.parametrize("kind", KINDS)
def test_predictions_match_pytorch_on_cpu_only(kind: str, loaded_model: Callable[[str], Any], reference: Any,
                                                audio: dict[str, np.ndarray], validation_mode: None) -> None:
    from rnnt_tui.core.decode import greedy_decode
    from rnnt_tui.core.runtimes.coreml_runtime import CoreMLRuntime

    assert CoreMLRuntime.availability().ok
    loaded, torch_rt = loaded_model(kind), reference(kind)
    core_ml = _runtime(loaded)
    assert all(r.load_ms is not None for r in core_ml.reports.values())

    features = torch_rt.run("preprocessor", audio)
    got = core_ml.run("preprocessor", audio)
    _close("features", got["features"], features["features"])
    assert got["features_length"].tolist() == features["features_length"].tolist()

    want = torch_rt.run("encoder", features)  # both fed the reference's features
    got = core_ml.run("encoder", features)
    _close("encoded", got["encoded"], want["encoded"])
    assert got["encoded_length"].tolist() == want["encoded_length"].tolist()
    encoded, length = want["encoded"], int(want["encoded_length"][0])

    blank = int(loaded.model.decoder.blank_idx)
    state = dict(torch_rt.state_arrays(torch_rt.initial_state()))
    outputs = []
    for token in (blank, 3, 7):
        step = {"targets": np.array([[token]], np.int64), **state}
        want = torch_rt.run("decoder", step)
        got = core_ml.run("decoder", step)
        for name in ("decoder_output", "h", "c"):
            _close(name, got[name], want[name])
        outputs.append(want["decoder_output"])
        state = {"h": want["h"], "c": want["c"]}

    joint_in = {"encoded": encoded, "decoder_output": np.concatenate(outputs, axis=2),
                "targets": np.array([[blank, 3, 7]], np.int64)}
    _close("logits", core_ml.run("joint", joint_in)["logits"], torch_rt.run("joint", joint_in)["logits"])

    durations = loaded.summary.durations
    ours = greedy_decode(core_ml, encoded, length, blank, durations)
    theirs = greedy_decode(torch_rt, encoded, length, blank, durations)
    assert ours.tokens == theirs.tokens and ours.frames == theirs.frames
    core_ml.close()


@pytest.mark.parametrize("units", ["CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL"])
def test_every_compute_unit_loads_and_runs(units: str, loaded_model: Callable[[str], Any], reference: Any,
                                           audio: dict[str, np.ndarray]) -> None:
    loaded, torch_rt = loaded_model("rnnt-char"), reference("rnnt-char")
    core_ml = _runtime(loaded, units)
    assert core_ml.describe()["compute_units"] == units
    features = torch_rt.run("preprocessor", audio)
    want = torch_rt.run("encoder", features)
    got = core_ml.run("encoder", features)
    assert got["encoded"].shape == want["encoded"].shape and np.isfinite(got["encoded"]).all()
    np.testing.assert_allclose(got["encoded"].astype(np.float64), want["encoded"], atol=5e-2, rtol=5e-2)
    step = core_ml.decoder_step(int(loaded.model.decoder.blank_idx), core_ml.initial_state())
    row = core_ml.joint_step(want["encoded"][:, :, :1], step[0])
    assert row.shape == (loaded.summary.joint.num_classes_with_blank,) and np.isfinite(row).all()
    core_ml.close()


def test_compiled_model_cache_skips_the_second_compilation(loaded_model: Callable[[str], Any],
                                                           monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from rnnt_tui.core.runtimes.coreml_runtime import LOAD_STATS

    monkeypatch.setenv("RNNT_TUI_CACHE_DIR", str(tmp_path / "fresh-cache"))
    loaded = loaded_model("rnnt-char")
    compilations, hits = LOAD_STATS.compilations, LOAD_STATS.compiled_cache_hits
    first = _runtime(loaded)
    assert LOAD_STATS.compilations == compilations + 4
    assert not any(r.cached for r in first.reports.values())
    assert all(p.is_dir() and p.suffix == ".mlmodelc" for p in first.compiled_paths.values())
    first.close()
    second = _runtime(loaded)
    assert LOAD_STATS.compilations == compilations + 4 and LOAD_STATS.compiled_cache_hits == hits + 4
    assert all(r.cached and "from the cache" in r.action for r in second.reports.values())
    second.close()


def test_compute_plan_lists_ops(loaded_model: Callable[[str], Any]) -> None:
    from rnnt_tui.core.coreml.plan import compute_plan, macos_version

    if (macos_version() or (0, 0)) < (14, 4):
        pytest.skip("Core ML compute plans need macOS 14.4 or later")
    core_ml = _runtime(loaded_model("rnnt-char"))
    for component in ("encoder", "decoder", "joint"):
        plan = compute_plan(core_ml.compiled_paths[component], component, "ALL")
        assert plan.ops > 0 and len(plan.placements) >= plan.ops
        assert 0.99 <= sum(plan.op_share.values()) + sum(p.preferred == "unknown" for p in plan.placements
                                                        if p.op_type != "const") / plan.ops <= 1.01
        assert all(0.0 <= v <= 1.0 for v in plan.cost_share.values())
    core_ml.close()


def test_first_drifting_op_search_runs(loaded_model: Callable[[str], Any]) -> None:
    from rnnt_tui.core.coreml.plan import first_drifting_op

    pytest.importorskip("coremltools.models.ml_program.experimental.debugging_utils")
    core_ml = _runtime(loaded_model("rnnt-char"))
    info = core_ml.packages["joint"]
    rng = np.random.default_rng(0)
    d_model = info.spec.input("encoded").shape[1]
    hidden = info.spec.input("decoder_output").shape[1]
    inputs = {"encoded": rng.standard_normal((1, d_model, 6)).astype(np.float32),
              "decoder_output": rng.standard_normal((1, hidden, 2)).astype(np.float32)}
    report = first_drifting_op(info.path, inputs, "joint", "CPU_ONLY", "CPU_AND_GPU", atol=1e-2, rtol=1e-2)
    assert [op.index for op in report.failing] == sorted(op.index for op in report.failing)
    assert report.first is None or report.first == report.failing[0]
    core_ml.close()
