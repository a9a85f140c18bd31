"""Whether Core AI can run here, and what runs it: the platforms `coreai-core` ships wheels for, and which runtime
(Apple's runtime bundled with the wheel, or macOS's own Core AI framework) and hardware a call uses.

`coreai-core` 1.0.0b3 has wheels for CPython 3.11–3.13 on manylinux_2_34 x86_64 and macOS 26+ arm64 only; on
Linux and macOS 26 its bundled runtime runs on the CPU, on macOS 27+ the OS framework runs the asset (hardware
chosen by Core AI unless specialization options say otherwise). `coreai_problem` says in one sentence why Core AI
cannot run here (platform, Python version, package missing); `where_it_runs` is the label every number carries.
Nothing here converts or loads a model; coreai is imported only by `where_it_runs` once it is known to be present.
"""

from __future__ import annotations

import functools
import importlib.util
import platform
import sys

INSTALL_HINT = "pip install 'rnnt-tui[coreai]'"
WHEELS = "CPython 3.11–3.13 on Linux x86_64 (glibc 2.34+) and macOS 26+ on Apple silicon"
#: the first macOS whose OS ships the Core AI framework (earlier ones run the runtime bundled with coreai-core)
OS_FRAMEWORK_MACOS = 27


def platform_problem(system: str, machine: str, python: tuple[int, int], macos: tuple[int, int] | None
                     ) -> str | None:
    """Why no coreai-core wheel exists for this platform, or None (pure: tested for every platform)."""
    if not (3, 11) <= python <= (3, 13):
        return (f"Core AI needs CPython 3.11–3.13 (coreai-core has no wheel for Python {python[0]}.{python[1]}); "
                f"wheels exist for {WHEELS}")
    if system == "Linux" and machine in ("x86_64", "AMD64"):
        return None
    if system == "Darwin" and machine == "arm64":
        if macos is not None and macos[0] < 26:
            return f"Core AI needs macOS 26 or later (this is macOS {macos[0]}.{macos[1]}); wheels exist for {WHEELS}"
        return None
    where = {"Darwin": "macOS", "Linux": "Linux"}.get(system, system)
    return f"coreai-core has no wheel for {where} on {machine}; wheels exist for {WHEELS}"


def _macos() -> tuple[int, int] | None:
    if sys.platform != "darwin":
        return None
    from rnnt_tui.core.coreml.platform import macos_version

    return macos_version()


@functools.cache
def coreai_problem(need_converter: bool = False) -> str | None:
    """Why Core AI cannot run (or, with `need_converter`, convert) here, in one sentence; None when it can."""
    problem = platform_problem(platform.system(), platform.machine(), sys.version_info[:2], _macos())
    if problem is not None:
        return problem
    if importlib.util.find_spec("coreai") is None:
        return f"Apple's Core AI runtime (coreai-core) is not installed: {INSTALL_HINT}"
    if need_converter and importlib.util.find_spec("coreai_torch") is None:
        return f"converting to Core AI needs coreai-torch (and torch): {INSTALL_HINT}"
    return None


@functools.cache
def uses_os_framework() -> bool:
    """True when macOS's own Core AI framework runs assets (macOS 27+, wheel install), False for the bundled
    runtime."""
    if sys.platform != "darwin":
        return False
    import coreai.runtime as runtime  # the runtime decides at import which backing it uses

    return bool(getattr(runtime, "_use_os_coreai", False))


def label_text() -> str:
    """The runtime's label, cheap enough for a class attribute (no coreai import): "Core AI (Apple Core AI
    runtime, Linux CPU)"; on a Mac the runtime in use is known once coreai is imported (`describe`)."""
    if sys.platform != "darwin":
        return f"Core AI ({where_it_runs()})"
    return "Core AI (macOS: OS framework on 27+, else the bundled runtime)"


def where_it_runs(hardware: str | None = None) -> str:
    """What runs a Core AI call here, for every label: "Apple Core AI runtime, Linux CPU", or on a Mac which
    runtime and hardware."""
    if sys.platform != "darwin":
        return f"Apple Core AI runtime, {platform.system()} CPU"
    version = _macos()
    mac = f"macOS {version[0]}.{version[1]}" if version else "macOS"
    if uses_os_framework():
        return f"Core AI framework, {mac}, {hardware or 'hardware chosen by Core AI'}"
    return f"Apple Core AI runtime bundled with coreai-core, {mac}, {hardware or 'its default hardware'}"
