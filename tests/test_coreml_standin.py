"""The test stand-in for Core ML's native layer (`tests/coreml_standin`) keeps its place: nothing in the package
imports it, installing it is undone after the test, everything it would make the tool print for Core ML says it is
simulated, and it plays the bridge's contract as coremltools 9.0's `coremlpython` sources define it (the arrays it
accepts, fp16 outputs as float32, the caller's dict rewritten by coremltools, devices, compute units)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_layers import GRAPH

ROOT = Path(__file__).parent.parent / "rnnt_tui"


def test_nothing_in_the_package_imports_the_stand_in() -> None:
    offenders = {name: sorted(m for m in everything if "coreml_standin" in m)
                 for name, (everything, _) in GRAPH.items() if any("coreml_standin" in m for m in everything)}
    assert offenders == {}
    texts = [p for p in ROOT.rglob("*.py") if "coreml_standin" in p.read_text()]
    assert texts == [], f"the package names the test stand-in: {texts}"


def test_installing_is_undone_after_the_test(tmp_path: Path) -> None:
    import coreml_standin
    import coremltools.models.model as ct_model

    from rnnt_tui.core.coreml.platform import core_ml_problem, macos_version
    from rnnt_tui.core.runtimes.coreml_runtime import CoreMLRuntime

    if sys.platform == "darwin":
        pytest.skip("on a Mac the real bridge is there; the stand-in is for other platforms")
    before = (ct_model._MLModelProxy, CoreMLRuntime.label)
    with pytest.MonkeyPatch.context() as mp:
        coreml_standin.install(mp, tmp_path)
        assert macos_version() == (15, 5) and core_ml_problem() is None
        assert "SIMULATED" in CoreMLRuntime.label and "stand-in" in CoreMLRuntime.label
    coreml_standin.uninstall()
    assert (ct_model._MLModelProxy, CoreMLRuntime.label) == before
    assert macos_version() is None and "need macOS" in (core_ml_problem() or "")


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """The stand-in installed with its knobs (Linux only: on a Mac, Core ML itself runs the macOS tests)."""
    import coreml_standin

    if sys.platform == "darwin":
        pytest.skip("the stand-in's knobs (devices, refusals, drift) are for platforms without Core ML")
    machine = coreml_standin.install(monkeypatch, tmp_path / "bin")
    yield machine
    monkeypatch.undo()
    coreml_standin.uninstall()


@pytest.fixture
def chain_package(tmp_path: Path) -> Path:
    """x -> relu (a) -> mul (b) -> add (c): an fp32 chain whose middle op the stand-in can make drift."""
    from coremltools.converters.mil import Builder as mb

    from rnnt_tui.core.coreml.spec import load_coremltools
    from rnnt_tui.core.quiet import quiet

    ct, _ = load_coremltools()

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 8))], opset_version=ct.target.macOS14)
    def prog(x):  # type: ignore[no-untyped-def]
        a = mb.relu(x=x, name="a")
        b = mb.mul(x=a, y=3.0, name="b")
        return mb.add(x=b, y=1.0, name="c")

    path = tmp_path / "chain.mlpackage"
    with quiet():
        ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.macOS14,
                   compute_precision=ct.precision.FLOAT32).save(str(path))
    return path


@pytest.mark.simulated
def test_drift_search_names_the_op_where_drift_starts(standin: Any, chain_package: Path) -> None:
    from rnnt_tui.core.coreml.plan import first_drifting_op

    pytest.importorskip("coremltools.models.ml_program.experimental.debugging_utils")
    standin.drift = {"CPU_AND_GPU": ("b", 0.5)}
    x = {"x": np.linspace(-1, 1, 8, dtype=np.float32)[None]}
    report = first_drifting_op(chain_package, x, "chain", "CPU_ONLY", "CPU_AND_GPU", atol=1e-3, rtol=1e-3)
    assert report.first is not None and report.first.output == "b" and report.first.confirmed
    assert report.load_failures == ()


@pytest.mark.simulated
def test_drift_search_with_failed_probes_names_no_op(standin: Any, chain_package: Path) -> None:
    """Every probe model (the package with intermediate outputs added) is refused: the output op drifts, nothing
    upstream was compared, so no op is named first and the probes' failures are reported."""
    from rnnt_tui.core.coreml.plan import first_drifting_op

    pytest.importorskip("coremltools.models.ml_program.experimental.debugging_utils")
    standin.drift = {"CPU_AND_GPU": ("b", 0.5)}
    standin.refuse = lambda spec, units: ("probe refused by the test stand-in"
                                          if len(spec.description.output) > 1 else None)
    x = {"x": np.linspace(-1, 1, 8, dtype=np.float32)[None]}
    report = first_drifting_op(chain_package, x, "chain", "CPU_ONLY", "CPU_AND_GPU", atol=1e-3, rtol=1e-3)
    assert [d.output for d in report.failing] == ["c"], "coremltools' comparator blames the output op"
    assert report.first is None and [d.output for d in report.unconfirmed] == ["c"]
    assert any("probe refused" in f for f in report.load_failures), report.load_failures
    assert report.to_json()["first"] is None


