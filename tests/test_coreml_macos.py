"""Core ML predictions on a Mac: converted packages agree with the NeMo/PyTorch reference on CPU_ONLY, every compute
unit the machine really has loads and runs, loads fail with Core ML's reason (and a package newer than this macOS
is refused before compiling), compiled models outlive their load with the cache on or off, the sweep keeps a row
per unit, and Core ML's compute plan and drift search run for real. Skipped elsewhere: Core ML itself only runs on
Apple platforms.

The compute devices come from coremltools (`MLComputeDevice.get_all_compute_devices`) and are printed at the start;
a test for a unit whose accelerator this machine lacks (GitHub's macOS runners are virtual machines, likely without
a Neural Engine) is skipped with that reason, never passed on the CPU fallback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = [
    pytest.mark.macos,
    pytest.mark.filterwarnings("ignore:Converting a tensor to a Python boolean"),
]

KINDS = ("rnnt-char", "tdt")
UNITS = ("CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL")
DEVICE_NAMES = {"GPU": "GPU", "NE": "Neural Engine"}
#: fp32 packages on CPU_ONLY against eager PyTorch (absolute, relative)
TOLERANCE = {"features": (5e-3, 1e-3), "encoded": (2e-3, 1e-3), "decoder_output": (1e-4, 1e-4), "h": (1e-4, 1e-4),
             "c": (1e-4, 1e-4), "logits": (1e-3, 1e-3)}


def _close(name: str, got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    atol, rtol = TOLERANCE[name]
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), atol=atol, rtol=rtol, err_msg=name)


_PRINTED: set[str] = set()


@pytest.fixture(autouse=True)
def devices(request: pytest.FixtureRequest, core_ml_bridge: object) -> dict[str, str]:
    """The compute devices Core ML can use here, printed once so the job log says what was really tested (and
    that it was simulated, off a Mac)."""
    from rnnt_tui.core.coreml.platform import compute_devices, macos_version, version_text

    found = compute_devices()
    assert "CPU" in found, f"coremltools reports no CPU among {found}"
    where = "SIMULATED by the test stand-in" if core_ml_bridge is not None else "Core ML"
    line = f"{where}: compute devices on macOS {version_text(macos_version() or ())}: {', '.join(found.values())}"
    if line not in _PRINTED:
        _PRINTED.add(line)
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line)
        print(line)
    return found


def needs(units: str, devices: dict[str, str]) -> None:
    """Skip (never pass) when this machine lacks an accelerator `units` asks for."""
    from rnnt_tui.core.coreml.platform import missing_devices

    missing = [d for d in missing_devices(units, devices) if d != "CPU"]
    if missing:
        pytest.skip(f"this machine has no {' or '.join(DEVICE_NAMES[d] for d in missing)}: Core ML would run "
                    f"{units} without it, so the test would not test {units}")


@pytest.fixture(scope="module")
def audio(short_clip: Path) -> dict[str, np.ndarray]:
    import soundfile as sf

    samples, _ = sf.read(str(short_clip), dtype="float32")
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


def _runtime(loaded: Any, units: str = "CPU_ONLY", **options: Any) -> Any:
    from rnnt_tui.core.coreml.convert import default_max_frames
    from rnnt_tui.core.runtimes.base import RuntimeOptions
    from rnnt_tui.core.runtimes.coreml_runtime import CoreMLRuntime

    runtime = CoreMLRuntime(loaded, RuntimeOptions(compute_units=units, max_frames=default_max_frames(loaded),
                                                   **options))
    runtime.prepare()
    return runtime


@pytest.fixture(scope="module")
def converted(loaded_model: Callable[[str], Any], tmp_path_factory: pytest.TempPathFactory) -> str:
    """The rnnt-char packages in one folder (`--packages`), converted once through the MIL runtime (any OS): the
    tests that turn the cache off or start a fresh one compile and load these instead of converting again."""
    import shutil

    from rnnt_tui.core.coreml.convert import default_max_frames
    from rnnt_tui.core.runtimes.base import RuntimeOptions
    from rnnt_tui.core.runtimes.mil_runtime import MilRuntime

    loaded = loaded_model("rnnt-char")
    mil = MilRuntime(loaded, RuntimeOptions(max_frames=default_max_frames(loaded)))
    mil.prepare()
    folder = tmp_path_factory.mktemp("packages")
    for info in mil.packages.values():
        shutil.copytree(info.path, folder / info.path.name)
    mil.close()
    return str(folder)


@pytest.fixture
def validation_mode(loaded_model: Callable[[str], Any]) -> Iterator[Callable[[str], Any]]:
    """kind -> the loaded model in validation mode (raw logits), put back as saved afterwards. (`loaded_model`
    resets the mode on every call, so the mode is set after it, never before.)"""
    from rnnt_tui.core.fuse import AS_SAVED, VALIDATION, fuse_mode_of

    used: list[Any] = []

    def get(kind: str) -> Any:
        loaded = loaded_model(kind)
        fuse_mode_of(loaded.model).set(VALIDATION)
        used.append(loaded)
        return loaded

    yield get
    for loaded in used:
        fuse_mode_of(loaded.model).set(AS_SAVED)


@pytest.mark.parametrize("kind", KINDS)
def test_predictions_match_pytorch_on_cpu_only(kind: str, reference: Any, audio: dict[str, np.ndarray],
                                                validation_mode: Callable[[str], Any]) -> None:
    from rnnt_tui.core.pipeline.greedy import greedy_decode
    from rnnt_tui.core.runtimes.coreml_runtime import CoreMLRuntime

    assert CoreMLRuntime.availability().ok
    torch_rt = reference(kind)
    loaded = validation_mode(kind)
    core_ml = _runtime(loaded)
    assert all(r.load_ms is not None for r in core_ml.reports.values())
    primed = "called once at the greedy decode's step shapes"
    assert any(primed in n for n in core_ml.reports["joint"].notes), core_ml.reports["joint"].notes

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


@pytest.mark.parametrize("units", UNITS)
def test_every_compute_unit_loads_and_runs(units: str, loaded_model: Callable[[str], Any], reference: Any,
                                           audio: dict[str, np.ndarray], devices: dict[str, str]) -> None:
    needs(units, devices)
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


def test_compiled_model_cache_skips_the_second_compilation(loaded_model: Callable[[str], Any], converted: str,
                                                           monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from rnnt_tui.core.coreml.load import LOAD_STATS

    monkeypatch.setenv("RNNT_TUI_CACHE_DIR", str(tmp_path / "fresh-cache"))
    loaded = loaded_model("rnnt-char")
    compilations, hits = LOAD_STATS.compilations, LOAD_STATS.compiled_cache_hits
    first = _runtime(loaded, packages_dir=converted)
    assert LOAD_STATS.compilations == compilations + 4
    assert not any(r.cached for r in first.reports.values())
    assert all("cold load" in r.action for r in first.reports.values())
    assert all(p.is_dir() and p.suffix == ".mlmodelc" and str(tmp_path) in str(p)
               for p in first.compiled_paths.values())
    first.close()
    second = _runtime(loaded, packages_dir=converted)
    assert LOAD_STATS.compilations == compilations + 4 and LOAD_STATS.compiled_cache_hits == hits + 4
    assert all(r.cached and "from the cache" in r.action for r in second.reports.values())
    second.close()


def test_without_the_cache_compiled_models_live_until_the_runtime_closes(loaded_model: Callable[[str], Any],
                                                                         reference: Any, converted: str,
                                                                         audio: dict[str, np.ndarray]) -> None:
    """Core ML deletes its temporary compile folder when the model is released: with the cache off the compiled
    models must live in the runtime's own folder, usable for compute plans after loading, gone after close."""
    import gc

    from rnnt_tui.core.coreml.convert import default_max_frames
    from rnnt_tui.core.runtimes.base import RuntimeOptions
    from rnnt_tui.core.runtimes.coreml_runtime import CoreMLRuntime

    loaded = loaded_model("rnnt-char")
    runtime = CoreMLRuntime(loaded, RuntimeOptions(max_frames=default_max_frames(loaded), use_cache=False,
                                                   packages_dir=converted))
    runtime.prepare()
    gc.collect()
    paths = dict(runtime.compiled_paths)
    assert len(paths) == 4 and all(p.is_dir() and (p / "coremldata.bin").exists() for p in paths.values())
    folder = runtime.loader.private_dir()
    assert all(folder in p.parents for p in paths.values())
    features = reference("rnnt-char").run("preprocessor", audio)
    assert np.isfinite(runtime.run("encoder", features)["encoded"]).all()
    runtime.close()
    assert runtime.loader is None and not folder.exists()
    runtime.close()  # closing twice is harmless


