"""A fast reader of an ML program's function (`main`, or one of a multifunction package's) straight from the
protobuf, for the execution plan.

coremltools' milproto loader rebuilds a full MIL Program: every op is re-created through the Builder with type
and value inference (sympy solves symbolic reshapes), which takes a minute for a Parakeet-size encoder. The plan
needs far less: each op's type, name, input bindings and declared output dtypes and ranks, and the constants'
values (read with the milproto loader's own value reader, so weights are decoded exactly as coremltools does).
Programs this reader does not cover (compressed `constexpr_*` weights, nested blocks, list values, states)
return None and go through the full loader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rnnt_tui.core.mil.kernels_base import held_dtype


@dataclass
class ProtoVar:
    """A value's name with the dtype, rank and shape the program declares; `val` for constants."""

    name: str
    np_dtype: np.dtype[Any] | None
    rank: int | None
    shape: tuple[Any, ...] = ()
    val: Any = None


@dataclass
class ProtoOp:
    """One operation as the plan needs it (duck-typed like a coremltools Operation)."""

    op_type: str
    name: str
    inputs: dict[str, ProtoVar | tuple[ProtoVar, ...]]
    outputs: list[ProtoVar]
    blocks: tuple[Any, ...] = ()
    scopes: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProtoFunction:
    """The main function: inputs by name, ops in order, output vars, opset."""

    inputs: dict[str, ProtoVar]
    operations: list[ProtoOp]
    outputs: list[ProtoVar]
    opset_version: Any


class _Unsupported(Exception):
    """Something this reader leaves to coremltools' full loader."""


def _var(named: Any) -> ProtoVar:
    from coremltools.converters.mil.mil import types  # coremltools: only once a program is loaded

    kind = named.type.WhichOneof("type")
    if kind != "tensorType":
        raise _Unsupported(kind)
    tensor = named.type.tensorType
    builtin = types.PROTO_TO_BUILTIN_TYPE[tensor.dataType]
    np_dtype = None if types.is_str(builtin) else np.dtype(types.nptype_from_builtin(builtin))
    shape = tuple(int(d.constant.size) if d.WhichOneof("dimension") == "constant" else None
                  for d in tensor.dimensions)
    return ProtoVar(named.name, np_dtype, int(tensor.rank), shape)


def read_function(spec: Any, weights_dir: str, name: str = "main") -> ProtoFunction | None:
    """The function `name` of `spec` (an ML program), or None when the full loader must read it."""
    try:
        return _read(spec, weights_dir, name)
    except _Unsupported:
        return None


def _read(spec: Any, weights_dir: str, name: str) -> ProtoFunction:
    from coremltools.converters.mil._deployment_compatibility import AvailableTarget
    from coremltools.converters.mil.frontend.milproto.load import TranscriptionContext, _load_value

    function = spec.mlProgram.functions[name]
    block = function.block_specializations[function.opset]
    context = TranscriptionContext(weights_dir)
    names: dict[str, ProtoVar] = {}
    inputs = {}
    for named in function.inputs:
        var = _var(named)
        inputs[var.name] = names[var.name] = var
    ops: list[ProtoOp] = []
    for index, op in enumerate(block.operations):
        if op.blocks or op.type.startswith("constexpr_"):
            raise _Unsupported(op.type)
        outputs = [_var(o) for o in op.outputs]
        attrs = dict(op.attributes)
        name = str(_load_value(context, attrs.pop("name"))) if "name" in attrs else f"{op.type}_{index}"
        if op.type == "const":
            value = _load_value(context, attrs["val"])
            outputs[0].val = value if isinstance(value, str) else np.asarray(value)
        elif attrs:
            raise _Unsupported(f"attributes on {op.type}")
        bound: dict[str, ProtoVar | tuple[ProtoVar, ...]] = {}
        for param, argument in op.inputs.items():
            args = []
            for binding in argument.arguments:
                if binding.WhichOneof("binding") != "name":
                    raise _Unsupported("an inline input value")
                args.append(names[binding.name])
            bound[param] = args[0] if len(args) == 1 and not _variadic(op.type, param) else tuple(args)
        for var in outputs:
            names[var.name] = var
        ops.append(ProtoOp(op.type, name, bound, outputs))
    outputs = [names[n] for n in block.outputs]
    return ProtoFunction(inputs, ops, outputs, AvailableTarget(spec.specificationVersion))


def _variadic(op_type: str, param: str) -> bool:
    """Inputs that are lists in MIL even with one element (concat's values, stack's values, einsum's values)."""
    return param in ("values", "ref_tensors")


def input_dtype(var: ProtoVar) -> np.dtype[Any]:
    return held_dtype(var.np_dtype or np.dtype(np.float32))
