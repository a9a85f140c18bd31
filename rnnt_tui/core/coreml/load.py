"""Load a Core ML package or compiled model on chosen compute units, and say why when Core ML cannot.

`ct.models.MLModel(path)` does not raise when Core ML cannot load a model: it keeps its proxy None (silently when
the spec is newer than its bridge; with only a RuntimeWarning, the error kept in `_framework_error`, otherwise), and
the next call fails with a bare "not loaded or compiled". So no loading MLModel is made here: a package is
compiled with `ct.utils.compile_model` and opened with `ct.models.CompiledMLModel`, which both raise Core ML's own
error, and each failure becomes a `CoreMLLoadError` naming the package, the compute units and that reason. Before
any compile, the package's spec version is checked against this Mac (`check_runnable`): "needs macOS 15 (spec 9);
this Mac runs 14.4" is a `PackageTooNewError`, an unavailability rather than a failure.

Compiled models outlive the load: with the cache on they are compiled into an ArtifactCache entry (later
processes open it without compiling); with it off into a private temp folder owned by the `CoreMLLoader` and
removed by `close()` — never Core ML's own temporary compile folder, which goes when its model is released.
Each load says how long it took and whether that included compilation; `load_times` measures, on one compute unit,
a cold compile + first load beside a load of the already-compiled model (the sweep reports both for every unit).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnt_tui.core.coreml.platform import compute_unit, macos_version, require, version_text
from rnnt_tui.core.coreml.spec import SPEC_VERSION_TARGETS, read_spec
from rnnt_tui.core.errors import RnntTuiError, RuntimeUnavailableError

COMPILED_NAME = "model.mlmodelc"


class CoreMLLoadError(RnntTuiError):
    """Core ML refused to compile or load a model; the message names it, the compute units and Core ML's reason."""


class PackageTooNewError(RuntimeUnavailableError):
    """The package needs a newer macOS (or coremltools) than this machine has."""


@dataclass
class LoadStats:
    """What loading did in this process: compilations (cold loads) and loads served by the compiled cache."""

    compilations: int = 0
    compiled_cache_hits: int = 0


LOAD_STATS = LoadStats()


def target_macos(spec_version: int) -> tuple[int, int] | None:
    """The macOS a spec version needs ("macOS14" -> (14, 0), "macOS10_15" -> (10, 15)); None when unknown."""
    target = SPEC_VERSION_TARGETS.get(spec_version)
    if target is None:
        return None
    major, _, minor = target.removeprefix("macOS").partition("_")
    return int(major), int(minor or 0)


def os_problem(path: Path, spec_version: int | None, macos: tuple[int, int] | None,
               bridge_max: int | None = None) -> str | None:
    """Why `path` (Core ML spec `spec_version`) cannot load on macOS `macos` with a bridge that reads specs up to
    `bridge_max`, or None (pure: tested on any OS)."""
    if spec_version is None or macos is None:
        return None
    if bridge_max is not None and spec_version > bridge_max:
        return (f"{path.name} is Core ML spec {spec_version}, but this coremltools reads specs up to {bridge_max}: "
                "upgrade coremltools")
    needed = target_macos(spec_version)
    if needed is None and spec_version > max(SPEC_VERSION_TARGETS):
        return (f"{path.name} needs a macOS newer than any this tool knows (spec {spec_version}); this Mac runs "
                f"{version_text(macos)}")
    if needed is not None and macos < needed:
        return (f"{path.name} needs macOS {version_text(needed)} (spec {spec_version}); this Mac runs "
                f"{version_text(macos)}")
    return None


def check_runnable(path: Path, spec_version: int | None = None) -> None:
    """Raise PackageTooNewError when this Mac's macOS (or coremltools' bridge) is too old for `path`; reads the
    spec version from the package when not given. Nothing is compiled."""
    if spec_version is None:
        spec_version = read_spec(path).spec_version
    from coremltools.models.model import _MLModelProxy

    bridge_max = int(_MLModelProxy.maximum_supported_specification_version()) if _MLModelProxy else None
    problem = os_problem(path, spec_version, macos_version(), bridge_max)
    if problem:
        raise PackageTooNewError(problem)