def test_a_package_newer_than_this_macos_is_refused_before_compiling(tmp_path: Path) -> None:
    from coremltools.converters.mil import Builder as mb

    from rnnt_tui.core.coreml.load import LOAD_STATS, CoreMLLoader, PackageTooNewError, target_macos
    from rnnt_tui.core.coreml.platform import macos_version
    from rnnt_tui.core.coreml.spec import SPEC_VERSION_TARGETS, load_coremltools
    from rnnt_tui.core.quiet import quiet

    ct, _ = load_coremltools()
    here = macos_version() or (0, 0)
    newer = [(v, t) for v, t in sorted(SPEC_VERSION_TARGETS.items()) if (target_macos(v) or (0, 0)) > here
             and t in ct.target.__members__]
    if not newer:
        pytest.skip(f"coremltools knows no deployment target newer than this macOS {here}")
    spec_version, target_name = newer[0]
    target = ct.target[target_name]

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4))], opset_version=target)
    def prog(x):  # type: ignore[no-untyped-def]
        return mb.relu(x=x)

    with quiet():
        ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=target).save(str(tmp_path / "new.mlpackage"))
    compilations = LOAD_STATS.compilations
    with pytest.raises(PackageTooNewError, match=rf"new\.mlpackage needs macOS .* \(spec {spec_version}\); this Mac"):
        CoreMLLoader(use_cache=False).load(tmp_path / "new.mlpackage", "CPU_ONLY")
    assert LOAD_STATS.compilations == compilations, "the check must come before any compile"


