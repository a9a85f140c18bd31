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
partitioner), state, macOS version gates, and failures (a load refused on purpose, to exercise callers' paths).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from . import compiler
from .machine import MACHINE, Machine

STAND_IN = "rnnt-tui test stand-in for Core ML's native bridge (MIL interpreter, not Core ML)"
_SPEC_NEWEST = 10  # mlmodel/src/Globals.hpp: MLMODEL_SPECIFICATION_VERSION_NEWEST = IOS26 = 10 in coremltools 9.0
_SPEC_MACOS = {4: (10, 15), 5: (11, 0), 6: (12, 0), 7: (13, 0), 8: (14, 0), 9: (15, 0), 10: (26, 0)}
_UNIT_DEVICES = {"CPU_ONLY": ("CPU",), "CPU_AND_GPU": ("CPU", "GPU"), "CPU_AND_NE": ("CPU", "NE"),
                 "ALL": ("CPU", "GPU", "NE")}
_DECLARED = {65568: np.float32, 65552: np.float16, 65600: np.float64, 131104: np.int32, 131080: np.int8}


def _ns_error(message: str) -> RuntimeError:
    """`Utils::handleError` (CoreMLPythonUtils.mm): RuntimeError with the NSError's userInfo formatted by %@."""
    return RuntimeError(f'{{\n    NSLocalizedDescription = "{message}";\n}}')


def _needs(version: tuple[int, int], what: str) -> None:
    """The `@available(macOS N, *)` branches of CoreMLPython.mm: std::runtime_error on older systems."""
    if MACHINE.version < version:
        raise RuntimeError(f"{what} is only available on macOS >= {version[0]}.{version[1]}")


# -- feature conversion (CoreMLPythonUtils.mm, CoreMLPythonArray.mm) ------------------------------------------------
def _to_feature(value: Any) -> Any:
    """`Utils::convertValueToObjC`: ints, floats, strings, dicts pass as scalars; lists and tuples become nil
    (`convertValueToSequence` is commented out); a buffer becomes an MLMultiArray only if
    `PybindCompatibleArray dataTypeOf:` accepts its dtype, else "value type not convertible" (after printing it)."""
    if isinstance(value, bool | int | np.integer | float | np.floating | str | bytes | dict):
        return value
    if isinstance(value, list | tuple):
        return None
    if isinstance(value, np.ndarray):
        kind, size = value.dtype.kind, value.dtype.itemsize
        if (kind == "i" and size == 4) or (kind == "f" and size in (4, 8)) or (
                kind == "i" and size == 1 and MACHINE.sdk26):
            return value
    print("Error: value type not convertible:")
    print(value)
    raise RuntimeError("value type not convertible")


def _to_python(value: np.ndarray) -> np.ndarray:
    """`Utils::convertArrayValueToPython`: Float16 arrays are concatenated into Float32 ("py::array doesn't support
    fp16"); Int32, Float32, Float64 (and Int8 with the macOS 26 SDK) as they are."""
    value = np.asarray(value)
    if value.dtype == np.float16:
        return value.astype(np.float32)
    if value.dtype.kind == "b" or (value.dtype.kind in "iu" and value.dtype != np.int8):
        return value.astype(np.int32)
    return np.array(value)


def _check_shape(name: str, shape: tuple[int, ...], feature: Any) -> None:
    """Core ML's own check of an input against the model description (fixed, ranged or enumerated shapes)."""
    arr = feature.type.multiArrayType
    declared = tuple(int(d) for d in arr.shape)
    flex = arr.WhichOneof("ShapeFlexibility")
    shown = " x ".join(map(str, shape))
    if flex == "shapeRange":
        ranges = [(int(r.lowerBound), int(r.upperBound)) for r in arr.shapeRange.sizeRanges]
        ok = len(ranges) == len(shape) and all(lo <= n and (hi < 0 or n <= hi)
                                               for n, (lo, hi) in zip(shape, ranges, strict=True))
    elif flex == "enumeratedShapes":
        ok = shape in [tuple(int(d) for d in s.shape) for s in arr.enumeratedShapes.shapes]
    else:
        ok = not declared or shape == declared
    if not ok:
        raise _ns_error(f"MultiArray shape ({shown}) does not match the shape specified in the model description "
                        f"for input '{name}' (test stand-in)")


# -- devices (CoreMLPython.mm: toPythonObject(id<MLComputeDeviceProtocol>), getAll/AvailableComputeDevices) -------
class _MLCPUComputeDeviceProxy:
    """`CPUComputeDevice` bound as `_MLCPUComputeDeviceProxy`."""


class _MLGPUComputeDeviceProxy:
    """`GPUComputeDevice` bound as `_MLGPUComputeDeviceProxy`."""


class _MLNeuralEngineComputeDeviceProxy:
    """`NeuralEngineComputeDevice` bound as `_MLNeuralEngineComputeDeviceProxy`."""

    def get_total_core_count(self) -> int:
        """`NeuralEngineComputeDevice::getTotalCoreCount`."""
        _needs((14, 0), "MLComputeDevice")
        return MACHINE.ne_cores


def _device(name: str) -> Any:
    """`toPythonObject(computeDevice)`: the coremltools class of the same name, called with the proxy."""
    from coremltools.models import compute_device

    cls, proxy = {"CPU": (compute_device.MLCPUComputeDevice, _MLCPUComputeDeviceProxy),
                  "GPU": (compute_device.MLGPUComputeDevice, _MLGPUComputeDeviceProxy),
                  "NE": (compute_device.MLNeuralEngineComputeDevice, _MLNeuralEngineComputeDeviceProxy)}[name]
    return cls(proxy())


# -- state (CoreMLPython.mm: State::readState / writeState, Model::newState) ----------------------------------------
class _State:
    """`State`, bound module-locally as `_State`: named state buffers of one stateful model."""

    def __init__(self, buffers: dict[str, np.ndarray]) -> None:
        self.buffers = buffers

    def read_state(self, name: str) -> np.ndarray:
        """`State::readState`: the buffer converted like an output (fp16 handed over as float32)."""
        _needs((15, 0), "Reading state")
        if name not in self.buffers:
            raise RuntimeError(f"No state named {name} (test stand-in)")
        return _to_python(self.buffers[name])

    def write_state(self, name: str, value: Any) -> None:
        """`State::writeState`: a multi-array value transferred into the buffer (converted to its type)."""
        _needs((15, 0), "Writing state")
        if _to_feature(value) is None or not isinstance(value, np.ndarray):
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


class _MLModelStructureProgramOperationProxy:
    """`ModelStructureProgramOperation`: which op of which compiled model an MLModelStructureProgramOperation is."""

    def __init__(self, index: int, op_type: str, dtype: str, size: int) -> None:
        self.index, self.op_type, self.dtype, self.size = index, op_type, dtype, size


class _MLModelStructureNeuralNetworkLayerProxy:
    """`ModelStructureNeuralNetworkLayer`."""

    def __init__(self, layer_type: str) -> None:
        self.layer_type = layer_type


class _MLComputePlanProxy:
    """`ComputePlan`: the compute plan of one compiled model on some compute units (placement by `plan_rule`)."""

    def __init__(self, structure: Any = None, units: str = "ALL") -> None:
        self._structure, self.units = structure, units

    @property
    def model_structure(self) -> Any:
        return self._structure

    def get_compute_device_usage_for_mlprogram_operation(self, operation: Any) -> Any:
        """`ComputePlan::getComputeDeviceUsageForMLProgramOperation`."""
        proxy = operation.__proxy__
        return _usage(*MACHINE.plan_rule(self.units, proxy.op_type, proxy.dtype))

    def get_compute_device_usage_for_neuralnetwork_layer(self, layer: Any) -> Any:
        """`ComputePlan::getComputeDeviceUsageForNeuralNetworkLayer` (neural networks run in fp16 on the NE)."""
        return _usage(*MACHINE.plan_rule(self.units, layer.__proxy__.layer_type, "float16"))

    def get_estimated_cost_for_mlprogram_operation(self, operation: Any) -> Any:
        """`ComputePlan::getEstimatedCostForMLProgramOperation`: the op's share of output elements (const: nil)."""
        from coremltools.models.compute_plan import MLComputePlanCost

        proxy = operation.__proxy__
        if proxy.op_type == "const":
            return None
        total = sum(op.__proxy__.size for op in self._ops() if op.__proxy__.op_type != "const") or 1
        return MLComputePlanCost(weight=proxy.size / total)

    def _ops(self) -> list[Any]:
        program = self._structure.program
        return list(program.functions["main"].block.operations) if program else []


def _usage(preferred: str, supported: tuple[str, ...]) -> Any:
    """`toPythonObject(MLComputePlanDeviceUsage *)`."""
    from coremltools.models.compute_plan import MLComputePlanDeviceUsage

    return MLComputePlanDeviceUsage(preferred_compute_device=_device(preferred),
                                    supported_compute_devices=[_device(d) for d in supported])


def _structure(spec: Any) -> Any:
    """`toPythonObject(MLModelStructure *)`: the program's main function (or the network's layers)."""
    from coremltools.models import compute_plan as cp

    kind = spec.WhichOneof("Type")
    if kind == "neuralNetwork":
        layers = [cp.MLModelStructureNeuralNetworkLayer(
            name=layer.name, type=layer.WhichOneof("layer"), input_names=list(layer.input),
            output_names=list(layer.output), __proxy__=_MLModelStructureNeuralNetworkLayerProxy(
                layer.WhichOneof("layer"))) for layer in spec.neuralNetwork.layers]
        return cp.MLModelStructure(neuralnetwork=cp.MLModelStructureNeuralNetwork(layers=layers), program=None,
                                   pipeline=None)
    if kind != "mlProgram":
        return cp.MLModelStructure(neuralnetwork=None, program=None, pipeline=None)
    from rnnt_tui.core.coreml.spec import _MIL_DTYPES

    functions = {}
    for fname, function in spec.mlProgram.functions.items():
        block = function.block_specializations[function.opset]
        ops = []
        for index, op in enumerate(block.operations):
            outputs = [cp.MLModelStructureProgramNamedValueType(name=o.name,
                                                                type=cp.MLModelStructureProgramValueType())
                       for o in op.outputs]
            tensor = op.outputs[0].type.tensorType if op.outputs else None
            dtype = _MIL_DTYPES.get(int(tensor.dataType), "unknown") if tensor is not None else "unknown"
            size = int(np.prod([d.constant.size if d.WhichOneof("dimension") == "constant" else 1
                                for d in tensor.dimensions])) if tensor is not None else 1
            inputs = {k: cp.MLModelStructureProgramArgument(bindings=[
                cp.MLModelStructureProgramBinding(name=b.name or None, value=None) for b in arg.arguments])
                for k, arg in op.inputs.items()}
            ops.append(cp.MLModelStructureProgramOperation(
                inputs=inputs, operator_name=op.type, outputs=outputs, blocks=[],
                __proxy__=_MLModelStructureProgramOperationProxy(index, op.type, dtype, size)))
        functions[fname] = cp.MLModelStructureProgramFunction(
            inputs=[], block=cp.MLModelStructureProgramBlock(inputs=[], operations=ops,
                                                             output_names=list(block.outputs)))
    return cp.MLModelStructure(neuralnetwork=None, program=cp.MLModelStructureProgram(functions=functions),
                               pipeline=None)


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
            _needs((15, 0), "The 'functionName' property can only be set on macOS >= 15.0; it")
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
            raise _ns_error(f"The model specification version {self.spec.specificationVersion} is not supported "
                            f"on this macOS (test stand-in)")
        refusal = MACHINE.refuse(self.spec, compute_units)
        if refusal:
            raise _ns_error(refusal)
        if self.spec.WhichOneof("Type") == "mlProgram":
            from rnnt_tui.core.mil.program import MilProgram

            try:
                self._program = MilProgram.load(source)
            except Exception as exc:  # the interpreter cannot read it: Core ML's load error in the stand-in
                raise _ns_error(f"test stand-in: the MIL interpreter cannot load the program ({exc})") from exc
        self._load_ns = time.perf_counter_ns() - start
        MACHINE.loads.append((str(path), compute_units))

    def __del__(self) -> None:
        """`Model::~Model`: removes the temporary compile folder of a model compiled at load."""
        if getattr(self, "_delete_compiled", False) and self._compiled is not None:
            compiler.remove(self._compiled)

    def predict(self, data: dict[str, Any], state: _State | None = None) -> dict[str, Any]:
        """`Model::predict`: `Utils::dictToFeatures`, Core ML's checks against the description, the prediction
        (with state on macOS 15+), `Utils::featuresToDict`."""
        features = {k: _to_feature(v) for k, v in data.items()}
        if self._program is None:
            raise _ns_error("the test stand-in predicts ML programs only (this model is a "
                            f"{self.spec.WhichOneof('Type')})")
        if state is not None:
            _needs((15, 0), "Stateful predictions using MLState are only supported on macOS >= 15.0; it")
        described = {f.name: f for f in self.spec.description.input}
        feeds: dict[str, np.ndarray] = {}
        for name, feature in described.items():
            if name not in features or features[name] is None:
                raise _ns_error(f"Feature {name} is required but not specified.")
            value = np.asarray(features[name])
            _check_shape(name, tuple(value.shape), feature)
            dtype = _DECLARED.get(int(feature.type.multiArrayType.dataType))
            feeds[name] = value.astype(dtype) if dtype is not None else value
        if state is not None:
            feeds.update(state.buffers)
        start = time.perf_counter_ns()
        try:
            outputs = MACHINE.run(self._program, feeds, self.units)
        except Exception as exc:  # an op the interpreter cannot run: a prediction error in the stand-in
            raise _ns_error(f"test stand-in prediction failed: {exc}") from exc
        self._last_predict_ns = time.perf_counter_ns() - start
        if state is not None:
            state.buffers.update({k: v for k, v in self._program.last_states.items() if k in state.buffers})
        return {o.name: _to_python(outputs[o.name]) for o in self.spec.description.output if o.name in outputs}

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
        _needs((15, 0), "Stateful model")
        MACHINE.new_states += 1
        buffers = {}
        for feature in self.spec.description.state:
            arr = feature.type.stateType.arrayType
            buffers[feature.name] = np.zeros(tuple(int(d) for d in arr.shape),
                                             _DECLARED.get(int(arr.dataType), np.float32))
        return _State(buffers)

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
        _needs((14, 0), "MLComputeDevice")
        return [_device(d) for d in MACHINE.all_devices]

    @staticmethod
    def get_available_compute_devices() -> list[Any]:
        """`Model::getAvailableComputeDevices`: `MLModel.availableComputeDevices` (what predict can use)."""
        _needs((14, 0), "MLComputeDevice")
        return [_device(d) for d in MACHINE.available_devices]

    @staticmethod
    def get_model_structure(compiled_model_path: str) -> Any:
        """`Model::getModelStructure` (macOS 14.4)."""
        _needs((14, 4), "MLModelStructure")
        _, spec = compiler.open_compiled(Path(compiled_model_path))
        return _structure(spec)

    @staticmethod
    def get_compute_plan(compiled_model_path: str, compute_units: str) -> Any:
        """`Model::getComputePlan` (macOS 14.4): `MLComputePlan(proxy)` of coremltools' compute_plan module."""
        _needs((14, 4), "MLComputePlan")
        from coremltools.models.compute_plan import MLComputePlan

        _, spec = compiler.open_compiled(Path(compiled_model_path))
        return MLComputePlan(_MLComputePlanProxy(_structure(spec), compute_units))

    @staticmethod
    def create_model_asset_from_path(path: str) -> Any:
        _needs((15, 0), "Creating an MLModelAsset from a file path")
        from coremltools.models.model import MLModelAsset

        return MLModelAsset(_MLModelAssetProxy(path))


__all__ = ["STAND_IN", "Machine", "_MLCPUComputeDeviceProxy", "_MLComputePlanProxy", "_MLGPUComputeDeviceProxy",
           "_MLModelAssetProxy", "_MLModelProxy", "_MLModelStructureNeuralNetworkLayerProxy",
           "_MLModelStructureProgramOperationProxy", "_MLNeuralEngineComputeDeviceProxy", "_State"]
