"""The Core AI runtime: the transducer's components as Core AI assets, run by Apple's Core AI runtime.

Where it runs is part of every label: on Linux (and macOS 26) the runtime bundled with coreai-core on the CPU
("Apple Core AI runtime, Linux CPU"), on macOS 27+ the OS framework (`core.coreai.platform`). The assets are the
tool's own conversion of the restored model (`core.coreai.convert`, cached) or a user's folder
(`options.packages_dir`, `core.coreai.matching`: read and checked when the runtime is made, so a bad asset is a
`BadInputError` - exit 2 - before anything runs). Every asset function is accounted for in `inventory`.

One `Executor` (one event loop, every executable open) per runtime; `bind` pads a time axis to the multiple the
asset declares (or to a static-shape entrypoint's length), casts inputs to the declared dtypes and converts them
to the runtime's arrays, all before the timed call; outputs are read by name and cropped to the clip's frames.
Options: `precision` (fp32 / fp16 conversion), `weights` (coreai-opt compression), `max_frames` and `use_cache` are
honoured; compute units are Core ML's and do not apply.
"""

from __future__ import annotations

import shutil
import threading
from typing import Any, ClassVar

import numpy as np

from rnnt_tui.core.components import COMPONENTS, DECODER, ENCODER, JOINT, PREPROCESSOR
from rnnt_tui.core.coreai.matching import FunctionMap
from rnnt_tui.core.coreai.platform import coreai_problem, label_text, where_it_runs
from rnnt_tui.core.errors import BadInputError, CancelledError, RuntimeUnavailableError, StepFailedError
from rnnt_tui.core.runtimes.base import (
    Availability,
    BoundCall,
    FunctionCall,
    PrepareReport,
    Progress,
    Runtime,
    RuntimeOptions,
    TimeCapacity,
    no_progress,
)
from rnnt_tui.core.tolerances import COMPRESSED, FP16, FP32, Tolerance

_TIME = {PREPROCESSOR: ("audio_signal", 1, "samples"), ENCODER: ("features", 2, "feature frames")}
_RENAMED = {"h_out": "h", "c_out": "c"}
_NUMPY = {"float32": np.float32, "float16": np.float16, "int32": np.int32, "int64": np.int64, "int8": np.int8,
          "int16": np.int16, "bool": np.bool_}
COMPUTE_UNITS_NOTE = "compute units are Core ML's; Core AI chooses its hardware itself"


