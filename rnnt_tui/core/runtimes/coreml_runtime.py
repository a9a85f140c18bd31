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

from rnnt_tui.core.components import DECODER, JOINT
from rnnt_tui.core.coreml.matching import JOINT_DECISION, JOINT_DECISION_STEP, PackageInfo
from rnnt_tui.core.coreml.plan import core_ml_problem, require
from rnnt_tui.core.runtimes.base import Availability, PrepareReport, Progress, RuntimeOptions, no_progress
from rnnt_tui.core.runtimes.package_inventory import KnownPackages
from rnnt_tui.core.runtimes.package_runtime import PackageRuntime


class CoreMLRuntime(PackageRuntime):
    """Core ML on this Mac; honours every RuntimeOptions field."""

    name: ClassVar[str] = "coreml"
    label: ClassVar[str] = "Core ML"
    engine: ClassVar[str] = "Core ML"
    FEED_DTYPES: ClassVar[dict[str, Any]] = {**PackageRuntime.FEED_DTYPES, "float16": np.float32, "int8": np.int32}

    #: component -> the compiled model (.mlmodelc) it runs, for compute plans
    compiled_paths: dict[str, Path]

    def __init__(self, loaded: Any, options: RuntimeOptions | None = None, known: KnownPackages | None = None) -> None:
        super().__init__(loaded, options, known)
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

    def prepare(self, progress: Progress = no_progress,
                cancel: threading.Event | None = None) -> list[PrepareReport]:
        """`PackageRuntime.prepare`, then one decoder step and one joint step at the greedy decode's shapes
        (`prime_steps`), so the decode's single timed run does not pay Core ML's first call at a new input shape
        (the joint is called per frame, [1, D, 1], a shape the component comparison never fed it)."""
        reports = super().prepare(progress, cancel)
        note = self.prime_steps()
        if note:
            for report in reports:
                if report.component in (DECODER, JOINT):
                    report.notes.append(note)
        return reports

    def prime_steps(self) -> str | None:
        """Call the decoder and the joint once at the step shapes (outputs discarded); a note saying so, or why not
        (None when they are not loaded)."""
        if DECODER not in self.models or not ({JOINT, JOINT_DECISION_STEP, JOINT_DECISION} & set(self.models)):
            return None
        try:
            info = self.packages.get(JOINT) or self.packages.get(JOINT_DECISION_STEP) or self.packages[JOINT_DECISION]
            width = info.spec.input(info.inputs["encoded"]).shape
            d_model = width[2] if info.layouts.get("encoded") == "BTD" else width[1]
            blank = int(getattr(self.loaded.summary, "blank_id", 0))
            g, _ = self.decoder_step(blank, self.initial_state())
            frame = np.zeros((1, int(d_model), 1), np.float32)
            if self.decodes_through_decision:
                self.decide_step(frame, g)
            else:
                self.joint_step(frame, g)
        except Exception as exc:  # noqa: BLE001 - priming is an optimisation of the timing: say why it failed
            return f"not primed at the decode's step shapes ({type(exc).__name__}: {exc}); the decode's time may " \
                   "include Core ML's first call at them"
        return ("called once at the greedy decode's step shapes before the decode was timed (Core ML's first call "
                "at a new shape is not part of the decode's time)")

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

    def _execute(self, component: str, feed: dict[str, Any], state: Any = None) -> dict[str, Any]:
        model = self.models[component]
        result: dict[str, Any] = model.predict(feed) if state is None else model.predict(feed, state=state)
        return result

    def _new_state(self, component: str) -> Any:
        """`make_state()` of the loaded model (coremltools 9.0: an `MLState` with `read_state` / `write_state`;
        Core ML states need macOS 15+, which the package's spec version already required to load)."""
        return self.models[component].make_state()

    def _as_declared(self, info: PackageInfo, tensor: str, value: np.ndarray) -> np.ndarray:
        declared = info.spec.output(tensor).dtype
        return value.astype(np.float16) if declared == "float16" and value.dtype == np.float32 else value