def package_stamp(path: Path) -> str:
    """Identity of a package on disk (paths, sizes, mtimes of its files), cheap even for GB-sized weights.

    A package's `Manifest.json` counts by its content, not its mtime: coremltools' ModelPackage rewrites it each
    time a package is opened (even read-only, e.g. `MLModel(..., skip_model_load=True)`), which would otherwise
    make every load miss the compiled-model cache."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]

    def part(p: Path) -> str:
        if p.name == "Manifest.json" and p.parent == path:
            return f"{p.relative_to(path.parent)}:{hashlib.sha256(p.read_bytes()).hexdigest()}"
        return f"{p.relative_to(path.parent)}:{p.stat().st_size}:{p.stat().st_mtime_ns}"

    blob = "|".join(part(p) for p in files)
    return hashlib.sha256(f"{path.resolve()}|{blob}".encode()).hexdigest()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def compile_package(ct: Any, package: Path, destination: Path, units: str) -> float:
    """Compile `package` into `destination` (a `.mlmodelc` path); returns the ms it took."""
    start = time.perf_counter()
    try:
        ct.utils.compile_model(str(package), destination_path=str(destination))
    except Exception as exc:  # coremltools raises RuntimeError / bare Exception with Core ML's message
        raise CoreMLLoadError(f"{package}: Core ML could not compile it (for {units}): {_reason(exc)}") from exc
    LOAD_STATS.compilations += 1
    return (time.perf_counter() - start) * 1000


def open_compiled(ct: Any, compiled: Path, units: str, package: Path | None = None,
                  function: str | None = None) -> tuple[Any, float]:
    """Open a compiled model on `units` (of a multifunction model, `function`: `MLModelConfiguration.functionName`,
    macOS 15+); returns (model, ms). `package` names the source in errors."""
    unit = compute_unit(ct, units)
    start = time.perf_counter()
    try:
        model = ct.models.CompiledMLModel(str(compiled), unit, function_name=function)
    except Exception as exc:  # the bridge raises RuntimeError with Core ML's NSError text
        source = f"{package} (compiled at {compiled})" if package else str(compiled)
        what = f"its function {function}" if function else "it"
        raise CoreMLLoadError(f"{source}: Core ML could not load {what} on {units}: {_reason(exc)}") from exc
    return model, (time.perf_counter() - start) * 1000


@dataclass
class OpenedModel:
    """A model ready to predict, the compiled model it runs (alive as long as its loader) and what loading cost."""

    model: Any
    compiled_path: Path
    compute_units: str
    open_ms: float
    compile_ms: float | None  # None: served compiled (the cache, or a .mlmodelc given as it is)
    source: str  # "compiled now", "compiled cache" or "compiled model"

    @property
    def compiled_now(self) -> bool:
        return self.compile_ms is not None

    @property
    def load_ms(self) -> float:
        """The whole load: compilation (when it happened) plus opening on the compute units."""
        return self.open_ms + (self.compile_ms or 0.0)

    @property
    def how(self) -> str:
        if self.compile_ms is not None:
            return f"compiled ({self.compile_ms:.0f} ms) and loaded on {self.compute_units} (cold load)"
        if self.source == "compiled cache":
            return f"compiled model from the cache, loaded on {self.compute_units}"
        return f"opened the compiled model on {self.compute_units}"


class CoreMLLoader:
    """Loads packages for one runtime; owns the private folder compiled models live in when the cache is off."""

    def __init__(self, use_cache: bool = True) -> None:
        self.use_cache = use_cache
        self._private: Path | None = None
        self._finalizer: weakref.finalize | None = None

    def private_dir(self) -> Path:
        """This loader's own folder for compiled models (made on first use, removed by close or at exit)."""
        if self._private is None or not self._private.is_dir():
            self._private = Path(tempfile.mkdtemp(prefix="rnnt-tui-coreml-"))
            self._finalizer = weakref.finalize(self, shutil.rmtree, str(self._private), True)
        return self._private

    def load(self, path: Path, compute_units: str, cancel: threading.Event | None = None,
             spec_version: int | None = None, function: str | None = None) -> OpenedModel:
        """Load `path` (.mlpackage, .mlmodel or .mlmodelc; of a multifunction package, `function`) on
        `compute_units`, compiled once whichever function is opened; raises PackageTooNewError or CoreMLLoadError
        with the reason."""
        from rnnt_tui.core.cache import ArtifactCache, make_key

        ct = require()
        compute_unit(ct, compute_units)
        check_runnable(path, spec_version)
        if path.suffix == ".mlmodelc":
            model, ms = open_compiled(ct, path, compute_units, None, function)
            return OpenedModel(model, path, compute_units, ms, None, "compiled model")
        if not self.use_cache:
            destination = Path(tempfile.mkdtemp(prefix=f"{path.stem}-", dir=self.private_dir())) / COMPILED_NAME
            fresh_ms = compile_package(ct, path, destination, compute_units)
            model, ms = open_compiled(ct, destination, compute_units, path, function)
            return OpenedModel(model, destination, compute_units, ms, fresh_ms, "compiled now")
        cache = ArtifactCache()
        key = make_key(kind="coreml-compiled", package=package_stamp(path), coremltools=ct.__version__,
                       macos=version_text(macos_version() or (0,)))
        compile_ms: float | None = None

        def build(tmp: Path) -> dict[str, Any]:
            nonlocal compile_ms
            compile_ms = compile_package(ct, path, tmp / COMPILED_NAME, compute_units)
            return {"package": str(path)}

        entry, _ = cache.get_or_build(key, build, cancel)
        compiled = entry.path / COMPILED_NAME
        model, ms = open_compiled(ct, compiled, compute_units, path, function)
        if compile_ms is None:
            LOAD_STATS.compiled_cache_hits += 1
            return OpenedModel(model, compiled, compute_units, ms, None, "compiled cache")
        return OpenedModel(model, compiled, compute_units, ms, compile_ms, "compiled now")

    def close(self) -> None:
        """Remove the private folder (the models opened from it must be released first)."""
        if self._finalizer is not None:
            self._finalizer()
        self._private = self._finalizer = None