def test_a_load_core_ml_refuses_names_the_package_units_and_reason(loaded_model: Callable[[str], Any],
                                                                   tmp_path: Path) -> None:
    """A compiled model whose program is damaged: Core ML refuses it, and the error says which, where, and why."""
    import shutil

    from rnnt_tui.core.coreml.load import CoreMLLoader, CoreMLLoadError

    core_ml = _runtime(loaded_model("rnnt-char"))
    broken = tmp_path / "Broken.mlmodelc"
    shutil.copytree(core_ml.compiled_paths["joint"], broken)
    core_ml.close()
    programs = list(broken.rglob("*.mil"))
    assert programs, f"no MIL program in {sorted(p.name for p in broken.rglob('*'))}"
    for program in programs:
        program.write_text("this is not a MIL program")
    with pytest.raises(CoreMLLoadError, match=r"Broken\.mlmodelc: Core ML could not load it on CPU_AND_GPU: \w+"):
        CoreMLLoader().load(broken, "CPU_AND_GPU")


def test_macos_version_ignores_system_version_compat(monkeypatch: pytest.MonkeyPatch) -> None:
    import platform

    from rnnt_tui.core.coreml.platform import macos_version

    real = macos_version()
    monkeypatch.setenv("SYSTEM_VERSION_COMPAT", "1")
    macos_version.cache_clear()
    try:
        assert macos_version() == real and real is not None and real >= (14, 0), (real, platform.mac_ver())
    finally:
        macos_version.cache_clear()


