"""The Core ML runtime: the transducer's components as Core ML packages, predicted by Core ML itself (macOS).

`prepare` converts the restored model (`core.coreml.convert`, cached; this part works on Linux too) or takes the
packages in `options.packages_dir` (`core.coreml.spec.match_packages`: ours or the common parakeet-export layout).
On macOS it then loads each package on `options.compute_units`. Loading an `.mlpackage` compiles it into a temporary
folder in every new process, so the first load copies `get_compiled_model_path()` into the ArtifactCache and later
processes open that copy with `CompiledMLModel`, skipping compilation (reported as a cached load; `LOAD_STATS`
counts both kinds). The compiled model does not depend on the compute units, so they are not part of its key.

`bind` casts inputs to the dtypes the package declares (int32 lengths and token ids, float16 where declared), pads a
fixed time axis or refuses a clip longer than a flexible one allows (naming the bound), all before the timed
`predict`; outputs come back under the contract's names, cropped to the unpadded length. Decoder steps carry h/c
between calls; a per-step joint (one frame and one step per call) is called over the T x U grid, or one cell at a
time along the decode path.
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
from rnnt_tui.core.components import DECODER, ENCODER, JOINT, PREPROCESSOR
from rnnt_tui.core.coreml.matching import PackageInfo, match_packages, package_info
from rnnt_tui.core.coreml.plan import compute_unit, core_ml_problem, require
from rnnt_tui.core.errors import BadInputError, CancelledError, StepFailedError
from rnnt_tui.core.runtimes.base import (
    Availability,
    BoundCall,
    FunctionCall,
    PrepareReport,
    Progress,
    Runtime,
    RuntimeOptions,
    no_progress,
)

#: the time axis of each input with one, in the contract's layout
_TIME_AXES = {PREPROCESSOR: {"audio_signal": 1}, ENCODER: {"features": 2}, JOINT: {"encoded": 2, "decoder_output": 2},
              DECODER: {}}
_RENAMED_OUTPUTS = {"h_out": "h", "c_out": "c"}


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


def _dtype(name: str) -> Any:
    return {"float16": np.float16, "float64": np.float64, "int32": np.int32, "int8": np.int8}.get(name, np.float32)


class CoreMLRuntime(Runtime):
    """Core ML on this Mac; honours every RuntimeOptions field."""

    name: ClassVar[str] = "coreml"
    label: ClassVar[str] = "Core ML"
    components: ClassVar[tuple[str, ...]] = (PREPROCESSOR, ENCODER, DECODER, JOINT)

    packages: dict[str, PackageInfo]
    models: dict[str, Any]
    skipped: dict[str, PackageInfo]
    #: component -> the compiled model (.mlmodelc) it runs, for compute plans
    compiled_paths: dict[str, Path]

    def __init__(self, loaded: Any, options: RuntimeOptions | None = None) -> None:
        super().__init__(loaded, options)
        self.packages, self.models, self.skipped, self.compiled_paths = {}, {}, {}, {}

    @classmethod
    def availability(cls) -> Availability:
        problem = core_ml_problem()
        return Availability(ok=problem is None, reason=problem or "")

    def describe(self) -> dict[str, Any]:
        from rnnt_tui.core.coreml.plan import macos_version
        from rnnt_tui.versions import package_version

        version = macos_version()
        return {"name": self.name, "label": self.label, "coremltools": package_version("coremltools"),
                "compute_units": self.options.compute_units, "precision": self.options.precision,
                "minimum_deployment_target": self.options.minimum_deployment_target,
                "max_frames": self.options.max_frames, "packages_dir": self.options.packages_dir,
                "macos": ".".join(map(str, version)) if version else None,
                "packages": {c: str(i.path) for c, i in getattr(self, "packages", {}).items()}}

    # -- prepare ----------------------------------------------------------------------------------
    def prepare(self, progress: Progress = no_progress,
                cancel: threading.Event | None = None) -> list[PrepareReport]:
        from rnnt_tui.core.coreml.convert import convert_components

        self.packages, self.models, self.reports, self.skipped, self.compiled_paths = {}, {}, {}, {}, {}
        opts = self.options
        problem = core_ml_problem()
        actions: dict[str, tuple[str, float, bool, list[str]]] = {}
        if opts.packages_dir:
            start = time.perf_counter()
            found = match_packages(opts.packages_dir, self.loaded.summary)
            elapsed = (time.perf_counter() - start) * 1000
            self.skipped = {k: v for k, v in found.items() if k not in self.components}
            for component in self.components:
                if component in found:
                    info = found[component]
                    self.packages[component] = info
                    actions[component] = (f"package {info.path.name} ({info.source})", elapsed, True,
                                          [info.reason] if info.reason else [])
                else:
                    self.reports[component] = PrepareReport(
                        component=component, action=f"no package in {opts.packages_dir}", prepare_ms=elapsed,
                        notes=[f"no Core ML package for the {component}; the reference's output is used instead"])
        else:
            converted = convert_components(self.loaded, precision=opts.precision,
                                           minimum_deployment_target=opts.minimum_deployment_target,
                                           max_frames=opts.max_frames, components=self.components,
                                           progress=progress, cancel=cancel, use_cache=opts.use_cache)
            for pkg in converted:
                self.packages[pkg.component] = package_info(pkg.path, self.loaded.summary, pkg.component)
                how = "converted (cached)" if pkg.cached else "converted"
                actions[pkg.component] = (f"{how} to {opts.precision} ML program", pkg.elapsed_ms, pkg.cached,
                                          list(pkg.notes))
        for index, (component, (action, prep_ms, was_cached, notes)) in enumerate(actions.items()):
            if problem:
                self.reports[component] = PrepareReport(component=component, action=action, prepare_ms=prep_ms,
                                                        cached=was_cached, artifact=str(self.packages[component].path),
                                                        notes=[*notes, problem])
                continue
            if cancel is not None and cancel.is_set():
                raise CancelledError(f"cancelled before loading the Core ML {component}")
            progress(f"Core ML: loading the {component} on {opts.compute_units}", index / max(len(actions), 1))
            load_ms, from_cache, how = self._load(component, cancel)
            self.reports[component] = PrepareReport(component=component, action=f"{action}; {how}",
                                                    prepare_ms=prep_ms, load_ms=load_ms, cached=from_cache,
                                                    artifact=str(self.packages[component].path), notes=notes)
        return [self.reports[c] for c in self.components if c in self.reports]

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

    # -- binding ----------------------------------------------------------------------------------
    def _model(self, component: str) -> tuple[PackageInfo, Any]:
        if component in self.models:
            return self.packages[component], self.models[component]
        require()
        raise StepFailedError(f"no Core ML {component} is loaded (prepare() first, or the package is missing)")

    def _feed(self, component: str, info: PackageInfo,
              inputs: dict[str, np.ndarray]) -> tuple[dict[str, Any], dict[str, int]]:
        """Package-named, package-typed inputs, and the original time sizes of the inputs that were padded."""
        feed: dict[str, Any] = {name: np.full((1,), value, np.int32) for name, value in info.feeds.items()}
        padded: dict[str, int] = {}
        for contract, tensor in info.inputs.items():
            spec = info.spec.input(tensor)
            value = np.asarray(inputs[contract])
            btd = info.layouts.get(contract) == "BTD"
            if btd:
                value = value.transpose(0, 2, 1)
            if contract in _TIME_AXES[component]:
                axis = 1 if btd else _TIME_AXES[component][contract]
                value, original = self._fit(component, contract, value, axis, spec.bounds(axis), info)
                if original is not None:
                    padded[contract] = original
            feed[tensor] = np.ascontiguousarray(value, dtype=_dtype(spec.dtype))
        return feed, padded

    def _fit(self, component: str, contract: str, value: np.ndarray, axis: int, bounds: tuple[int, int],
             info: PackageInfo) -> tuple[np.ndarray, int | None]:
        """Check `value`'s time axis against the package's bounds and zero-pad a fixed axis; returns (value,
        original size if padded)."""
        n, (low, high) = value.shape[axis], bounds
        if high != -1 and n > high:
            bound = info.spec.ours("max_frames")
            hint = f" (converted with max_frames={bound} encoder frames)" if bound else " (its fixed window)"
            fix = "convert with a larger max_frames" if bound else "re-export it with a longer window"
            raise BadInputError(None, f"the clip is too long for the Core ML {component}: its {contract} has {n} "
                                      f"steps on the time axis but {info.path.name} accepts at most {high}{hint}; "
                                      f"use a shorter clip or {fix}")
        if n < low and low != high:
            raise BadInputError(None, f"the clip is too short for the Core ML {component}: its {contract} has {n} "
                                      f"steps on the time axis but {info.path.name} needs at least {low}")
        if n < low:
            pad = [(0, 0)] * value.ndim
            pad[axis] = (0, low - n)
            return np.pad(value, pad), n
        return value, None

    def _crops(self, component: str, inputs: dict[str, np.ndarray], padded: dict[str, int]) -> dict[str, Any]:
        """Output contract name -> {axis: size} that undoes the padding of fixed-shape inputs."""
        from rnnt_tui.core.coreml.convert import expected_frames

        if component == PREPROCESSOR and "audio_signal" in padded:
            return {"features": {2: expected_frames(self.loaded, PREPROCESSOR, padded["audio_signal"])}}
        if component == ENCODER and "features" in padded:
            return {"encoded": {2: expected_frames(self.loaded, ENCODER, padded["features"])}}
        if component == JOINT and padded:
            return {"logits": {1: inputs["encoded"].shape[2], 2: inputs["decoder_output"].shape[2]}}
        return {}

    def _outputs(self, info: PackageInfo, raw: dict[str, Any], crops: dict[str, Any]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for contract, tensor in info.outputs.items():
            value = np.asarray(raw[tensor])
            if info.layouts.get(contract) == "BTD":
                value = value.transpose(0, 2, 1)
            for axis, size in crops.get(contract, {}).items():
                value = value[tuple(slice(0, size) if a == axis else slice(None) for a in range(value.ndim))]
            if contract == "decoder_output" and value.ndim == 3 and value.shape[1] == 1 and value.shape[2] > 1:
                value = value.reshape(1, -1, 1)  # a [1,1,H] step output in the contract's [1,H,1]
            out[_RENAMED_OUTPUTS.get(contract, contract)] = value
        return out

    def bind(self, component: str, inputs: dict[str, np.ndarray]) -> BoundCall:
        info, model = self._model(component)
        if component == JOINT and info.per_step:
            return self._bind_grid(info, model, inputs)
        feed, padded = self._feed(component, info, inputs)
        crops = self._crops(component, inputs, padded)
        return FunctionCall(lambda: model.predict(feed), lambda raw: self._outputs(info, raw, crops))

    def _bind_grid(self, info: PackageInfo, model: Any, inputs: dict[str, np.ndarray]) -> BoundCall:
        enc, dec = np.asarray(inputs["encoded"]), np.asarray(inputs["decoder_output"])
        feeds = [[self._feed(JOINT, info, {"encoded": enc[:, :, t:t + 1], "decoder_output": dec[:, :, u:u + 1]})[0]
                  for u in range(dec.shape[2])] for t in range(enc.shape[2])]
        name = info.outputs["logits"]

        def call() -> list[list[Any]]:
            return [[model.predict(f)[name] for f in row] for row in feeds]

        def convert(raw: list[list[Any]]) -> dict[str, np.ndarray]:
            rows = [[np.asarray(cell).reshape(-1) for cell in row] for row in raw]
            return {"logits": np.asarray(rows)[None, ...]}

        return FunctionCall(call, convert)

    # -- greedy decoding steps --------------------------------------------------------------------
    def initial_state(self) -> Any:
        info, _ = self._model(DECODER)
        return tuple(np.zeros(info.spec.input(info.inputs[k]).shape, _dtype(info.spec.input(info.inputs[k]).dtype))
                     for k in ("h", "c"))

    def decoder_step(self, token: int, state: Any) -> tuple[Any, Any]:
        info, model = self._model(DECODER)
        feed, _ = self._feed(DECODER, info, {"targets": np.array([[token]]), "h": state[0], "c": state[1]})
        out = self._outputs(info, model.predict(feed), {})
        return out["decoder_output"], (out["h"], out["c"])

    def joint_step(self, frame: np.ndarray, decoder_output: Any) -> np.ndarray:
        info, model = self._model(JOINT)
        g = np.asarray(decoder_output, dtype=np.float32).reshape(1, -1, 1)
        inputs = {"encoded": np.asarray(frame), "decoder_output": g}
        feed, padded = self._feed(JOINT, info, inputs)
        logits = self._outputs(info, model.predict(feed), self._crops(JOINT, inputs, padded))["logits"]
        return np.asarray(logits).reshape(-1)

    def close(self) -> None:
        self.models = {}


def core_ml_os() -> str:
    import platform

    return platform.mac_ver()[0] or platform.platform()