@pytest.mark.simulated
def test_compute_devices_are_those_predictions_can_use(standin: Any) -> None:
    """`MLComputeDevice.get_all_compute_devices` lists devices reserved to other frameworks; the tool reports
    `MLModel.get_available_compute_devices` (coremltools 9.0, models/model.py)."""
    from rnnt_tui.core.coreml.platform import compute_devices, missing_devices

    standin.all_devices = ("CPU", "GPU", "NE")
    standin.available_devices = ("CPU", "GPU")
    devices = compute_devices()
    assert set(devices) == {"CPU", "GPU"}
    assert missing_devices("CPU_AND_NE", devices) == ("NE",)


@pytest.mark.simulated
def test_system_version_compat_does_not_fool_coremltools(standin: Any, chain_package: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """With SYSTEM_VERSION_COMPAT=1, coremltools' cached `_macos_version()` reads 10.16 and refuses CPU_AND_NE
    (models/model.py); the tool aligns it with the real version before any Core ML call."""
    from coremltools.models import utils

    from rnnt_tui.core.coreml.load import CoreMLLoader
    from rnnt_tui.core.coreml.platform import macos_version

    monkeypatch.setenv("SYSTEM_VERSION_COMPAT", "1")
    utils._macos_version.cache_clear()
    assert utils._macos_version() == (10, 16)  # what coremltools believes on its own
    opened = CoreMLLoader(use_cache=False).load(chain_package, "CPU_AND_NE")
    assert utils._macos_version()[:2] == macos_version() == (15, 5)
    import coremltools as ct

    model = ct.models.MLModel(str(chain_package), compute_units=ct.ComputeUnit.CPU_AND_NE)
    assert model.predict({"x": np.ones((1, 8), np.float32)})["c"].shape == (1, 8)
    del opened


@pytest.fixture
def joint_package(tmp_path: Path) -> Path:
    """A tiny fp16 ML program: y = relu(x) * 2 on a [1, 4] input, float32 I/O declared as fp16 output."""
    from coremltools.converters.mil import Builder as mb

    from rnnt_tui.core.coreml.spec import load_coremltools
    from rnnt_tui.core.quiet import quiet

    ct, _ = load_coremltools()

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4))], opset_version=ct.target.macOS14)
    def prog(x):  # type: ignore[no-untyped-def]
        return mb.mul(x=mb.relu(x=x), y=2.0, name="y")

    path = tmp_path / "tiny.mlpackage"
    with quiet():
        ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.macOS14,
                   compute_precision=ct.precision.FLOAT16).save(str(path))
    return path


@pytest.mark.macos
def test_predict_follows_the_bridges_conversion_rules(joint_package: Path, core_ml_bridge: Any) -> None:
    """coremlpython/CoreMLPythonArray.mm accepts int32, float32, float64 arrays; CoreMLPythonUtils.mm hands fp16
    outputs over as float32; coremltools' MLModel.predict replaces the caller's float16 arrays with float32."""
    import coremltools as ct

    model = ct.models.MLModel(str(joint_package), compute_units=ct.ComputeUnit.CPU_ONLY)
    x = np.array([[-1.0, 0.5, 2.0, 3.0]], np.float16)
    feed = {"x": x}
    out = model.predict(feed)
    assert feed["x"] is not x and feed["x"].dtype == np.float32, "coremltools rewrites the caller's dict"
    assert out["y"].dtype == np.float32
    np.testing.assert_array_equal(out["y"], [[0.0, 1.0, 4.0, 6.0]])
    for dtype in (np.int32, np.float64):
        assert model.predict({"x": np.ones((1, 4), dtype)})["y"].dtype == np.float32
    with pytest.raises(RuntimeError, match="value type not convertible"):
        model.predict({"x": np.ones((1, 4), np.int64)})
    with pytest.raises(RuntimeError):
        model.predict({"x": np.ones((1, 5), np.float32)})


@pytest.mark.macos
def test_a_stateful_model_carries_its_state(tmp_path: Path, core_ml_bridge: Any) -> None:
    """`ct.StateType` (macOS 15+): `make_state`, `predict(..., state)`, `read_state` - the MIL interpreter's
    `read_state` / `coreml_update_state` under the stand-in, Core ML on a Mac."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    from rnnt_tui.core.coreml.platform import macos_version
    from rnnt_tui.core.coreml.spec import load_coremltools
    from rnnt_tui.core.quiet import quiet

    if (macos_version() or (0, 0)) < (15, 0):
        pytest.skip("Core ML states need macOS 15")
    ct, _ = load_coremltools()

    @mb.program(input_specs=[mb.TensorSpec((1, 4), dtype=types.fp16), mb.StateTensorSpec((1, 4), dtype=types.fp16)],
                opset_version=ct.target.iOS18)
    def prog(x, h):  # type: ignore[no-untyped-def]
        y = mb.add(x=x, y=mb.read_state(input=h), name="y")
        mb.coreml_update_state(state=h, value=y)
        return y

    path = tmp_path / "stateful.mlpackage"
    with quiet():
        ct.convert(prog, minimum_deployment_target=ct.target.iOS18).save(str(path))
    model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.CPU_ONLY)
    state = model.make_state()
    x = {"x": np.full((1, 4), 1.5, np.float32)}
    first = model.predict(dict(x), state)["y"]
    second = model.predict(dict(x), state)["y"]
    np.testing.assert_array_equal(first, np.full((1, 4), 1.5))
    np.testing.assert_array_equal(second, np.full((1, 4), 3.0))
    np.testing.assert_array_equal(state.read_state("h"), np.full((1, 4), 3.0))