def test_sweep_keeps_a_row_per_unit_with_load_times(loaded_model: Callable[[str], Any], short_clip: Path,
                                                    devices: dict[str, str]) -> None:
    from rnnt_tui.core.coreml.convert import default_max_frames
    from rnnt_tui.core.coreml.platform import UNIT_DEVICES
    from rnnt_tui.core.options import RuntimeOptions
    from rnnt_tui.core.pipeline.pipeline import open_session
    from rnnt_tui.core.pipeline.request import Request, Settings
    from rnnt_tui.core.sweep import sweep

    loaded = loaded_model("rnnt-char")
    request = Request(loaded.path, short_clip, against="coreml", settings=Settings(runs=1, warmup=0),
                      options=RuntimeOptions(max_frames=default_max_frames(loaded)))
    rows = sweep(open_session(request, loaded=loaded), units=UNITS)
    assert [r.compute_units for r in rows] == list(UNITS)
    for row in rows:
        accelerators = [d for d in UNIT_DEVICES[row.compute_units] if d != "CPU"]
        if all(d not in devices for d in accelerators) and accelerators:
            assert row.status == "unavailable" and "this Mac has no" in (row.error or ""), row
            continue
        assert row.status in ("ok", "mismatch"), (row.compute_units, row.error, row.traceback)
        assert set(row.components) == {"preprocessor", "encoder", "decoder", "joint"}
        assert len(row.loads) == 4 and all(entry["compile_ms"] > 0 and entry["cold_ms"] >= entry["compile_ms"]
                                           and entry["cached_open_ms"] > 0 for entry in row.loads.values()), row.loads
        assert all(isinstance(e["load_compiled"], bool) for e in row.loads.values())
    ran = [r for r in rows if r.status in ("ok", "mismatch")]
    assert ran, f"no compute unit ran on this Mac ({devices})"
    assert not any(e["load_compiled"] for r in ran[1:] for e in r.loads.values()), "later units recompiled"


def test_sweep_drift_search_points_at_ops(loaded_model: Callable[[str], Any], short_clip: Path,
                                          devices: dict[str, str], core_ml_bridge: Any) -> None:
    """Zero tolerances make components mismatch; each then gets a real drift search that compared op outputs.
    (The stand-in computes every unit alike: it is told to shift the joint's logits on the searched unit.)"""
    from dataclasses import replace

    from rnnt_tui.core.coreml.convert import default_max_frames
    from rnnt_tui.core.options import RuntimeOptions
    from rnnt_tui.core.pipeline.pipeline import open_session
    from rnnt_tui.core.pipeline.request import Request, Settings
    from rnnt_tui.core.sweep import sweep
    from rnnt_tui.core.tolerances import Tolerance, defaults

    unit = "CPU_AND_GPU" if "GPU" in devices else "CPU_AND_NE"
    needs(unit, devices)
    if core_ml_bridge is not None:
        core_ml_bridge.drift = {unit: ("logits", 1.0)}
    loaded = loaded_model("rnnt-char")
    strict = replace(Settings(runs=1, warmup=0), tolerances={k: Tolerance(0.0, 0.0) for k in defaults()})
    request = Request(loaded.path, short_clip, against="coreml", settings=strict,
                      options=RuntimeOptions(max_frames=default_max_frames(loaded)))
    row, = sweep(open_session(request, loaded=loaded), units=(unit,), load_timing=False, drift=True)
    mismatched = {n for n, c in row.components.items() if c["status"] == "mismatch"}
    if not mismatched:
        pytest.skip(f"{unit} matched the reference exactly in every component: nothing to search")
    assert set(row.drift) == mismatched
    for name, entry in row.drift.items():
        assert "error" not in entry, f"{name}: {entry.get('error')}"
        assert entry["compared"] > 0, f"{name}: the drift search compared nothing"
    if core_ml_bridge is not None:
        assert row.drift["joint"]["first"] == "logits", row.drift["joint"]


def test_compute_plan_lists_ops(loaded_model: Callable[[str], Any], devices: dict[str, str]) -> None:
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
        used = {p.preferred for p in plan.placements} - {"unknown"}
        assert used <= set(devices), f"{component}: ops placed on {used}, but this Mac has {devices}"
        cpu_only = compute_plan(core_ml.compiled_paths[component], component, "CPU_ONLY")
        assert {p.preferred for p in cpu_only.placements} - {"unknown"} == {"CPU"}, component
    encoder = compute_plan(core_ml.compiled_paths["encoder"], "encoder", "ALL")
    supported = {d for p in encoder.placements for d in p.supported}
    assert supported - {"unknown"} <= set(devices), f"ops supported on {supported}, but this Mac has {devices}"
    if "GPU" in devices:  # fp32 programs stay off the Neural Engine, but the GPU takes fp32 convolutions
        assert "GPU" in supported, f"no encoder op supported on the GPU this Mac has ({supported})"
    core_ml.close()


