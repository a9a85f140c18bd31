"""Where Core ML runs each op of a package, and which op first drifts between two compute units (macOS only).

`compute_plan` reads Core ML's own plan for a compiled model (`MLComputePlan.load_from_path`, macOS 14.4+): per op
(ML program) or per layer (neural network) the preferred and supported devices and an estimated cost, summarised
as the share of ops and of estimated cost on CPU / GPU / Neural Engine, and the ops that run on the CPU although
the chosen units include an accelerator, grouped by op type. That is the first thing to look at when a compute
unit is slow or numerically different: an LSTM or a range-flexible input often keeps a component off the NE.

`first_drifting_op` uses coremltools' experimental `MLModelComparator.find_failing_ops` (coremltools 8.3+) to run
one package on two compute units and point at the earliest op (in program order) whose output leaves the tolerance
while its inputs did not.

Elsewhere both raise RuntimeUnavailableError with one sentence saying why (`core.coreml.platform`). A drift search
that could compare nothing (Core ML loaded none of its probe models) raises with Core ML's reason: it never reports
"no drift" for ops it did not run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rnnt_tui.core.coreml.platform import (  # noqa: F401 - core_ml_problem, macos_version re-exported for callers
    MACOS_FLOOR,
    compute_unit,
    core_ml_problem,
    device_name,
    macos_version,
    require,
)
from rnnt_tui.core.errors import BadInputError, RuntimeUnavailableError
from rnnt_tui.core.quiet import quiet

DEVICES = ("CPU", "GPU", "NE")
_SKIPPED_OPS = frozenset({"const"})


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
    """Core ML's plan for a compiled model (`.mlmodelc`) on `compute_units` (macOS 14.4+): per op of an ML
    program (with its estimated cost), or per layer of a neural network (Core ML estimates no cost there)."""
    ct = require((14, 4), "Core ML compute plans")
    from coremltools.models.compute_plan import MLComputePlan

    path = Path(compiled_path)
    if path.suffix != ".mlmodelc":
        raise BadInputError(path, "a compute plan needs the compiled model (.mlmodelc)")
    try:
        with quiet():
            plan = MLComputePlan.load_from_path(path=str(path), compute_units=compute_unit(ct, compute_units))
    except Exception as exc:  # Core ML's own refusal (RuntimeError from the bridge): say which model and units
        raise RuntimeError(f"{path.name}: Core ML gave no compute plan on {compute_units} "
                           f"({type(exc).__name__}: {exc})") from exc
    structure = plan.model_structure
    placements = []
    if structure.program is not None:
        if "main" not in structure.program.functions:
            raise BadInputError(path, "an ML program without a main function; no per-op plan")
        for op in _operations(structure.program.functions["main"].block):
            usage = plan.get_compute_device_usage_for_mlprogram_operation(op)
            cost = plan.get_estimated_cost_for_mlprogram_operation(op)
            placements.append(_placement(str(op.operator_name), str(op.outputs[0].name) if op.outputs else "",
                                         usage, float(cost.weight) if cost is not None else None))
    elif structure.neuralnetwork is not None:
        for layer in structure.neuralnetwork.layers:
            usage = plan.get_compute_device_usage_for_neuralnetwork_layer(layer)
            placements.append(_placement(str(layer.type), str(layer.name), usage, None))
    else:
        raise BadInputError(path, "neither an ML program nor a neural network (a pipeline?); no per-op plan")
    return summarize_placements(component, compute_units, placements)


def _placement(op_type: str, output: str, usage: Any, cost: float | None) -> OpPlacement:
    return OpPlacement(op_type=op_type, output=output,
                       preferred=device_name(usage.preferred_compute_device) if usage else "unknown",
                       supported=tuple(device_name(d) for d in usage.supported_compute_devices) if usage else (),
                       cost=cost)


@dataclass(frozen=True)
class DriftingOp:
    """An op whose output left the tolerance between the two compute units. `confirmed`: every op feeding it was
    compared and stayed within tolerance (or is a constant / function input); when a probe model that would have
    compared an upstream op failed to load, the drift may have started earlier and the op is not named as the
    first (coremltools' `_is_failure_source` walks through such unknown statuses and blames it anyway)."""

    op_type: str
    output: str
    index: int
    max_abs: float | None
    confirmed: bool = True


@dataclass(frozen=True)
class DriftReport:
    """What a drift search found: the drifting ops, how many op outputs it compared, and the probe models Core ML
    could not load (their ops stay unjudged)."""

    component: str
    reference_units: str
    target_units: str
    atol: float
    rtol: float
    failing: tuple[DriftingOp, ...]
    compared: int = 0
    load_failures: tuple[str, ...] = ()

    @property
    def first(self) -> DriftingOp | None:
        """The earliest drifting op in program order whose inputs were all compared within tolerance; None when
        every compared output stayed within tolerance, or when nothing upstream of the drift could be compared
        (never a guess)."""
        return next((d for d in self.failing if d.confirmed), None)

    @property
    def unconfirmed(self) -> tuple[DriftingOp, ...]:
        """Drifting ops whose upstream could not be compared (probe models Core ML did not load)."""
        return tuple(d for d in self.failing if not d.confirmed)

    def to_json(self) -> dict[str, Any]:
        first = self.first
        return {"component": self.component, "reference_units": self.reference_units,
                "target_units": self.target_units, "atol": self.atol, "rtol": self.rtol,
                "compared": self.compared, "load_failures": list(self.load_failures),
                "first": first.output if first else None,
                "failing": [{"op_type": d.op_type, "output": d.output, "index": d.index, "max_abs": d.max_abs,
                             "confirmed": d.confirmed} for d in self.failing]}


def _run(coroutine: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:  # called from inside an event loop
        return pool.submit(asyncio.run, coroutine).result()


class _LoadFailures(logging.Handler):
    """Collects what coremltools says when a probe model fails to load: its comparator logs a warning and moves on
    (the op becomes 'unknown'), and MLModel warns with Core ML's own reason."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Failed to create model"):
            self.messages.append(message.split("error (", 1)[-1].rstrip(")"))


@contextlib.contextmanager
def _load_failures() -> Iterator[tuple[_LoadFailures, list[warnings.WarningMessage]]]:
    logger = logging.getLogger("coremltools.models.ml_program.experimental.debugging_utils")
    handler, level, propagate = _LoadFailures(), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            yield handler, caught
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def first_drifting_op(package_path: Path | str, inputs: dict[str, np.ndarray], component: str = "",
                      reference_units: str = "CPU_ONLY", target_units: str = "CPU_AND_NE",
                      atol: float = 1e-3, rtol: float = 1e-3) -> DriftReport:
    """Run `package_path` (.mlpackage) on two compute units with package-named `inputs`; report the ops whose
    outputs drift past `atol + rtol*|ref|` first (coremltools' experimental MLModelComparator).

    Raises (never "no drift") when no op output could be compared: Core ML loaded none of the probe models."""
    from rnnt_tui.core.coreml.load import check_runnable

    ct = require(MACOS_FLOOR, "Core ML drift searches")
    try:
        from coremltools.models.ml_program.experimental import debugging_utils  # noqa: F401 - 8.3+ only
    except ImportError as exc:
        raise RuntimeUnavailableError(f"drift searches need coremltools 8.3 or later ({exc})") from exc
    path = Path(package_path)
    if path.suffix != ".mlpackage":
        raise BadInputError(path, "a drift search needs the .mlpackage (it rewrites the program)")
    check_runnable(path)
    return search_drift(ct, path, inputs, component, reference_units, target_units, atol, rtol)


def search_drift(ct: Any, path: Path, inputs: dict[str, np.ndarray], component: str = "",
                 reference_units: str = "CPU_ONLY", target_units: str = "CPU_AND_NE", atol: float = 1e-3,
                 rtol: float = 1e-3) -> DriftReport:
    """`first_drifting_op` after its platform checks: the comparator's run and the verdict on what it compared
    (also driven where Core ML cannot load a model, to prove that such a search raises)."""
    from coremltools.models.ml_program.experimental.debugging_utils import MLModelComparator

    from rnnt_tui.core.coreml.load import CoreMLLoadError

    with quiet():  # the comparator only reads these models' specs and weights: load none of them here
        reference = ct.models.MLModel(str(path), compute_units=compute_unit(ct, reference_units),
                                      skip_model_load=True)
        target = ct.models.MLModel(str(path), compute_units=compute_unit(ct, target_units), skip_model_load=True)
    spec = reference.get_spec()
    if spec.WhichOneof("Type") != "mlProgram":
        raise BadInputError(path, "a drift search needs an ML program (this package is a "
                                  f"{spec.WhichOneof('Type')})")
    function = spec.mlProgram.functions["main"]
    operations = list(function.block_specializations[function.opset].operations)
    order = {out.name: index for index, op in enumerate(operations) for out in op.outputs}
    worst: dict[str, float] = {}
    compared: set[str] = set()

    def compare(op: Any, ref_value: np.ndarray, tgt_value: np.ndarray) -> bool:
        ref, tgt = np.asarray(ref_value, np.float64), np.asarray(tgt_value, np.float64)
        if op.outputs:
            compared.add(op.outputs[0].name)
        if ref.shape != tgt.shape:
            return False
        ok = bool(np.allclose(tgt, ref, atol=atol, rtol=rtol, equal_nan=True))
        if not ok and op.outputs:
            worst[op.outputs[0].name] = float(np.nanmax(np.abs(tgt - ref))) if ref.size else 0.0
        return ok

    with quiet(), _load_failures() as (handler, caught):
        comparator = MLModelComparator(reference, target)
        failing = _run(comparator.find_failing_ops(inputs=inputs, compare_outputs=compare))
    reasons = [str(w.message).split("Underlying exception message was: ", 1)[-1] for w in caught
               if issubclass(w.category, RuntimeWarning) and "Underlying exception" in str(w.message)]
    failures = tuple(dict.fromkeys(reasons or handler.messages))
    if not compared:
        why = "; ".join(failures) or "Core ML gave no reason"
        raise CoreMLLoadError(f"{path.name}: the drift search between {reference_units} and {target_units} "
                              f"compared no op output: Core ML could not load its probe models ({why})")
    ops = sorted((DriftingOp(op_type=str(op.type), output=str(op.outputs[0].name) if op.outputs else "",
                             index=order.get(op.outputs[0].name, -1) if op.outputs else -1,
                             max_abs=worst.get(op.outputs[0].name) if op.outputs else None,
                             confirmed=upstream_compared(op, operations, order, compared, worst))
                  for op in failing), key=lambda d: d.index)
    return DriftReport(component=component, reference_units=reference_units, target_units=target_units,
                       atol=atol, rtol=rtol, failing=tuple(ops), compared=len(compared), load_failures=failures)


#: ops coremltools' comparator skips by default (`debugging_utils.skip_op_by_type`): never compared, so their
#: status says nothing about the drift; the walk goes through them to the ops that feed them
_SKIPPED_BY_COMPARATOR = frozenset({"expand_dims", "reshape", "reshape_like", "squeeze", "transpose",
                                    "slice_by_index", "slice_by_size", "shape", "split", "stack", "concat",
                                    "identity", "cast", "const"})
_CONSTANT_OPS = frozenset({"const"})


def upstream_compared(op: Any, operations: list[Any], order: dict[str, int], compared: set[str],
                      failing: dict[str, float]) -> bool:
    """Whether every op feeding `op` (through ops the comparator skips) was compared and stayed within tolerance,
    or is a constant / the function's input: only then is `op` where the drift starts (pure; tested anywhere)."""
    seen: set[str] = set()
    queue = [b.name for arg in op.inputs.values() for b in arg.arguments if b.WhichOneof("binding") == "name"]
    while queue:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        index = order.get(name)
        if index is None:  # a function input
            continue
        producer = operations[index]
        if producer.type in _CONSTANT_OPS:
            continue
        if name in compared and name not in failing:
            continue
        if name in compared or producer.type not in _SKIPPED_BY_COMPARATOR:
            return False  # upstream drifted too, or was never compared (its probe did not load)
        queue += [b.name for arg in producer.inputs.values() for b in arg.arguments
                  if b.WhichOneof("binding") == "name"]
    return True
