"""The Core ML runtime: the transducer's components as Core ML packages, predicted by Core ML itself (macOS).

Everything about the packages - conversion or `--packages`, the inventory, feeds, padding, crops, decoder state,
the joint's tiles, decision heads - is `PackageRuntime`'s; this class only loads and predicts. On macOS it loads
each package on `options.compute_units`. Loading an `.mlpackage` compiles it into a temporary folder in every new
process, so the first load copies `get_compiled_model_path()` into the ArtifactCache and later processes open that
copy with `CompiledMLModel`, skipping compilation (reported as a cached load; `LOAD_STATS` counts both kinds). The
compiled model does not depend on the compute units, so they are not part of its key.

Feeds as coremltools takes them: its `predict` replaces float16 arrays in the caller's dict with float32 copies
(and np.int8 feeds work only in wheels built with the newest SDK), so float16 inputs are fed as float32 and int8 as
int32 - Core ML converts to the declared type itself - and each call gets a fresh shallow copy of the feed, so no
timed call pays a hidden copy. `predict` hands fp16 outputs over as float32; the values are fp16 values, so they
are cast back to the declared float16, exactly, and a dtype difference with the reference shows as it is.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rnnt_tui.core.cache import ArtifactCache, make_key
from rnnt_tui.core.coreml.matching import PackageInfo
from rnnt_tui.core.coreml.plan import compute_unit, core_ml_problem, require
from rnnt_tui.core.runtimes.base import Availability, RuntimeOptions
from rnnt_tui.core.runtimes.package_runtime import PackageRuntime


@dataclass
class LoadStats:
    """What loading did in this process: compilations (cold loads) and loads served by the compiled cache."""

    compilations: int = 0
    compiled_cache_hits: int = 0


LOAD_STATS = LoadStats()


def _stamp(path: Path) -> str:
    """Identity of a package on disk (paths, sizes, mtimes of its files), cheap even for GB-sized weights."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    blob = "|".join(f"{p.relative_to(path.parent)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    return hashlib.sha256(f"{path.resolve()}|{blob}".encode()).hexdigest()


class CoreMLRuntime(PackageRuntime):
    """Core ML on this Mac; honours every RuntimeOptions field."""

    name: ClassVar[str] = "coreml"
    label: ClassVar[str] = "Core ML"
    engine: ClassVar[str] = "Core ML"
    FEED_DTYPES: ClassVar[dict[str, Any]] = {**PackageRuntime.FEED_DTYPES, "float16": np.float32, "int8": np.int32}

    #: component -> the compiled model (.mlmodelc) it runs, for compute plans
    compiled_paths: dict[str, Path]

    def __init__(self, loaded: Any, options: RuntimeOptions | None = None) -> None:
        super().__init__(loaded, options)
        self.compiled_paths = {}

    def _reset(self) -> None:
        super()._reset()
        self.compiled_paths = {}

    @classmethod
    def availability(cls) -> Availability:
        problem = core_ml_problem()
        return Availability(ok=problem is None, reason=problem or "")

    def describe(self) -> dict[str, Any]:
        from rnnt_tui.core.coreml.plan import macos_version

        version = macos_version()
        return {**super().describe(), "compute_units": self.options.compute_units,
                "macos": ".".join(map(str, version)) if version else None}

    def _problem(self) -> str | None:
        return core_ml_problem()

    def _check_runnable(self) -> None:
        require()

    def _load(self, component: str, cancel: threading.Event | None) -> tuple[float, bool, str]:
        """Load one package on the chosen units; returns (load ms, served from the compiled cache, how)."""
        ct = require()
        units = compute_unit(ct, self.options.compute_units)
        path = self.packages[component].path
        start = time.perf_counter()
        if path.suffix == ".mlmodelc":
            self.models[component] = ct.models.CompiledMLModel(str(path), units)
            self.compiled_paths[component] = path
            return (time.perf_counter() - start) * 1000, True, "opened the compiled model"
        cache = ArtifactCache() if self.options.use_cache else None
        key = make_key(kind="coreml-compiled", package=_stamp(path), coremltools=ct.__version__,
                       macos=core_ml_os())
        entry = cache.lookup(key) if cache else None
        if entry is not None:
            self.compiled_paths[component] = entry.path / "model.mlmodelc"
            self.models[component] = ct.models.CompiledMLModel(str(self.compiled_paths[component]), units)
            LOAD_STATS.compiled_cache_hits += 1
            return (time.perf_counter() - start) * 1000, True, "compiled model from the cache"
        model = ct.models.MLModel(str(path), compute_units=units)
        load_ms = (time.perf_counter() - start) * 1000
        LOAD_STATS.compilations += 1
        self.models[component] = model
        compiled = Path(model.get_compiled_model_path())
        self.compiled_paths[component] = compiled
        if cache is not None:

            def build(tmp: Path) -> dict[str, Any]:
                shutil.copytree(compiled, tmp / "model.mlmodelc")
                return {"component": component, "package": str(path)}

            self.compiled_paths[component] = cache.get_or_build(key, build, cancel)[0].path / "model.mlmodelc"
        return load_ms, False, "compiled (cold load)"

    def _execute(self, component: str, feed: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.models[component].predict(feed)
        return result

    def _as_declared(self, info: PackageInfo, tensor: str, value: np.ndarray) -> np.ndarray:
        declared = info.spec.output(tensor).dtype
        return value.astype(np.float16) if declared == "float16" and value.dtype == np.float32 else value


def core_ml_os() -> str:
    import platform

    return platform.mac_ver()[0] or platform.platform()
