"""The execution plan of one MIL function, built once per package, and the loop that runs it.

Building: ops in program order (MIL blocks are topologically ordered); `const` and `constexpr_*` ops (weights,
decompressed once: LUT, affine, blockwise) become numpy constants; any op whose inputs are all constant is folded
at plan time through its own kernel; every other op becomes a step bound to its kernel with its constant inputs
prepared (fp16 constants widened, weights transposed). Liveness: each step lists the values whose last use it is,
and running frees them right after it, so peak memory is the live set, not the whole graph.

Running: each step gets its inputs (fp16 values widened to fp32), calls its kernel, and rounds each output to the
dtype the program declares (fp16 outputs round to fp16; int16/uint16 are held as int32, see `kernels_base`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rnnt_tui.core.errors import StepFailedError
from rnnt_tui.core.mil import (  # noqa: F401 - registers the kernels
    kernels_conv,
    kernels_elementwise,
    kernels_nn,
    kernels_rnn,
    kernels_state,
    kernels_tensor,
)
from rnnt_tui.core.mil.kernels_base import KERNELS, Kernel, KernelFn, OpMeta, held_dtype, mil_dtype, rank_of
from rnnt_tui.core.mil.kernels_fallback import NoValueInferenceError, fallback_kernel, has_value_inference
from rnnt_tui.core.mil.trace import OpTrace, TraceOptions, record


class UnsupportedOpError(StepFailedError):
    """The program holds an op the interpreter cannot execute; the message names its type, name and package."""

    def __init__(self, package: Path | str, op_type: str, op_name: str, why: str = "") -> None:
        self.package, self.op_type, self.op_name = Path(package), op_type, op_name
        tail = f" ({why})" if why else ""
        super().__init__(f"{package}: the MIL interpreter cannot execute op {op_type!r} (named {op_name!r}){tail}")


class OpFailedError(StepFailedError):
    """An op's kernel raised on this run's values; the message names the op and the package."""


@dataclass
class Step:
    meta: OpMeta
    fn: KernelFn
    const_args: dict[str, Any]
    dynamic: tuple[tuple[str, str | tuple[str, ...]], ...]
    outputs: tuple[str, ...]
    free: tuple[str, ...] = ()
    scope: str = ""
    unsupported: str | None = None


@dataclass
class Plan:
    package: Path
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    output_dtypes: dict[str, np.dtype[Any] | None]
    constants: dict[str, Any]
    steps: list[Step]
    op_types: dict[str, str] = field(default_factory=dict)  # every op's name -> type (folded ones included)
    float_dtypes: dict[str, set[str]] = field(default_factory=dict)  # op type -> float dtypes of its tensors
    compression: tuple[str, ...] = ()

    @property
    def unsupported(self) -> list[Step]:
        return [s for s in self.steps if s.unsupported is not None]


def _widen(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.dtype == np.float16:
        return value.astype(np.float32)
    if isinstance(value, np.float16):
        return np.float32(value)
    if isinstance(value, list):
        return [_widen(v) for v in value]
    return value


def _round(value: Any, dtype: np.dtype[Any] | None) -> Any:
    arr = np.asarray(value)
    if dtype is not None:
        target = held_dtype(dtype)
        if arr.dtype != target:
            arr = arr.astype(target)
    return arr


def _scope(op: Any) -> str:
    scopes = getattr(op, "scopes", None) or {}
    parts = [f"{getattr(k, 'name', k)}={'/'.join(str(v) for v in vals)}" for k, vals in scopes.items() if vals]
    return "; ".join(parts)


def _const_value(op: Any) -> tuple[Any, ...]:
    """A `const`'s value, or a `constexpr_*` op's decompressed weight (coremltools' own decompression, chained
    constexpr ops included)."""
    values = [v.val for v in op.outputs]
    if any(v is None for v in values):
        inferred = op.materialized_val_inference() if op.op_type.startswith("constexpr_") else op.value_inference()
        values = list(inferred) if isinstance(inferred, (list, tuple)) else [inferred]
    return tuple(values)


def _bind(op: Any, opset: Any) -> tuple[Kernel | None, str | None]:
    if op.op_type in KERNELS:
        return KERNELS[op.op_type], None
    if op.blocks:
        return None, "control flow (nested blocks) is not interpreted"
    if has_value_inference(op):
        return Kernel(fallback_kernel(op.op_type, opset)), None
    return None, "no kernel here and no value inference in coremltools"


def build_plan(function: Any, package: Path) -> Plan:
    """The plan of a MIL `function` (the program's main) loaded from `package`."""
    opset = getattr(function, "opset_version", None)
    constants: dict[str, Any] = {}
    steps: list[Step] = []
    plan = Plan(package=package, inputs=tuple(function.inputs), outputs=tuple(v.name for v in function.outputs),
                output_dtypes={v.name: mil_dtype(v) for v in function.outputs}, constants=constants, steps=steps)
    compression: set[str] = set()
    for op in function.operations:
        plan.op_types[op.name] = op.op_type
        if op.op_type == "const" or op.op_type.startswith("constexpr_"):
            if op.op_type.startswith("constexpr_"):
                compression.add(op.op_type)
            for var, value in zip(op.outputs, _const_value(op), strict=True):
                constants[var.name] = _widen(np.asarray(value) if not isinstance(value, str) else value)
            continue
        meta = OpMeta(type=op.op_type, name=op.name, out_dtypes=tuple(mil_dtype(v) for v in op.outputs),
                      out_ranks=tuple(rank_of(v) for v in op.outputs), opset=str(opset))
        for dt, rank in zip(meta.out_dtypes, meta.out_ranks, strict=True):
            if dt is not None and dt.kind == "f" and (rank is None or rank >= 2):  # not length/index arithmetic
                plan.float_dtypes.setdefault(op.op_type, set()).add(str(dt))
        const_args: dict[str, Any] = {}
        dynamic: list[tuple[str, str | tuple[str, ...]]] = []
        for param, var in op.inputs.items():
            if isinstance(var, (list, tuple)):
                names = tuple(v.name for v in var)
                if all(n in constants for n in names):
                    const_args[param] = [constants[n] for n in names]
                else:
                    dynamic.append((param, names))
            elif var.name in constants:
                const_args[param] = constants[var.name]
            else:
                dynamic.append((param, var.name))
        kern, why = _bind(op, opset)
        outputs = tuple(v.name for v in op.outputs)
        if kern is None:
            steps.append(Step(meta, _unsupported, const_args, tuple(dynamic), outputs, scope=_scope(op),
                              unsupported=why))
            continue
        if kern.prepare is not None:
            const_args = kern.prepare(const_args, meta)
        step = Step(meta, kern.fn, const_args, tuple(dynamic), outputs, scope=_scope(op))
        if not dynamic:
            try:
                values = _call(step, dict(const_args), package)
            except OpFailedError:
                steps.append(step)  # fails on constants: leave it to fail at run time, naming the op
                continue
            for name, value in zip(outputs, values, strict=True):
                constants[name] = _widen(value)
            continue
        steps.append(step)
    plan.compression = tuple(sorted(compression))
    _liveness(plan)
    return plan


def _unsupported(a: dict[str, Any], m: OpMeta) -> Any:
    raise AssertionError("unreachable: unsupported steps raise before running")


def _liveness(plan: Plan) -> None:
    last: dict[str, int] = {}
    for index, step in enumerate(plan.steps):
        for _, ref in step.dynamic:
            for name in (ref if isinstance(ref, tuple) else (ref,)):
                if name not in plan.constants:
                    last[name] = index
        for name in step.outputs:
            last.setdefault(name, index)
    keep = set(plan.outputs)
    frees: dict[int, list[str]] = {}
    for name, index in last.items():
        if name not in keep:
            frees.setdefault(index, []).append(name)
    for index, step in enumerate(plan.steps):
        step.free = tuple(frees.get(index, ()))


def _call(step: Step, args: dict[str, Any], package: Path) -> tuple[Any, ...]:
    meta = step.meta
    try:
        result = step.fn(args, meta)
    except NoValueInferenceError as exc:
        raise UnsupportedOpError(package, meta.type, meta.name, str(exc)) from exc
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # any kernel failure becomes one message naming the op
        raise OpFailedError(f"{package}: op {meta.type!r} (named {meta.name!r}) failed: "
                            f"{type(exc).__name__}: {exc}") from exc
    values = result if isinstance(result, tuple) else (result,)
    if len(values) != len(step.outputs):
        raise OpFailedError(f"{package}: op {meta.type!r} (named {meta.name!r}) gave {len(values)} outputs, "
                            f"the program declares {len(step.outputs)}")
    return tuple(_round(v, dt) for v, dt in zip(values, meta.out_dtypes, strict=True))


def execute(plan: Plan, feeds: dict[str, np.ndarray], trace: OpTrace | None = None,
            options: TraceOptions | None = None, values: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Run `plan` on `feeds` (already checked and cast to the declared dtypes); returns the function's outputs.
    `values`: op outputs (by name) replaced by the given arrays, held as given ("what if this op gave that")."""
    bad = plan.unsupported
    if bad:
        step = bad[0]
        raise UnsupportedOpError(plan.package, step.meta.type, step.meta.name, step.unsupported or "")
    env: dict[str, Any] = dict(plan.constants)
    env.update(feeds)
    replace = values or {}
    for index, step in enumerate(plan.steps):
        args = dict(step.const_args)
        for param, ref in step.dynamic:
            args[param] = [_widen(env[r]) for r in ref] if isinstance(ref, tuple) else _widen(env[ref])
        start = time.perf_counter() if trace is not None else 0.0
        outs = _call(step, args, plan.package)
        del args
        if replace:
            outs = tuple(replace.get(name, value) for name, value in zip(step.outputs, outs, strict=True))
        for name, value in zip(step.outputs, outs, strict=True):
            env[name] = value
        if trace is not None and options is not None:
            record(trace, options, index, step.meta.name, step.meta.type, step.scope, step.outputs, outs,
                   (time.perf_counter() - start) * 1000)
        del outs
        for name in step.free:
            env.pop(name, None)
    return {name: _round(env[name], plan.output_dtypes.get(name)) for name in plan.outputs}
