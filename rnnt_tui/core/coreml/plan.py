"""Where Core ML runs each op of a package, and which op first drifts between two compute units (macOS only).

`compute_plan` reads Core ML's own plan for a compiled model (`MLComputePlan.load_from_path`, macOS 14.4+): per op
the preferred and supported devices and an estimated cost, summarised as the share of ops and of estimated cost on
CPU / GPU / Neural Engine, and the ops that run on the CPU although the chosen units include an accelerator,
grouped by op type. That is the first thing to look at when a compute unit is slow or numerically different: an
LSTM or a range-flexible input often keeps a whole component off the Neural Engine.

`first_drifting_op` uses coremltools' experimental `MLModelComparator.find_failing_ops` (coremltools 8.3+) to run
one package on two compute units and point at the earliest op (in program order) whose output leaves the tolerance
while its inputs did not.

Elsewhere both raise RuntimeUnavailableError with one sentence saying why; `core_ml_problem` gives that sentence.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rnnt_tui.core.coreml.spec import load_coremltools
from rnnt_tui.core.errors import BadInputError, RuntimeUnavailableError
from rnnt_tui.core.quiet import quiet

APPLE_ONLY = "(coremltools can convert here, but Core ML itself only runs on Apple platforms)"
NOT_MACOS = f"Core ML predictions need macOS {APPLE_ONLY}"
DEVICES = ("CPU", "GPU", "NE")
_SKIPPED_OPS = frozenset({"const"})


def macos_version() -> tuple[int, int] | None:
    """(major, minor) of macOS, or None on any other OS."""
    import platform
    import sys

    if sys.platform != "darwin":
        return None
    parts = (platform.mac_ver()[0] or "0.0").split(".")
    return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0


@functools.cache
def core_ml_problem(minimum: tuple[int, int] = (13, 0), what: str = "Core ML predictions") -> str | None:
    """Why `what` cannot run here, in one sentence, or None when it can (answered once per process)."""
    version = macos_version()
    if version is None:
        return f"{what} need macOS {APPLE_ONLY}"
    if version < minimum:
        return f"{what} need macOS {minimum[0]}.{minimum[1]} or later; this Mac runs {version[0]}.{version[1]}"
    try:
        ct, _ = load_coremltools()
        from coremltools.models.model import _MLModelProxy
    except ImportError as exc:
        return f"{what} need coremltools, which cannot be imported here ({exc})"
    if _MLModelProxy is None:
        return f"{what} need coremltools' Core ML bridge (libcoremlpython), missing from coremltools {ct.__version__}"
    return None


def require(minimum: tuple[int, int] = (13, 0), what: str = "Core ML predictions") -> Any:
    """coremltools, or RuntimeUnavailableError saying why `what` cannot run here."""
    problem = core_ml_problem(minimum, what)
    if problem:
        raise RuntimeUnavailableError(problem)
    return load_coremltools()[0]


def compute_unit(ct: Any, name: str) -> Any:
    """`ct.ComputeUnit[name]`, or a ValueError listing the choices."""
    try:
        return ct.ComputeUnit[name]
    except KeyError:
        choices = ", ".join(ct.ComputeUnit.__members__)
        raise ValueError(f"unknown compute units {name!r}; choose one of {choices}") from None


@dataclass(frozen=True)
class OpPlacement:
    """One op of the plan: its type, first output, preferred and supported devices, estimated cost share."""

    op_type: str
    output: str
    preferred: str
    supported: tuple[str, ...]
    cost: float | None


@dataclass(frozen=True)
class ComputePlan:
    """A component's plan on some compute units: shares per device, and the ops left on the CPU."""

    component: str
    compute_units: str
    ops: int
    op_share: dict[str, float]
    cost_share: dict[str, float]
    cpu_fallbacks: dict[str, int]
    cpu_only: dict[str, int]
    placements: tuple[OpPlacement, ...] = field(repr=False, default=())

    def to_json(self) -> dict[str, Any]:
        return {"component": self.component, "compute_units": self.compute_units, "ops": self.ops,
                "op_share": self.op_share, "cost_share": self.cost_share, "cpu_fallbacks": self.cpu_fallbacks,
                "cpu_only": self.cpu_only}


def _device(device: Any) -> str:
    from coremltools.models.compute_device import (
        MLCPUComputeDevice,
        MLGPUComputeDevice,
        MLNeuralEngineComputeDevice,
    )

    for cls, name in ((MLCPUComputeDevice, "CPU"), (MLGPUComputeDevice, "GPU"), (MLNeuralEngineComputeDevice, "NE")):
        if isinstance(device, cls):
            return name
    return "unknown"


def _operations(block: Any) -> Iterator[Any]:
    for op in block.operations:
        yield op
        for inner in op.blocks or ():
            yield from _operations(inner)


