"""The slow, general kernel: evaluate an op through coremltools' own `value_inference`.

For op types with no native kernel here. The op is rebuilt with the MIL Builder on constant numpy inputs inside
a throw-away Function of the program's opset, which makes coremltools fold it; that runs type inference on every
call, so it is only for rare ops. When coremltools cannot fold it either (no value inference, or a size cap),
the op is unsupported: an `UnsupportedOpError` naming it, never a guessed number.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnt_tui.core.mil.kernels_base import Args, KernelFn, OpMeta


class NoValueInferenceError(Exception):
    """coremltools could not evaluate the op on these inputs."""


def _builder_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_builder_value(v) for v in value]
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value[()]
    return value


def has_value_inference(op: Any) -> bool:
    """Whether the op's class (any opset's, for an op read from the protobuf) defines a value inference of its own
    (the base class only raises)."""
    from coremltools.converters.mil.mil.operation import Operation  # coremltools: only once a program is loaded
    from coremltools.converters.mil.mil.ops.registry import SSAOpRegistry

    classes = [type(op)] if isinstance(op, Operation) else list(SSAOpRegistry.core_ops.get(op.op_type, {}).values())
    return any(cls.value_inference is not Operation.value_inference for cls in classes)


def fallback_kernel(op_type: str, opset: Any) -> KernelFn:
    """A kernel that folds `op_type` with coremltools' value inference under `opset`."""
    def run(a: Args, m: OpMeta) -> Any:
        from coremltools.converters.mil.mil import Builder as mb  # coremltools: only once a program is loaded
        from coremltools.converters.mil.mil import Function

        kwargs = {k: _builder_value(v) for k, v in a.items() if v is not None}
        try:
            with Function({}, opset_version=opset):
                out = getattr(mb, op_type)(**kwargs)
        except Exception as exc:  # coremltools raises many types for "cannot fold this"
            raise NoValueInferenceError(f"{type(exc).__name__}: {exc}") from exc
        outs = out if isinstance(out, (list, tuple)) else [out]
        values = [v.val for v in outs]
        if any(v is None for v in values):
            raise NoValueInferenceError("coremltools' value inference gave no value (size cap or symbolic input)")
        arrays = tuple(np.asarray(v) for v in values)
        return arrays if isinstance(out, (list, tuple)) else arrays[0]

    return run
