"""Whether Core ML can run here, and on what: the macOS version, the tool's macOS floor, coremltools' Core ML
bridge, the compute-unit names and the compute devices this Mac really has.

The macOS version is read as coremltools reads it (`sw_vers -productVersion`), never `platform.mac_ver()` (10.16
under SYSTEM_VERSION_COMPAT=1). The floor is macOS 14: torch 2.13 has macOS wheels for 14 and later only, and the
tool's packages default to the macOS14 deployment target (spec 8). `core_ml_problem` says in one sentence why Core
ML cannot run here; `require` raises it. Nothing here loads a model.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from rnnt_tui.core.coreml.spec import load_coremltools
from rnnt_tui.core.errors import RuntimeUnavailableError

APPLE_ONLY = "(coremltools can convert here, but Core ML itself only runs on Apple platforms)"
#: The oldest macOS the tool runs Core ML on: torch 2.13 ships macOS wheels for macOS 14 and later only, and packages
#: default to the macOS14 deployment target (Core ML spec 8).
MACOS_FLOOR = (14, 0)
FLOOR_REASON = "torch 2.13 ships macOS wheels for 14 and later only, and packages default to the macOS14 target"
#: the reason in a light install (no torch: replaying bundles against Core ML, `mil` or `onnx`)
LIGHT_FLOOR_REASON = ("the packages the tool converts target macOS 14 (Core ML spec 8) and Core ML's compute devices "
                      "need macOS 14; replaying against mil or onnx works on any Mac")


def floor_reason(has_torch: bool | None = None) -> str:
    """Why the floor is macOS 14, for the install in use: torch's wheels (full install) or the packages' target
    (light install, no torch)."""
    import importlib.util

    if has_torch is None:
        has_torch = importlib.util.find_spec("torch") is not None
    return FLOOR_REASON if has_torch else LIGHT_FLOOR_REASON


def parse_macos_version(text: str) -> tuple[int, int]:
    """(major, minor) from what `sw_vers -productVersion` prints ("14.4.1\n" -> (14, 4)); ValueError otherwise."""
    match = re.fullmatch(r"\s*(\d+)(?:\.(\d+))?(?:\.\d+)*\s*", text)
    if match is None:
        raise ValueError(f"not a macOS version: {text.strip()[:40]!r}")
    return int(match.group(1)), int(match.group(2) or 0)


def _is_macos() -> bool:
    """Whether this is macOS (one place, so the test stand-in for Core ML's bridge can simulate a Mac)."""
    import sys

    return sys.platform == "darwin"


@functools.cache
def macos_version() -> tuple[int, int] | None:
    """(major, minor) of macOS, as coremltools reads it (`sw_vers -productVersion`), or None on any other OS.

    `platform.mac_ver()` answers 10.16 on a modern Mac when SYSTEM_VERSION_COMPAT=1; `sw_vers` is run with that
    variable cleared so it reads the real version."""
    import os
    import subprocess

    if not _is_macos():
        return None
    env = {k: v for k, v in os.environ.items() if k != "SYSTEM_VERSION_COMPAT"}
    try:
        done = subprocess.run(["sw_vers", "-productVersion"], capture_output=True, text=True, env=env, timeout=30,
                              check=True)
        return parse_macos_version(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise RuntimeUnavailableError(f"cannot read the macOS version with sw_vers ({exc})") from exc


def version_text(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def floor_problem(version: tuple[int, int] | None, what: str = "Core ML predictions",
                  has_torch: bool | None = None) -> str | None:
    """Why `what` cannot run on macOS `version` (below the tool's floor), or None; the reason names the install in
    use (`has_torch`; found out when None)."""
    if version is not None and version < MACOS_FLOOR:
        return (f"{what} need macOS {version_text(MACOS_FLOOR)} or later ({floor_reason(has_torch)}); this Mac runs "
                f"{version_text(version)}")
    return None


@functools.cache
def core_ml_problem(minimum: tuple[int, int] = MACOS_FLOOR, what: str = "Core ML predictions") -> str | None:
    """Why `what` cannot run here, in one sentence, or None when it can (answered once per process)."""
    try:
        version = macos_version()
    except RuntimeUnavailableError as exc:
        return f"{what}: {exc}"
    if version is None:
        return f"{what} need macOS {APPLE_ONLY}"
    problem = floor_problem(version, what)
    if problem:
        return problem
    if version < minimum:
        return f"{what} need macOS {version_text(minimum)} or later; this Mac runs {version_text(version)}"
    try:
        ct, _ = load_coremltools()
        from coremltools.models.model import _MLModelProxy
    except ImportError as exc:
        return f"{what} need coremltools, which cannot be imported here ({exc})"
    if _MLModelProxy is None:
        return f"{what} need coremltools' Core ML bridge (libcoremlpython), missing from coremltools {ct.__version__}"
    return None


def require(minimum: tuple[int, int] = MACOS_FLOOR, what: str = "Core ML predictions") -> Any:
    """coremltools, or RuntimeUnavailableError saying why `what` cannot run here. coremltools' own cached macOS
    version is made to agree with the real one first (`align_coremltools_version`)."""
    problem = core_ml_problem(minimum, what)
    if problem:
        raise RuntimeUnavailableError(problem)
    ct = load_coremltools()[0]
    align_coremltools_version()
    return ct


def align_coremltools_version() -> None:
    """Make coremltools' cached `_macos_version()` read the real macOS.

    coremltools runs `sw_vers` once (lru_cache) without clearing SYSTEM_VERSION_COMPAT, so with that variable set it
    believes the Mac runs 10.16: `MLModel(..., compute_units=CPU_AND_NE)` then raises "only available on macOS >=
    13.0" and `predict` on a package "not supported in macOS version older than 12.0" (coremltools 9.0,
    models/model.py). When its answer is older than ours, its cache is refilled with the variable cleared."""
    import os

    from coremltools.models import utils

    real = macos_version()
    if real is None or tuple(utils._macos_version()[:2]) >= real:
        return
    saved = os.environ.pop("SYSTEM_VERSION_COMPAT", None)
    try:
        utils._macos_version.cache_clear()
        utils._macos_version()
    finally:
        if saved is not None:
            os.environ["SYSTEM_VERSION_COMPAT"] = saved


def compute_unit(ct: Any, name: str) -> Any:
    """`ct.ComputeUnit[name]`, or a ValueError listing the choices."""
    try:
        return ct.ComputeUnit[name]
    except KeyError:
        choices = ", ".join(ct.ComputeUnit.__members__)
        raise ValueError(f"unknown compute units {name!r}; choose one of {choices}") from None




def device_name(device: Any) -> str:
    from coremltools.models.compute_device import (
        MLCPUComputeDevice,
        MLGPUComputeDevice,
        MLNeuralEngineComputeDevice,
    )

    for cls, name in ((MLCPUComputeDevice, "CPU"), (MLGPUComputeDevice, "GPU"), (MLNeuralEngineComputeDevice, "NE")):
        if isinstance(device, cls):
            return name
    return "unknown"


#: the devices each compute-unit choice may use
UNIT_DEVICES = {"CPU_ONLY": ("CPU",), "CPU_AND_GPU": ("CPU", "GPU"), "CPU_AND_NE": ("CPU", "NE"),
                "ALL": ("CPU", "GPU", "NE")}


def compute_devices() -> dict[str, str]:
    """The compute devices Core ML's predictions can use on this Mac (coremltools'
    `MLModel.get_available_compute_devices`, macOS 14+; `MLComputeDevice.get_all_compute_devices` also lists devices
    reserved to other frameworks): "CPU" / "GPU" / "NE" -> a description (the Neural Engine with its core count)."""
    ct = require(MACOS_FLOOR, "Core ML compute devices")
    from coremltools.models.compute_device import MLNeuralEngineComputeDevice

    out: dict[str, str] = {}
    for device in ct.models.MLModel.get_available_compute_devices():
        name = device_name(device)
        if isinstance(device, MLNeuralEngineComputeDevice):
            out[name] = f"Neural Engine, {device.total_core_count} cores"
        else:
            out[name] = {"CPU": "CPU", "GPU": "GPU"}.get(name, type(device).__name__)
    return out


def missing_devices(units: str, devices: dict[str, str] | tuple[str, ...]) -> tuple[str, ...]:
    """The devices `units` asks for that this machine does not have (Core ML then falls back to the CPU)."""
    return tuple(d for d in UNIT_DEVICES[units] if d not in devices)
