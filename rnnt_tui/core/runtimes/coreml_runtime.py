"""The Core ML runtime: the transducer's components as Core ML packages, predicted by Core ML itself (macOS).

Everything about the packages - conversion or `--packages`, the inventory, feeds, padding, crops, decoder state,
the joint's tiles, decision heads - is `PackageRuntime`'s; this class only loads and predicts. On macOS it loads
each package on `options.compute_units` through `core.coreml.load`: the package's spec version is checked against
this macOS before anything compiles, a load Core ML refuses raises with Core ML's reason, and the compiled model
lives in the ArtifactCache (later processes open it without compiling; reported as a cached load) or, with the
cache off, in this runtime's private folder - never in Core ML's temporary compile folder. The compiled model does
not depend on the compute units, so they are not part of its key.

Feeds as coremltools takes them: its `predict` replaces float16 arrays in the caller's dict with float32 copies
(and np.int8 feeds work only in wheels built with the newest SDK), so float16 inputs are fed as float32 and int8 as
int32 - Core ML converts to the declared type itself - and each call gets a fresh shallow copy of the feed, so no
timed call pays a hidden copy. `predict` hands fp16 outputs over as float32; the values are fp16 values, so they
are cast back to the declared float16, exactly, and a dtype difference with the reference shows as it is.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rnnt_tui.core.coreml.matching import PackageInfo
from rnnt_tui.core.coreml.plan import core_ml_problem, require
from rnnt_tui.core.runtimes.base import Availability, RuntimeOptions
from rnnt_tui.core.runtimes.package_runtime import PackageRuntime


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

    def close(self) -> None:
        """Release the models, then the loader's private compiled copies (when the cache is off)."""
        super().close()
        loader = getattr(self, "loader", None)
        if loader is not None:
            loader.close()
        self.loader: Any = None

    def _load(self, component: str, cancel: threading.Event | None) -> tuple[float, bool, str]:
        """Load one package on the chosen units through `core.coreml.load` (Core ML's own reason when it cannot,
        the spec checked against this macOS first, the compiled model kept in the cache or this runtime's private
        folder); returns (load ms, no compilation was needed, how)."""
        from rnnt_tui.core.coreml.load import CoreMLLoader

        loader: CoreMLLoader | None = getattr(self, "loader", None)
        if loader is None:
            loader = self.loader = CoreMLLoader(self.options.use_cache)
        info = self.packages[component]
        opened = loader.load(info.path, self.options.compute_units, cancel, info.spec.spec_version)
        self.models[component] = opened.model
        self.compiled_paths[component] = opened.compiled_path
        return opened.load_ms, not opened.compiled_now, opened.how

    def _execute(self, component: str, feed: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.models[component].predict(feed)
        return result

    def _as_declared(self, info: PackageInfo, tensor: str, value: np.ndarray) -> np.ndarray:
        declared = info.spec.output(tensor).dtype
        return value.astype(np.float16) if declared == "float16" and value.dtype == np.float32 else value

