"""A TEST STAND-IN for `coremltools.libcoremlpython`, the native module coremltools 9.0 builds on macOS only.

Written from coremltools 9.0's `coremlpython/CoreMLPython.mm` (the pybind11 module `libcoremlpython`: the classes
`_MLModelProxy`, `_State`, `_MLCPUComputeDeviceProxy`, `_MLGPUComputeDeviceProxy`,
`_MLNeuralEngineComputeDeviceProxy`, `_MLComputePlanProxy`, `_MLModelStructureProgramOperationProxy`,
`_MLModelStructureNeuralNetworkLayerProxy`, `_MLModelAssetProxy`), `coremlpython/CoreMLPythonUtils.mm` (feature
conversion in and out) and `coremlpython/CoreMLPythonArray.mm` (which numpy arrays become an MLMultiArray). Each
method names the function it plays. Predictions are computed by rnnt-tui's MIL interpreter (`rnnt_tui.core.mil`):
nothing here is Core ML, no number it gives may be shown as Core ML, and the package never imports it
(`tests/test_coreml_standin.py` checks that).

What the stand-in models beyond the MIL interpreter's arithmetic is the bridge's contract: compute-unit names,
which arrays are accepted (int32, float32, float64; int8 only in wheels built with the macOS 26 SDK), fp16 outputs
handed over as float32, shape checks against the model description, compiled models and their temporary compile
folders, compute devices (all vs available), compute plans (op placement by a simple documented rule, NOT Core ML's
partitioner), state, multifunction programs (`functionName`: the named function, its default when unnamed; a state
made by one function accepted by a sibling declaring the same states, as coremltools' prefill / decode guide uses
it), macOS version gates, and failures (a load refused on purpose, to exercise callers' paths).

This module is the model (`Model`, `State`, `ModelAsset` of CoreMLPython.mm) and the module surface coremltools
imports; feature conversion is `features` (CoreMLPythonUtils.mm, CoreMLPythonArray.mm), devices, model structure and
compute plans are `structure` (CoreMLPython.mm), the simulated Mac is `machine`, compilation is `compiler`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from . import compiler
from .features import DECLARED, check_shape, needs, ns_error, to_feature, to_python
from .machine import MACHINE, Machine
from .structure import (
    _MLComputePlanProxy,
    _MLCPUComputeDeviceProxy,
    _MLGPUComputeDeviceProxy,
    _MLModelStructureNeuralNetworkLayerProxy,
    _MLModelStructureProgramOperationProxy,
    _MLNeuralEngineComputeDeviceProxy,
    device,
    structure,
)

STAND_IN = "rnnt-tui test stand-in for Core ML's native bridge (MIL interpreter, not Core ML)"
_SPEC_NEWEST = 10  # mlmodel/src/Globals.hpp: MLMODEL_SPECIFICATION_VERSION_NEWEST = IOS26 = 10 in coremltools 9.0
_SPEC_MACOS = {4: (10, 15), 5: (11, 0), 6: (12, 0), 7: (13, 0), 8: (14, 0), 9: (15, 0), 10: (26, 0)}
_UNIT_DEVICES = {"CPU_ONLY": ("CPU",), "CPU_AND_GPU": ("CPU", "GPU"), "CPU_AND_NE": ("CPU", "NE"),
                 "ALL": ("CPU", "GPU", "NE")}


#: content digest of a compiled model's source -> the MIL interpreter's program for it (kept for the test run)
_PROGRAMS: dict[str, Any] = {}


def _program(source: Path, function: str) -> Any:
    """The interpreter's program for the package `source`, loaded once per content: the stand-in compiles and loads
    the same packages many times (each compute unit, cold and cached loads of a sweep) into fresh temporary folders,
    and a program's execution plan depends only on its bytes. (Not part of the bridge: its time is not Core ML's.)"""
    import hashlib

    from rnnt_tui.core.mil.program import MilProgram

    digest = hashlib.blake2b(digest_size=16)
    for file in sorted(f for f in (source.rglob("*") if source.is_dir() else [source]) if f.is_file()):
        digest.update(str(file.relative_to(source) if source.is_dir() else file.name).encode())
        digest.update(file.read_bytes())
    key = f"{digest.hexdigest()}:{function}"
    if key not in _PROGRAMS:
        _PROGRAMS[key] = MilProgram.load(source, function)
    return _PROGRAMS[key]


def _function(spec: Any, name: str) -> tuple[str, Any]:
    """`MLModelConfiguration.functionName`: (the function loaded, its description): a multifunction program's named
    function (its default when unnamed), else main; a name the model does not have fails the load."""
    functions = {f.name: f for f in spec.description.functions}
    if not functions:
        if name not in ("", "main"):
            raise ns_error(f"The model does not have a function named {name} (test stand-in)")
        return "main", spec.description
    chosen = name or spec.description.defaultFunctionName
    if chosen not in functions:
        raise ns_error(f"The model does not have a function named {chosen} (test stand-in)")
    return chosen, functions[chosen]


def _state_buffers(description: Any, make: Any) -> dict[str, Any]:
    """state name -> `make(shape, dtype)` for each state `description` declares."""
    out = {}
    for feature in description.state:
        arr = feature.type.stateType.arrayType
        out[feature.name] = make(tuple(int(d) for d in arr.shape), DECLARED.get(int(arr.dataType), np.float32))
    return out


# -- state (CoreMLPython.mm: State::readState / writeState, Model::newState) ----------------------------------------
class _State:
    """`State`, bound module-locally as `_State`: named state buffers of one stateful model."""

    def __init__(self, buffers: dict[str, np.ndarray]) -> None:
        self.buffers = buffers

    def read_state(self, name: str) -> np.ndarray:
        """`State::readState`: the buffer converted like an output (fp16 handed over as float32)."""
        needs((15, 0), "Reading state")
        if name not in self.buffers:
            raise RuntimeError(f"No state named {name} (test stand-in)")
        return to_python(self.buffers[name])

    def write_state(self, name: str, value: Any) -> None:
        """`State::writeState`: a multi-array value transferred into the buffer (converted to its type)."""
        needs((15, 0), "Writing state")
        if to_feature(value) is None or not isinstance(value, np.ndarray):
            raise RuntimeError("Failed to write state, only multi-array value is supported")
        if name not in self.buffers:
            raise RuntimeError(f"No state named {name} (test stand-in)")
        if tuple(value.shape) != self.buffers[name].shape:
            raise RuntimeError(f"State {name} has shape {self.buffers[name].shape} (test stand-in)")
        self.buffers[name] = value.astype(self.buffers[name].dtype)


class _MLModelAssetProxy:
    """`ModelAsset`, bound as `_MLModelAssetProxy` (from a path only, macOS 15)."""

    def __init__(self, path: str) -> None:
        self.path = path


# -- the model (CoreMLPython.mm: Model) ------------------------------------------------------------------------------
class _MLModelProxy:
    """`Model`, bound as `_MLModelProxy`: a compiled model loaded on compute units, predicting with the MIL
    interpreter."""

    STAND_IN = STAND_IN

    def __init__(self, url: str, compute_units: str, function_name: str = "", optimization_hints: Any = None,
                 asset: Any = None) -> None:
        """`Model::Model`: compiles a package into a temporary folder (deleted with the model), or takes a
        `.mlmodelc` as it is (`Utils::isCompiledModelPath`); `setComputeUnit` asserts the unit name; the load fails
        with the NSError's userInfo."""
        self._compiled: Path | None = None
        self._delete_compiled = False
        self._program: Any = None
        self._last_predict_ns: int | None = None
        if asset is not None:
            url = asset.path
        if compute_units not in _UNIT_DEVICES:
            raise AssertionError(f'computeUnits == "ALL" (got {compute_units!r})')  # Model::setComputeUnit's assert
        if function_name:
            needs((15, 0), "The 'functionName' property can only be set on macOS >= 15.0; it")
        start = time.perf_counter_ns()
        path = Path(url)
        if path.suffix == ".mlmodelc" or url.rstrip("/").endswith(".mlmodelc"):
            self._compiled = path
        else:
            try:
                self._compiled = compiler.compile_to_temp(path)
            except compiler.CompileError as exc:
                raise RuntimeError(f'Error compiling model: "{exc}".') from exc
            self._delete_compiled = True
        self.units = compute_units
        source, self.spec = compiler.open_compiled(self._compiled)
        needed = _SPEC_MACOS.get(int(self.spec.specificationVersion), (99, 0))
        if MACHINE.version < needed:
            raise ns_error(f"The model specification version {self.spec.specificationVersion} is not supported "
                            f"on this macOS (test stand-in)")
        refusal = MACHINE.refuse(self.spec, compute_units)
        if refusal:
            raise ns_error(refusal)
        self.function, self.description = _function(self.spec, function_name)
        if self.spec.WhichOneof("Type") == "mlProgram":
            try:
                self._program = _program(source, self.function)
            except Exception as exc:  # the interpreter cannot read it: Core ML's load error in the stand-in
                raise ns_error(f"test stand-in: the MIL interpreter cannot load the program ({exc})") from exc
        self._load_ns = time.perf_counter_ns() - start
        MACHINE.loads.append((str(path), compute_units))

    def __del__(self) -> None:
        """`Model::~Model`: removes the temporary compile folder of a model compiled at load."""
        if getattr(self, "_delete_compiled", False) and self._compiled is not None:
            compiler.remove(self._compiled)

    def predict(self, data: dict[str, Any], state: _State | None = None) -> dict[str, Any]:
        """`Model::predict`: `Utils::dictToFeatures`, Core ML's checks against the description, the prediction
        (with state on macOS 15+), `Utils::featuresToDict`."""
        features = {k: to_feature(v) for k, v in data.items()}
        if self._program is None:
            raise ns_error("the test stand-in predicts ML programs only (this model is a "
                            f"{self.spec.WhichOneof('Type')})")
        if state is not None:
            needs((15, 0), "Stateful predictions using MLState are only supported on macOS >= 15.0; it")
        described = {f.name: f for f in self.description.input}
        feeds: dict[str, np.ndarray] = {}
        for name, feature in described.items():
            if name not in features or features[name] is None:
                raise ns_error(f"Feature {name} is required but not specified.")
            value = np.asarray(features[name])
            check_shape(name, tuple(value.shape), feature)
            dtype = DECLARED.get(int(feature.type.multiArrayType.dataType))
            feeds[name] = value.astype(dtype) if dtype is not None else value
        if state is not None:
            self._check_state(state)
            feeds.update(state.buffers)
        start = time.perf_counter_ns()
        try:
            outputs = MACHINE.run(self._program, feeds, self.units)
        except Exception as exc:  # an op the interpreter cannot run: a prediction error in the stand-in
            raise ns_error(f"test stand-in prediction failed: {exc}") from exc
        self._last_predict_ns = time.perf_counter_ns() - start
        if state is not None:
            state.buffers.update({k: v for k, v in self._program.last_states.items() if k in state.buffers})
        return {o.name: to_python(outputs[o.name]) for o in self.description.output if o.name in outputs}

    def _check_state(self, state: _State) -> None:
        """A state made by this model, or by another function of the same multifunction model declaring the same
        states, is accepted; any other is refused (its buffers do not match this function's states)."""
        held = {name: (buffer.shape, buffer.dtype) for name, buffer in state.buffers.items()}
        if held != _state_buffers(self.description, lambda shape, dtype: (shape, np.dtype(dtype))):
            raise ns_error(f"the state does not match the states of function {self.function} (test stand-in)")

    def batchPredict(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`Model::batchPredict`."""
        return [self.predict(d) for d in batch]

    def get_compiled_model_path(self) -> str | None:
        """`Model::getCompiledModelPath`."""
        return str(self._compiled) if self._compiled is not None else None

    def get_load_duration_in_nano_seconds(self) -> int | None:
        return self._load_ns

    def get_last_predict_duration_in_nano_seconds(self) -> int | None:
        return self._last_predict_ns

    def newState(self) -> _State:
        """`Model::newState`: zeroed buffers for each state the description declares (macOS 15+)."""
        needs((15, 0), "Stateful model")
        MACHINE.new_states += 1
        return _State(_state_buffers(self.description, np.zeros))

    @staticmethod
    def maximum_supported_specification_version() -> int:
        """`Model::maximumSupportedSpecificationVersion`: MLMODEL_SPECIFICATION_VERSION_NEWEST."""
        return _SPEC_NEWEST

    @staticmethod
    def auto_set_specification_version(model_bytes: bytes) -> bytes:
        return model_bytes

    @staticmethod
    def compileModel(url: str) -> str:
        """`Model::compileModel`: `[MLModel compileModelAtURL:]` into a temporary folder; returns its path."""
        try:
            return str(compiler.compile_to_temp(Path(url)))
        except compiler.CompileError as exc:
            raise RuntimeError(str(exc)) from exc

    @staticmethod
    def get_all_compute_devices() -> list[Any]:
        """`Model::getAllComputeDevices`: `MLAllComputeDevices()` (includes devices Core ML cannot use)."""
        needs((14, 0), "MLComputeDevice")
        return [device(d) for d in MACHINE.all_devices]

    @staticmethod
    def get_available_compute_devices() -> list[Any]:
        """`Model::getAvailableComputeDevices`: `MLModel.availableComputeDevices` (what predict can use)."""
        needs((14, 0), "MLComputeDevice")
        return [device(d) for d in MACHINE.available_devices]

    @staticmethod
    def get_model_structure(compiled_model_path: str) -> Any:
        """`Model::getModelStructure` (macOS 14.4)."""
        needs((14, 4), "MLModelStructure")
        _, spec = compiler.open_compiled(Path(compiled_model_path))
        return structure(spec)

    @staticmethod
    def get_compute_plan(compiled_model_path: str, compute_units: str) -> Any:
        """`Model::getComputePlan` (macOS 14.4): `MLComputePlan(proxy)` of coremltools' compute_plan module."""
        needs((14, 4), "MLComputePlan")
        from coremltools.models.compute_plan import MLComputePlan

        _, spec = compiler.open_compiled(Path(compiled_model_path))
        return MLComputePlan(_MLComputePlanProxy(structure(spec), compute_units))

    @staticmethod
    def create_model_asset_from_path(path: str) -> Any:
        needs((15, 0), "Creating an MLModelAsset from a file path")
        from coremltools.models.model import MLModelAsset

        return MLModelAsset(_MLModelAssetProxy(path))


__all__ = ["STAND_IN", "Machine", "_MLCPUComputeDeviceProxy", "_MLComputePlanProxy", "_MLGPUComputeDeviceProxy",
           "_MLModelAssetProxy", "_MLModelProxy", "_MLModelStructureNeuralNetworkLayerProxy",
           "_MLModelStructureProgramOperationProxy", "_MLNeuralEngineComputeDeviceProxy", "_State"]
