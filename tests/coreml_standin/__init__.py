"""A TEST-ONLY stand-in for Core ML's native layer, so the macOS code path runs in Linux CI.

`install(monkeypatch, bin_dir)` makes coremltools 9.0 and rnnt-tui believe they are on a Mac with Core ML:

- `coremltools.libcoremlpython` (the pybind11 module built on macOS only) is replaced by `bridge`, written from
  coremltools 9.0's `coremlpython/*.mm`, whose predictions come from rnnt-tui's MIL interpreter; the names each
  coremltools module imported from it at import time (`models/model.py`, `_compiled_model.py`, `compute_plan.py`,
  `compute_device.py`) are pointed at the stand-in's classes;
- a fake `sw_vers` on PATH prints the simulated macOS version (10.16 when SYSTEM_VERSION_COMPAT=1, as the real one
  does), read by both coremltools' cached `_macos_version()` and rnnt-tui's `platform.macos_version()`;
- `coremltools.models.utils._is_macos` / `model._is_macos` and rnnt-tui's `platform._is_macos` answer True;
- every label rnnt-tui would print for Core ML says it is this stand-in (`LABEL`).

`tests/conftest.py` parametrizes every `@pytest.mark.macos` test with `core_ml_bridge`: off a Mac it installs the
stand-in for that test (id suffix `[simulated]`, marker `simulated`; `pytest -m "not simulated"` leaves them out),
on a Mac it is None and Core ML itself runs. A test may change the returned `Machine` (devices, macOS version,
refusals, drift on a compute unit).

Nothing in `rnnt_tui/` imports this package (checked by `tests/test_coreml_standin.py`); nothing it computes is
Core ML. Everything is undone when the test's monkeypatch is.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path
from typing import Any

from . import bridge
from .machine import MACHINE, Machine

LABEL = "Core ML [SIMULATED: test stand-in, MIL interpreter]"

_BRIDGE_NAMES = {
    "coremltools.models.model": ("_MLModelProxy", "_MLModelAssetProxy"),
    "coremltools.models._compiled_model": ("_MLModelProxy",),
    "coremltools.models.compute_plan": ("_MLModelProxy", "_MLComputePlanProxy"),
    "coremltools.models.compute_device": ("_MLModelProxy", "_MLCPUComputeDeviceProxy", "_MLGPUComputeDeviceProxy",
                                          "_MLNeuralEngineComputeDeviceProxy"),
}

_SW_VERS = """#!/bin/sh
# rnnt-tui test stand-in for macOS's sw_vers (the simulated Mac of tests/coreml_standin)
[ "$1" = "-productVersion" ] || exit 1
if [ "${SYSTEM_VERSION_COMPAT:-0}" = "1" ]; then echo 10.16; else cat "$(dirname "$0")/macos-version"; fi
"""


def _clear_caches() -> None:
    from coremltools.models import utils

    from rnnt_tui.core.coreml import platform

    utils._macos_version.cache_clear()
    platform.macos_version.cache_clear()
    platform.core_ml_problem.cache_clear()


def set_macos(version: str) -> None:
    """Change the simulated macOS version (the fake sw_vers reads it on every call; the caches are cleared)."""
    MACHINE.macos = version
    (_BIN[0] / "macos-version").write_text(version + "\n")
    _clear_caches()


_BIN: list[Path] = []


def install(monkeypatch: Any, bin_dir: Path, **machine: Any) -> Machine:
    """Install the stand-in for one test (undone by `monkeypatch`); `machine` overrides `Machine` fields."""
    import importlib

    import coremltools  # noqa: F401 - its modules must be imported before their names are replaced

    from rnnt_tui.core import names
    from rnnt_tui.core.coreml import platform
    from rnnt_tui.core.runtimes.coreml_runtime import CoreMLRuntime

    MACHINE.reset(**machine)
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "sw_vers"
    script.write_text(_SW_VERS)
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    _BIN[:] = [bin_dir]
    (bin_dir / "macos-version").write_text(MACHINE.macos + "\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ.get('PATH', '')}")

    monkeypatch.setitem(sys.modules, "coremltools.libcoremlpython", bridge)
    monkeypatch.setattr(sys.modules["coremltools"], "libcoremlpython", bridge, raising=False)
    for module_name, attrs in _BRIDGE_NAMES.items():
        module = importlib.import_module(module_name)
        for attr in attrs:
            monkeypatch.setattr(module, attr, getattr(bridge, attr), raising=False)
    utils = importlib.import_module("coremltools.models.utils")
    model = importlib.import_module("coremltools.models.model")
    monkeypatch.setattr(utils, "_is_macos", lambda: True)
    monkeypatch.setattr(model, "_is_macos", lambda: True)
    monkeypatch.setattr(platform, "_is_macos", lambda: True)

    monkeypatch.setattr(CoreMLRuntime, "label", LABEL)
    monkeypatch.setattr(CoreMLRuntime, "engine", LABEL)
    monkeypatch.setitem(names.RUNTIME_LABELS, "coreml", LABEL)
    _clear_caches()
    return MACHINE


def uninstall() -> None:
    """Clear the version caches after the monkeypatch is undone (so nothing simulated outlives the test)."""
    _clear_caches()


__all__ = ["LABEL", "MACHINE", "Machine", "install", "set_macos", "uninstall"]