class CoreAIRuntime(Runtime):
    """Core AI assets on Apple's Core AI runtime."""

    name: ClassVar[str] = "coreai"
    label: ClassVar[str] = label_text()
    components: ClassVar[tuple[str, ...]] = COMPONENTS

    def __init__(self, loaded: Any, options: RuntimeOptions | None = None) -> None:
        super().__init__(loaded, options)
        self.maps: dict[str, list[FunctionMap]] = {}
        self.functions: dict[tuple[str, str], Any] = {}
        self.inventory: list[Any] = []
        self.warnings: list[str] = []
        self.bind_notes: dict[str, list[str]] = {}
        self.executor: Any = None
        self._scratch: Any = None
        self._matched = None
        if self.options.packages_dir:
            from rnnt_tui.core.coreai.matching import match_assets

            self._matched = match_assets(self.options.packages_dir)  # a bad asset is the user's: exit 2, now

    @classmethod
    def availability(cls) -> Availability:
        problem = coreai_problem()
        return Availability(ok=problem is None, reason=problem or "")

    def describe(self) -> dict[str, Any]:
        from rnnt_tui.versions import package_version

        return {"name": self.name, "label": self.label, "runs_on": where_it_runs() if coreai_problem() is None
                else None, "coreai-core": package_version("coreai-core"),
                "coreai-torch": package_version("coreai-torch"), "precision": self.precision(),
                "program_precision": self.compute_precision(), "weights": self.options.weights,
                "max_frames": self.options.max_frames, "packages_dir": self.options.packages_dir,
                "compute_units": None, "compute_units_note": COMPUTE_UNITS_NOTE,
                "assets": {c: [m.label for m in ms] for c, ms in self.maps.items()},
                "functions": {c: [m.function.signature() for m in ms] for c, ms in self.maps.items()},
                "inventory": [e.to_json() for e in self.inventory], "warnings": list(self.warnings)}

    # -- prepare ------------------------------------------------------------------------------------
    def _converted(self, progress: Progress, cancel: threading.Event | None) -> dict[str, tuple[str, float, bool,
                                                                                            list[str]]]:
        """Convert (or take from the cache) every component; fills `self.maps`; returns per-component
        (action, ms, cached, notes)."""
        from rnnt_tui.core.coreai.assets import read_asset
        from rnnt_tui.core.coreai.convert import convert_components
        from rnnt_tui.core.coreai.matching import AssetEntry, fit

        if not self.options.use_cache:
            import tempfile
            from pathlib import Path

            self._scratch = Path(tempfile.mkdtemp(prefix="rnnt-tui-coreai-"))
        done = convert_components(self.loaded, self.options.precision, self.options.max_frames,
                                  type(self).components, progress, cancel, self.options.use_cache, self._scratch,
                                  self.options.weights)
        actions = {}
        for asset in done:
            info = read_asset(asset.path)
            mapped = fit(info, info.functions["main"], asset.component)
            if isinstance(mapped, str):
                raise StepFailedError(f"the converted {asset.component} does not fit its contract: {mapped}")
            self.maps[asset.component] = [mapped]
            self.inventory.append(AssetEntry(str(asset.path), "main", asset.component, "converted by rnnt-tui"))
            action = "cache hit" if asset.cached else "converted (torch.export + coreai-torch)"
            actions[asset.component] = (action, asset.elapsed_ms, asset.cached, list(asset.notes))
        return actions

    def prepare(self, progress: Progress = no_progress,
                cancel: threading.Event | None = None) -> list[PrepareReport]:
        from rnnt_tui.core.coreai.execute import Executor

        self.close()
        self.maps, self.functions, self.inventory, self.reports = {}, {}, [], {}
        problem = coreai_problem(need_converter=self._matched is None)
        if problem is not None:
            raise RuntimeUnavailableError(problem)
        actions: dict[str, tuple[str, float, bool, list[str]]]
        if self._matched is not None:
            self.maps = {c: list(ms) for c, ms in self._matched.used.items()}
            self.inventory = list(self._matched.entries)
            actions = {c: (f"asset from {self.options.packages_dir}", 0.0, False, []) for c in self.maps}
        else:
            actions = self._converted(progress, cancel)
        self.executor = Executor()
        lowering = self._lowering_cache()
        opened: dict[str, Any] = {}
        every = type(self).components  # a subclass may run fewer (the streaming comparison: decoder and joint)
        for index, component in enumerate(every):
            if component not in self.maps:
                self.reports[component] = PrepareReport(component, f"no asset in {self.options.packages_dir}", 0.0,
                                                        notes=[f"no Core AI function for the {component}; the "
                                                               "reference's output is used instead"])
                continue
            if cancel is not None and cancel.is_set():
                raise CancelledError(f"cancelled before loading the Core AI {component}")
            progress(f"{self.label}: loading the {component}", index / len(every))
            action, prep_ms, cached, notes = actions[component]
            load_ms = 0.0
            loads: list[str] = []
            for fmap in self.maps[component]:
                key = str(fmap.asset.path)
                if key not in opened:
                    try:
                        opened[key], ms, lowered_cached, _chatter = self.executor.open(fmap.asset.path, lowering)
                    except Exception as exc:  # the runtime's own reason, naming the file
                        if self._matched is None:
                            raise
                        raise BadInputError(fmap.asset.path, f"Apple's Core AI runtime cannot load it: {exc}") from None
                    load_ms += ms
                    loads.append("lowered program from the cache" if lowered_cached else "lowered now")
                self.functions[(component, fmap.function.name)] = self.executor.function(opened[key],
                                                                                        fmap.function.name)
            self.reports[component] = PrepareReport(
                component=component, action=f"{action}; loaded by {where_it_runs()}"
                                            + (f" ({', '.join(loads)})" if loads else ""), prepare_ms=prep_ms,
                load_ms=load_ms, cached=cached, artifact=str(self.maps[component][0].asset.path),
                notes=[*notes, *(f"function {m.label}: {m.function.signature()}" for m in self.maps[component])])
        self.components = tuple(c for c in every if c in self.maps)  # type: ignore[misc]
        return [self.reports[c] for c in every]

    def _lowering_cache(self) -> Any:
        """Where lowered programs are kept (the ArtifactCache, or this runtime's scratch folder without a cache)."""
        from pathlib import Path

        from rnnt_tui.core.cache import ArtifactCache

        if self.options.use_cache:
            return ArtifactCache()
        if self._scratch is None:
            import tempfile

            self._scratch = Path(tempfile.mkdtemp(prefix="rnnt-tui-coreai-"))
        return ArtifactCache(self._scratch)

    # -- precision ----------------------------------------------------------------------------------
    def precision(self) -> str:
        """"fp16" when any mapped function takes or gives float16, else "fp32" (the flag, before prepare)."""
        if not self.maps:
            return self.options.precision
        return "fp16" if any(self.component_precision(c) == "fp16" for c in self.maps) else "fp32"

    def component_precision(self, component: str) -> str:
        """"fp16" when `component`'s function takes or gives float16 (what its program computes in), else "fp32"."""
        return "fp16" if any(t.dtype == "float16" for m in self.maps.get(component, [])
                             for t in (*m.function.inputs, *m.function.outputs)) else "fp32"

    def compute_precision(self) -> dict[str, str]:
        """Component -> the precision its asset computes in, as the package runtimes report it."""
        return {c: self.component_precision(c) for c in self.maps}

    def component_weights(self, component: str) -> str | None:
        """The weight compression of `component`'s asset (the tool's conversion; None for the preprocessor)."""
        from rnnt_tui.core.coreai.convert import compressed

        return compressed(component, self.options.weights) if self._matched is None else None

    def tolerances(self) -> dict[str, Tolerance]:
        """Default tolerances per component from each asset's real precision and weight compression."""
        return {c: COMPRESSED[c] if self.component_weights(c) else
                (FP16 if self.component_precision(c) == "fp16" else FP32)[c] for c in COMPONENTS}

    # -- binding ------------------------------------------------------------------------------------
    def _choose(self, component: str, inputs: dict[str, np.ndarray]) -> tuple[FunctionMap, int | None, int | None]:
        """The function to call and, for a time axis, (real length, padded length)."""
        maps = self.maps.get(component)
        if not maps:
            raise StepFailedError(f"no {self.label} {component} is loaded (prepare() first, or no asset has it)")
        if component not in _TIME:
            return maps[0], None, None
        contract, axis, unit = _TIME[component]
        n = int(np.asarray(inputs[contract]).shape[axis])
        best: tuple[FunctionMap, int] | None = None
        for fmap in maps:
            declared = fmap.function.input(fmap.inputs[contract]).shape
            fixed = declared[axis] if len(declared) > axis and declared[axis] > 0 else None
            if fixed is None:
                multiple = int(fmap.asset.meta("time_multiple", 1) or 1)
                return fmap, n, -(-n // multiple) * multiple
            if fixed >= n and (best is None or fixed < best[1]):
                best = (fmap, fixed)
        if best is None:
            sizes = sorted(m.function.input(m.inputs[contract]).shape[axis] for m in maps)
            raise BadInputError(maps[0].asset.path, f"the clip is too long for the Core AI {component}: {n} {unit} "
                                                    f"but its entrypoints take at most {sizes[-1]}")
        return best[0], n, best[1]

    def _feed(self, fmap: FunctionMap, component: str, inputs: dict[str, np.ndarray],
              padded: int | None) -> dict[str, np.ndarray]:
        feed: dict[str, np.ndarray] = {}
        for contract, tensor in fmap.inputs.items():
            value = np.asarray(inputs[contract])
            spec = fmap.function.input(tensor)
            if component in _TIME and contract == _TIME[component][0] and padded is not None:
                axis = _TIME[component][1]
                if padded > value.shape[axis]:
                    pad = [(0, 0)] * value.ndim
                    pad[axis] = (0, padded - value.shape[axis])
                    value = np.pad(value, pad)
            static = spec.shape and all(d > 0 for d in spec.shape)
            if static and value.shape != spec.shape and value.size == int(np.prod(spec.shape)):
                value = value.reshape(spec.shape)  # e.g. a [1,1] token as the asset declares it
            feed[tensor] = np.ascontiguousarray(value, dtype=_NUMPY.get(spec.dtype, np.float32))
        return feed

    def _crop(self, fmap: FunctionMap, component: str, real: int | None,
              padded: int | None) -> dict[str, tuple[int, int]]:
        """Output -> (axis, frames NeMo gives for the real length): from the rule the asset carries (replays have
        no model), else from the restored model."""
        if real is None or padded is None or real == padded:
            return {}
        rule = fmap.asset.meta("frames_rule")
        if isinstance(rule, dict):
            from rnnt_tui.core.coreai.convert import frames_by_rule

            frames = frames_by_rule(rule, real)
        else:
            from rnnt_tui.core.coreml.convert import expected_frames

            frames = expected_frames(self.loaded, component, real)
        return {"features" if component == PREPROCESSOR else "encoded": (2, frames)}

    def time_capacity(self, component: str) -> TimeCapacity | None:
        maps = self.maps.get(component)
        if not maps or component not in _TIME:
            return None
        contract, axis, _ = _TIME[component]
        sizes = []
        for fmap in maps:
            declared = fmap.function.input(fmap.inputs[contract]).shape
            if len(declared) <= axis or declared[axis] <= 0:
                return None  # an entrypoint that takes any length
            sizes.append(declared[axis])
        return TimeCapacity(max(sizes), len(set(sizes)) == 1, maps[0].asset.path)

    def bind(self, component: str, inputs: dict[str, np.ndarray]) -> BoundCall:
        fmap, real, padded = self._choose(component, inputs)
        feed = self._feed(fmap, component, inputs, padded)
        crops = self._crop(fmap, component, real, padded)
        notes = []
        if crops and real is not None and padded is not None:
            notes.append(f"{_TIME[component][0]} zero-padded from {real:,} to {padded:,} {_TIME[component][2]} "
                         f"(the shape {fmap.label} declares; outside the timed call, the real length is its length "
                         "input); outputs cropped to the clip")
        self.bind_notes[component] = notes
        call = self.executor.bind(self.functions[(component, fmap.function.name)], feed)

        def convert(raw: dict[str, Any]) -> dict[str, np.ndarray]:
            out: dict[str, np.ndarray] = {}
            for contract, tensor in fmap.outputs.items():
                value = raw[tensor].numpy()
                if contract in crops:
                    axis, size = crops[contract]
                    value = value[tuple(slice(0, size) if a == axis else slice(None) for a in range(value.ndim))]
                out[_RENAMED.get(contract, contract)] = value
            return out

        return FunctionCall(call, convert)

    # -- greedy decoding steps ----------------------------------------------------------------------
    def initial_state(self) -> Any:
        fmap = self.maps[DECODER][0]
        specs = [fmap.function.input(fmap.inputs[k]) for k in ("h", "c")]
        return tuple(np.zeros(s.shape, _NUMPY.get(s.dtype, np.float32)) for s in specs)

    def decoder_step(self, token: int, state: Any) -> tuple[Any, Any]:
        out = self.run(DECODER, {"targets": np.array([[token]]), "h": state[0], "c": state[1]})
        return out["decoder_output"], (out["h"], out["c"])

    def joint_step(self, frame: np.ndarray, decoder_output: Any) -> np.ndarray:
        g = np.asarray(decoder_output).reshape(1, -1, 1)
        logits = self.run(JOINT, {"encoded": np.asarray(frame), "decoder_output": g})["logits"]
        return np.asarray(logits, dtype=np.float32).reshape(-1)

    def close(self) -> None:
        """Release the executables (and the runtime's temporary folders), then a private scratch dir."""
        if self.executor is not None:
            self.executor.close()
        self.executor = None
        self.functions = {}
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