@dataclass(frozen=True)
class LoadTimes:
    """On one compute unit: a cold compile + first load beside a load of the already-compiled model."""

    compute_units: str
    compile_ms: float
    cold_open_ms: float
    cached_open_ms: float

    @property
    def cold_ms(self) -> float:
        return self.compile_ms + self.cold_open_ms

    def to_json(self) -> dict[str, Any]:
        return {"compute_units": self.compute_units, "compile_ms": self.compile_ms, "cold_ms": self.cold_ms,
                "cold_open_ms": self.cold_open_ms, "cached_open_ms": self.cached_open_ms}


def load_times(package: Path, compute_units: str, compiled: Path | None = None) -> LoadTimes:
    """Compile `package` afresh into a temp folder and load it on `compute_units` (cold), then load `compiled`
    (the cached compilation; the fresh one when None) on the same units (cached)."""
    ct = require()
    check_runnable(package)
    with tempfile.TemporaryDirectory(prefix="rnnt-tui-cold-") as tmp:
        fresh = Path(tmp) / COMPILED_NAME
        compile_ms = compile_package(ct, package, fresh, compute_units)
        model, cold_open = open_compiled(ct, fresh, compute_units, package)
        del model
        model, cached_open = open_compiled(ct, compiled or fresh, compute_units, package)
        del model
    return LoadTimes(compute_units, compile_ms, cold_open, cached_open)