def test_first_drifting_op_search_runs(loaded_model: Callable[[str], Any], devices: dict[str, str]) -> None:
    from rnnt_tui.core.coreml.plan import first_drifting_op

    pytest.importorskip("coremltools.models.ml_program.experimental.debugging_utils")
    target = "CPU_AND_GPU" if "GPU" in devices else "CPU_AND_NE"
    needs(target, devices)
    core_ml = _runtime(loaded_model("rnnt-char"))
    info = core_ml.packages["joint"]
    rng = np.random.default_rng(0)
    d_model = info.spec.input("encoded").shape[1]
    hidden = info.spec.input("decoder_output").shape[1]
    inputs = {"encoded": rng.standard_normal((1, d_model, 6)).astype(np.float32),
              "decoder_output": rng.standard_normal((1, hidden, 2)).astype(np.float32)}
    report = first_drifting_op(info.path, inputs, "joint", "CPU_ONLY", target, atol=1e-2, rtol=1e-2)
    assert report.compared > 0, "the drift search compared no op: it must raise, not report no drift"
    assert [op.index for op in report.failing] == sorted(op.index for op in report.failing)
    assert report.first is None or report.first == report.failing[0]
    tight = first_drifting_op(info.path, inputs, "joint", "CPU_ONLY", target, atol=0.0, rtol=0.0)
    assert tight.compared > 0
    core_ml.close()


def test_a_neural_network_gets_a_per_layer_plan(tmp_path: Path) -> None:
    """A neural-network model has no ML program: its plan is per layer (Core ML estimates no cost there), never a
    failure that would cost a sweep its row."""
    from coremltools.converters.mil import Builder as mb

    from rnnt_tui.core.coreml.load import CoreMLLoader
    from rnnt_tui.core.coreml.plan import compute_plan, macos_version
    from rnnt_tui.core.coreml.spec import load_coremltools
    from rnnt_tui.core.quiet import quiet

    if (macos_version() or (0, 0)) < (14, 4):
        pytest.skip("Core ML compute plans need macOS 14.4 or later")
    ct, _ = load_coremltools()

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4))])
    def prog(x):  # type: ignore[no-untyped-def]
        return mb.relu(x=x)

    with quiet():
        ct.convert(prog, convert_to="neuralnetwork",
                   minimum_deployment_target=ct.target.macOS10_15).save(str(tmp_path / "nn.mlmodel"))
    loader = CoreMLLoader(use_cache=False)
    opened = loader.load(tmp_path / "nn.mlmodel", "ALL")
    assert opened.compiled_now and opened.compiled_path.suffix == ".mlmodelc"
    plan = compute_plan(opened.compiled_path, "nn", "ALL")
    assert plan.ops >= 1 and all(p.cost is None for p in plan.placements)
    assert {p.preferred for p in plan.placements} - {"unknown"}, "no layer has a preferred device"
    del opened
    loader.close()


def test_lint_on_a_mac_reports_core_mls_compute_plan(converted: str) -> None:
    """On a Mac with compute plans, lint says where Core ML places the ops, never "no compute plan here"."""
    from rnnt_tui.core.coreml.plan import macos_version
    from rnnt_tui.core.precision.lint import lint_package

    if (macos_version() or (0, 0)) < (14, 4):
        pytest.skip("Core ML compute plans need macOS 14.4 or later")
    report = lint_package(Path(converted) / "decoder.mlpackage")
    messages = [f.message for f in report.findings]
    assert report.error is None and any("Core ML's compute plan on ALL" in m for m in messages), messages
    assert not any("no compute plan here" in m for m in messages), messages
