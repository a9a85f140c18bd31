"""Core ML loading, the part that can run anywhere: the macOS version as sw_vers prints it, the tool's macOS floor,
the spec-version check against real packages converted for different deployment targets, the private folder that
keeps compiled models alive when the cache is off, and the refusal of every Core ML step off the Mac."""

from __future__ import annotations

import gc
import sys
import tempfile
from pathlib import Path

import pytest

TARGETS = ("macOS13", "macOS14", "macOS15", "macOS26")


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A one-op ML program for each deployment target, and a neural network (the oldest spec the tool reads)."""
    from coremltools.converters.mil import Builder as mb

    from rnnt_tui.core.coreml.spec import load_coremltools
    from rnnt_tui.core.quiet import quiet

    ct, _ = load_coremltools()
    root = tmp_path_factory.mktemp("targets")
    out = {}
    with quiet():
        for name in (*TARGETS, "macOS10_15"):
            target = ct.target[name]
            opset = None if name == "macOS10_15" else target

            @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4))], opset_version=opset)
            def prog(x):  # type: ignore[no-untyped-def]
                return mb.relu(x=x)

            kind = "neuralnetwork" if name == "macOS10_15" else "mlprogram"
            model = ct.convert(prog, convert_to=kind, minimum_deployment_target=target)
            out[name] = root / (f"{name}.mlmodel" if kind == "neuralnetwork" else f"{name}.mlpackage")
            model.save(str(out[name]))
    return out


@pytest.mark.parametrize(("printed", "version"), [("14.4.1\n", (14, 4)), ("15.0\n", (15, 0)), ("26.1", (26, 1)),
                                                  ("13.6.7\n", (13, 6)), ("10.16\n", (10, 16)), ("14\n", (14, 0))])
def test_macos_version_read_as_sw_vers_prints_it(printed: str, version: tuple[int, int]) -> None:
    from rnnt_tui.core.coreml.platform import parse_macos_version

    assert parse_macos_version(printed) == version


@pytest.mark.parametrize("printed", ["", "\n", "ProductVersion: 14.4", "14.x", "macOS 15"])
def test_anything_else_is_not_a_version(printed: str) -> None:
    from rnnt_tui.core.coreml.platform import parse_macos_version

    with pytest.raises(ValueError, match="not a macOS version"):
        parse_macos_version(printed)


def test_below_the_floor_core_ml_is_refused_with_the_reason() -> None:
    from rnnt_tui.core.coreml.platform import MACOS_FLOOR, floor_problem

    assert MACOS_FLOOR == (14, 0)
    problem = floor_problem((13, 6))
    assert problem is not None and "need macOS 14.0 or later" in problem and "this Mac runs 13.6" in problem
    assert "torch 2.13" in problem and "macOS14" in problem
    assert floor_problem((10, 16)) is not None  # what platform.mac_ver() says under SYSTEM_VERSION_COMPAT=1
    assert floor_problem((14, 0)) is None and floor_problem((26, 1)) is None and floor_problem(None) is None


def test_the_floor_names_the_reason_of_the_install_in_use() -> None:
    """A full install is held at macOS 14 by torch's wheels; a light one (no torch) by the packages' target."""
    from rnnt_tui.core.coreml.platform import floor_problem

    full, light = floor_problem((13, 6), has_torch=True), floor_problem((13, 6), has_torch=False)
    assert full and "torch 2.13" in full
    assert light and "torch" not in light and "spec 8" in light and "mil or onnx" in light


def test_deployment_targets_map_to_macos_versions(packages: dict[str, Path]) -> None:
    from rnnt_tui.core.coreml.load import target_macos
    from rnnt_tui.core.coreml.spec import read_spec

    specs = {name: read_spec(path).spec_version for name, path in packages.items()}
    assert specs == {"macOS13": 7, "macOS14": 8, "macOS15": 9, "macOS26": 10, "macOS10_15": 4}
    assert {name: target_macos(v or 0) for name, v in specs.items()} == {
        "macOS13": (13, 0), "macOS14": (14, 0), "macOS15": (15, 0), "macOS26": (26, 0), "macOS10_15": (10, 15)}


@pytest.mark.parametrize(("mac", "refused"), [((14, 0), {"macOS15", "macOS26"}), ((15, 4), {"macOS26"}),
                                              ((26, 0), set()), ((13, 6), {"macOS14", "macOS15", "macOS26"})])
def test_a_package_newer_than_the_mac_is_refused_before_compiling(packages: dict[str, Path], mac: tuple[int, int],
                                                                  refused: set[str]) -> None:
    from rnnt_tui.core.coreml.load import os_problem, target_macos
    from rnnt_tui.core.coreml.spec import read_spec

    got = {}
    for name, path in packages.items():
        spec_version = read_spec(path).spec_version
        got[name] = os_problem(path, spec_version, mac)
    assert {name for name, problem in got.items() if problem} == refused
    for name in refused:
        spec_version = read_spec(packages[name]).spec_version or 0
        needed = ".".join(map(str, target_macos(spec_version) or ()))
        assert got[name] == (f"{packages[name].name} needs macOS {needed} (spec {spec_version}); this Mac runs "
                             f"{mac[0]}.{mac[1]}")


def test_a_spec_beyond_coremltools_bridge_or_any_known_macos_is_refused(packages: dict[str, Path]) -> None:
    from rnnt_tui.core.coreml.load import os_problem

    path = packages["macOS26"]
    assert "reads specs up to 9: upgrade coremltools" in (os_problem(path, 10, (26, 0), bridge_max=9) or "")
    assert "newer than any this tool knows (spec 11)" in (os_problem(path, 11, (26, 0)) or "")


def test_private_folder_keeps_compiled_models_until_close(tmp_path: Path) -> None:
    """With the cache off, compiled models live in the loader's own folder: there until `close`, then gone; a
    loader dropped without `close` removes it when collected."""
    from rnnt_tui.core.coreml.load import CoreMLLoader

    loader = CoreMLLoader(use_cache=False)
    folder = loader.private_dir()
    assert folder.is_dir() and loader.private_dir() == folder
    (folder / "encoder" / "model.mlmodelc").mkdir(parents=True)
    assert (folder / "encoder" / "model.mlmodelc").is_dir()
    loader.close()
    assert not folder.exists()
    assert loader.private_dir() != folder  # a later load gets a fresh folder
    loader.close()

    dropped = CoreMLLoader(use_cache=False)
    other = dropped.private_dir()
    del dropped
    gc.collect()
    assert not other.exists()


def test_package_stamp_changes_with_the_package(packages: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    from rnnt_tui.core.coreml.load import package_stamp

    copy = tmp_path / "copy.mlpackage"
    shutil.copytree(packages["macOS14"], copy)
    before = package_stamp(copy)
    assert package_stamp(copy) == before
    weights = next(p for p in copy.rglob("*") if p.is_file())
    weights.write_bytes(weights.read_bytes() + b"\0")
    assert package_stamp(copy) != before


def test_opened_model_says_whether_its_load_compiled() -> None:
    from rnnt_tui.core.coreml.load import OpenedModel

    cold = OpenedModel(None, Path("m.mlmodelc"), "CPU_AND_NE", open_ms=40.0, compile_ms=900.0, source="compiled now")
    cached = OpenedModel(None, Path("m.mlmodelc"), "ALL", open_ms=40.0, compile_ms=None, source="compiled cache")
    assert cold.compiled_now and cold.load_ms == 940.0 and "cold load" in cold.how and "CPU_AND_NE" in cold.how
    assert not cached.compiled_now and cached.load_ms == 40.0 and "from the cache" in cached.how


def test_units_missing_from_the_machine() -> None:
    from rnnt_tui.core.coreml.platform import missing_devices

    vm = {"CPU": "CPU", "GPU": "GPU"}
    assert missing_devices("CPU_AND_NE", vm) == ("NE",) and missing_devices("ALL", vm) == ("NE",)
    assert missing_devices("CPU_ONLY", ("CPU",)) == () and missing_devices("CPU_AND_GPU", ("CPU",)) == ("GPU",)


@pytest.mark.skipif(sys.platform == "darwin", reason="checks the refusals off macOS")
def test_every_core_ml_step_is_refused_off_macos(packages: dict[str, Path]) -> None:
    from rnnt_tui.core.coreml.load import CoreMLLoader, load_times
    from rnnt_tui.core.coreml.platform import compute_devices, core_ml_problem, macos_version
    from rnnt_tui.core.errors import RuntimeUnavailableError

    assert macos_version() is None
    assert "need macOS (coremltools can convert here" in (core_ml_problem() or "")
    private = set(Path(tempfile.gettempdir()).glob("rnnt-tui-coreml-*"))
    with pytest.raises(RuntimeUnavailableError, match="need macOS"):
        CoreMLLoader(use_cache=False).load(packages["macOS14"], "ALL")
    assert set(Path(tempfile.gettempdir()).glob("rnnt-tui-coreml-*")) == private, "a folder was made before the checks"
    with pytest.raises(RuntimeUnavailableError, match="need macOS"):
        load_times(packages["macOS14"], "CPU_ONLY")
    with pytest.raises(RuntimeUnavailableError, match="compute devices need macOS"):
        compute_devices()


def test_a_drift_search_that_compared_nothing_raises(packages: dict[str, Path]) -> None:
    """Where Core ML cannot load the comparator's probe models, coremltools logs a warning per model and marks
    every op unknown, so `find_failing_ops` returns no failing op: that must raise with the reason, never read as
    "no drift". Off the Mac this is the real path (no Core ML bridge at all)."""
    import numpy as np

    from rnnt_tui.core.coreml.load import CoreMLLoadError
    from rnnt_tui.core.coreml.plan import search_drift
    from rnnt_tui.core.coreml.spec import load_coremltools

    if sys.platform == "darwin":
        pytest.skip("Core ML loads the probe models here; the macOS tests check that the search compares ops")
    ct, _ = load_coremltools()
    with pytest.raises(CoreMLLoadError, match=r"macOS14\.mlpackage: the drift search between CPU_ONLY and ALL "
                                              r"compared no op output: Core ML could not load its probe models "
                                              r"\(Failed to load model\)"):
        search_drift(ct, packages["macOS14"], {"x": np.ones((1, 4), np.float32)}, "x", "CPU_ONLY", "ALL")