def summarize_placements(component: str, units: str, placements: list[OpPlacement]) -> ComputePlan:
    """Shares per device and CPU fallbacks from per-op placements (pure; tested on any OS)."""
    counted = [p for p in placements if p.op_type not in _SKIPPED_OPS]
    total = len(counted) or 1
    by_device = Counter(p.preferred for p in counted)
    costs: dict[str, float] = {}
    for p in counted:
        costs[p.preferred] = costs.get(p.preferred, 0.0) + (p.cost or 0.0)
    cost_total = sum(costs.values()) or 1.0
    accelerated = units != "CPU_ONLY"
    fallbacks = Counter(p.op_type for p in counted if accelerated and p.preferred == "CPU")
    cpu_only = Counter(p.op_type for p in counted if p.supported and set(p.supported) == {"CPU"})
    return ComputePlan(component=component, compute_units=units, ops=len(counted),
                       op_share={d: by_device.get(d, 0) / total for d in DEVICES},
                       cost_share={d: costs.get(d, 0.0) / cost_total for d in DEVICES},
                       cpu_fallbacks=dict(fallbacks.most_common()), cpu_only=dict(cpu_only.most_common()),
                       placements=tuple(placements))


def compute_plan(compiled_path: Path | str, component: str = "", compute_units: str = "ALL") -> ComputePlan:
    """Core ML's plan for a compiled model (`.mlmodelc`) on `compute_units` (macOS 14.4+)."""
    ct = require((14, 4), "Core ML compute plans")
    from coremltools.models.compute_plan import MLComputePlan

    path = Path(compiled_path)
    if path.suffix != ".mlmodelc":
        raise BadInputError(path, "a compute plan needs the compiled model (.mlmodelc)")
    with quiet():
        plan = MLComputePlan.load_from_path(path=str(path), compute_units=compute_unit(ct, compute_units))
    program = plan.model_structure.program
    if program is None or "main" not in program.functions:
        raise BadInputError(path, "not an ML program with a main function; no per-op plan")
    placements = []
    for op in _operations(program.functions["main"].block):
        usage = plan.get_compute_device_usage_for_mlprogram_operation(op)
        cost = plan.get_estimated_cost_for_mlprogram_operation(op)
        placements.append(OpPlacement(
            op_type=str(op.operator_name), output=str(op.outputs[0].name) if op.outputs else "",
            preferred=_device(usage.preferred_compute_device) if usage else "unknown",
            supported=tuple(_device(d) for d in usage.supported_compute_devices) if usage else (),
            cost=float(cost.weight) if cost is not None else None))
    return summarize_placements(component, compute_units, placements)


@dataclass(frozen=True)
class DriftingOp:
    """An op whose output left the tolerance between the two compute units while its inputs stayed within it."""

    op_type: str
    output: str
    index: int
    max_abs: float | None


@dataclass(frozen=True)
class DriftReport:
    component: str
    reference_units: str
    target_units: str
    atol: float
    rtol: float
    failing: tuple[DriftingOp, ...]

    @property
    def first(self) -> DriftingOp | None:
        """The earliest drifting op in program order, or None when every output stayed within tolerance."""
        return self.failing[0] if self.failing else None


def _run(coroutine: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:  # called from inside an event loop
        return pool.submit(asyncio.run, coroutine).result()


def first_drifting_op(package_path: Path | str, inputs: dict[str, np.ndarray], component: str = "",
                      reference_units: str = "CPU_ONLY", target_units: str = "CPU_AND_NE",
                      atol: float = 1e-3, rtol: float = 1e-3) -> DriftReport:
    """Run `package_path` (.mlpackage) on two compute units with package-named `inputs`; report the ops whose
    outputs drift past `atol + rtol*|ref|` first (coremltools' experimental MLModelComparator)."""
    ct = require((13, 0), "Core ML drift searches")
    try:
        from coremltools.models.ml_program.experimental.debugging_utils import MLModelComparator
    except ImportError as exc:
        raise RuntimeUnavailableError(f"drift searches need coremltools 8.3 or later ({exc})") from exc
    path = Path(package_path)
    if path.suffix != ".mlpackage":
        raise BadInputError(path, "a drift search needs the .mlpackage (it rewrites the program)")
    order = {}
    spec = ct.utils.load_spec(str(path))
    function = spec.mlProgram.functions["main"]
    for index, op in enumerate(function.block_specializations[function.opset].operations):
        for out in op.outputs:
            order[out.name] = index
    worst: dict[str, float] = {}

    def compare(op: Any, reference: np.ndarray, target: np.ndarray) -> bool:
        ref, tgt = np.asarray(reference, np.float64), np.asarray(target, np.float64)
        if ref.shape != tgt.shape:
            return False
        ok = bool(np.allclose(tgt, ref, atol=atol, rtol=rtol, equal_nan=True))
        if not ok and op.outputs:
            worst[op.outputs[0].name] = float(np.nanmax(np.abs(tgt - ref))) if ref.size else 0.0
        return ok

    with quiet():
        reference = ct.models.MLModel(str(path), compute_units=compute_unit(ct, reference_units))
        target = ct.models.MLModel(str(path), compute_units=compute_unit(ct, target_units))
        comparator = MLModelComparator(reference, target)
        failing = _run(comparator.find_failing_ops(inputs=inputs, compare_outputs=compare))
    ops = sorted((DriftingOp(op_type=str(op.type), output=str(op.outputs[0].name) if op.outputs else "",
                             index=order.get(op.outputs[0].name, -1) if op.outputs else -1,
                             max_abs=worst.get(op.outputs[0].name) if op.outputs else None) for op in failing),
                 key=lambda d: d.index)
    return DriftReport(component=component, reference_units=reference_units, target_units=target_units,
                       atol=atol, rtol=rtol, failing=tuple(ops))
