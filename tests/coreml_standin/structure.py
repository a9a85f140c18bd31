"""Compute devices, model structure and compute plans of the test stand-in bridge, written from coremltools 9.0's
`coremlpython/CoreMLPython.mm`: the device proxies and `toPythonObject(id<MLComputeDeviceProtocol>)`,
`ModelStructureProgramOperation` / `ModelStructureNeuralNetworkLayer`, `ComputePlan` (device usage and estimated
cost per op) and `toPythonObject(MLModelStructure *)` / `toPythonObject(MLComputePlanDeviceUsage *)`. Op placement
follows `Machine.plan_rule`, the stand-in's own simple rule, never Core ML's partitioner. Test-only: see
`tests/coreml_standin/__init__.py`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .features import needs
from .machine import MACHINE


class _MLCPUComputeDeviceProxy:
    """`CPUComputeDevice` bound as `_MLCPUComputeDeviceProxy`."""


class _MLGPUComputeDeviceProxy:
    """`GPUComputeDevice` bound as `_MLGPUComputeDeviceProxy`."""


class _MLNeuralEngineComputeDeviceProxy:
    """`NeuralEngineComputeDevice` bound as `_MLNeuralEngineComputeDeviceProxy`."""

    def get_total_core_count(self) -> int:
        """`NeuralEngineComputeDevice::getTotalCoreCount`."""
        needs((14, 0), "MLComputeDevice")
        return MACHINE.ne_cores


def device(name: str) -> Any:
    """`toPythonObject(computeDevice)`: the coremltools class of the same name, called with the proxy."""
    from coremltools.models import compute_device

    cls, proxy = {"CPU": (compute_device.MLCPUComputeDevice, _MLCPUComputeDeviceProxy),
                  "GPU": (compute_device.MLGPUComputeDevice, _MLGPUComputeDeviceProxy),
                  "NE": (compute_device.MLNeuralEngineComputeDevice, _MLNeuralEngineComputeDeviceProxy)}[name]
    return cls(proxy())


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
        return usage(*MACHINE.plan_rule(self.units, proxy.op_type, proxy.dtype))

    def get_compute_device_usage_for_neuralnetwork_layer(self, layer: Any) -> Any:
        """`ComputePlan::getComputeDeviceUsageForNeuralNetworkLayer` (neural networks run in fp16 on the NE)."""
        return usage(*MACHINE.plan_rule(self.units, layer.__proxy__.layer_type, "float16"))

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


def usage(preferred: str, supported: tuple[str, ...]) -> Any:
    """`toPythonObject(MLComputePlanDeviceUsage *)`."""
    from coremltools.models.compute_plan import MLComputePlanDeviceUsage

    return MLComputePlanDeviceUsage(preferred_compute_device=device(preferred),
                                    supported_compute_devices=[device(d) for d in supported])


def structure(spec: Any) -> Any:
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
