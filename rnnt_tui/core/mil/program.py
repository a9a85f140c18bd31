"""`MilProgram`: a saved Core ML ML program, loaded and planned once, run on numpy inputs on any OS.

The one public entry point of the interpreter (see the package docstring for what it does and does not
simulate). Inputs are checked against the program's declared names, ranks and fixed sizes, and cast to the
declared dtypes; a problem is a `BadInputError` naming the package and the input.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path
from typing import Any

import numpy as np

from rnnt_tui.core.errors import BadInputError
from rnnt_tui.core.mil.kernels_base import held_dtype, mil_dtype
from rnnt_tui.core.mil.kernels_state import ProgramState, StateBox
from rnnt_tui.core.mil.load import load_program
from rnnt_tui.core.mil.plan import Plan, build_plan, execute
from rnnt_tui.core.mil.trace import OpTrace, TraceOptions

_NOT_COMPUTE = ("const", "cast", "shape")


def _dim(d: Any) -> int | None:
    try:
        return int(d)
    except (TypeError, ValueError):
        return None  # a symbolic (flexible) dimension


class MilProgram:
    """A loaded ML program with its execution plan. Build with `MilProgram.load(path)`."""

    path: Path
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    precision: str
    weight_compression: tuple[str, ...]
    op_count: int
    op_types: collections.Counter[str]
    plan_ms: float
    load_ms: float
    last_trace: OpTrace | None
    function: str  # the function run: main, or one of a multifunction package's

    def __init__(self, path: Path, plan: Plan, inputs: dict[str, tuple[np.dtype[Any], tuple[int | None, ...]]],
                 plan_ms: float) -> None:
        self.path = path
        self._plan = plan
        self._inputs = inputs
        self.input_names = tuple(plan.inputs)
        self.output_names = tuple(plan.outputs)
        self.op_types = collections.Counter(plan.op_types.values())
        self.op_count = sum(self.op_types.values())
        self.weight_compression = plan.compression
        self.precision = _precision(plan)
        self.plan_ms = plan_ms
        self.load_ms = 0.0
        self.function = "main"
        self.last_trace = None
        self._flexible: dict[str, Flexibility] = {}
        #: state name -> (dtype, shape) of a stateful program's states; `last_states` their values after a run
        self.states: dict[str, tuple[np.dtype[Any], tuple[int, ...]]] = {}
        self.last_states: dict[str, np.ndarray] = {}

    @classmethod
    def load(cls, path: Path | str, function: str | None = None) -> MilProgram:
        """Load and plan the program at `path` (.mlpackage or ML-program .mlmodel; of a multifunction package,
        `function`, its default when None); BadInputError when unusable."""
        loaded = load_program(path, function)
        start = time.perf_counter()
        body = loaded.function
        flexible = _flexibility(loaded.description)
        inputs = {}
        states: dict[str, tuple[np.dtype[Any], tuple[int, ...]]] = {}
        for name, var in body.inputs.items():
            wrapped = _state_tensor(var)
            if wrapped is not None:  # a Core ML state: fed as a StateBox, not checked like an input
                states[name] = wrapped
                continue
            shape = tuple(_dim(d) for d in var.shape)
            ranges, shapes = flexible.get(name, (None, None))
            if ranges and len(ranges) == len(shape):
                shape = tuple(None if lo != hi else d for d, (lo, hi) in zip(shape, ranges, strict=True))
            if shapes:
                shape = tuple(None if len({s[i] for s in shapes}) > 1 else d for i, d in enumerate(shape))
            inputs[name] = (held_dtype(mil_dtype(var) or np.dtype(np.float32)), shape)
        plan = build_plan(body, loaded.path)
        plan_ms = (time.perf_counter() - start) * 1000
        program = cls(loaded.path, plan, inputs, plan_ms)
        program._flexible = flexible
        program.states = states
        program.input_names = tuple(n for n in program.input_names if n not in states)
        program.load_ms = loaded.load_ms
        program.function = loaded.function_name
        return program

    def input_dtype(self, name: str) -> np.dtype[Any]:
        return self._inputs[name][0]

    def input_shape(self, name: str) -> tuple[int | None, ...]:
        return self._inputs[name][1]

    @property
    def unsupported_ops(self) -> tuple[tuple[str, str], ...]:
        """(type, name) of each op the interpreter cannot execute; `run` raises UnsupportedOpError on the first."""
        return tuple((s.meta.type, s.meta.name) for s in self._plan.unsupported)

    @property
    def plan(self) -> Plan:
        """The execution plan (steps with their kernels, constants); `run_plan` runs a modified copy of it."""
        return self._plan

    def check_feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """`feeds` checked against the declared inputs and cast to their dtypes (BadInputError otherwise)."""
        return self._feeds(feeds)

    def make_state(self) -> ProgramState:
        """Zeroed buffers for each of the program's states, to pass to `run` across calls (`MLModel.make_state`)."""
        return ProgramState({name: StateBox(np.zeros(shape, dtype)) for name, (dtype, shape) in self.states.items()})

    def run_plan(self, plan: Plan, feeds: dict[str, np.ndarray], trace: TraceOptions | None = None,
                 values: dict[str, np.ndarray] | None = None, state: ProgramState | None = None
                 ) -> dict[str, np.ndarray]:
        """`run` with another plan of this program (e.g. some steps' out_dtypes widened to fp32) and/or some op
        outputs replaced by `values`; sets `last_trace` like `run`."""
        if state is not None:  # updated in place, as Core ML's predict(state=) does
            self._check_state(state)
            boxes = state.boxes
        else:
            boxes = {name: StateBox(np.asarray(feeds[name], dtype) if name in feeds else np.zeros(shape, dtype))
                     for name, (dtype, shape) in self.states.items()}
        checked = self._feeds({k: v for k, v in feeds.items() if k not in self.states})
        op_trace = OpTrace(package=str(self.path)) if trace is not None else None
        self.last_trace = None
        outputs = execute(plan, {**checked, **boxes}, op_trace, trace, values)  # type: ignore[dict-item]
        self.last_trace = op_trace
        self.last_states = {name: box.value for name, box in boxes.items()}
        return outputs

    def _check_state(self, state: ProgramState) -> None:
        """BadInputError unless `state` holds exactly this program's states, each in its shape and dtype (a state
        made by another function of the same multifunction package passes when their states are declared alike)."""
        held = {name: (box.value.dtype, tuple(box.value.shape)) for name, box in state.boxes.items()}
        wanted = {name: (np.dtype(dtype), tuple(shape)) for name, (dtype, shape) in self.states.items()}
        if held != wanted:
            raise BadInputError(self.path, f"the state given to function {self.function} holds {_described(held)}; "
                                           f"it declares {_described(wanted)}")

    def _feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise BadInputError(self.path, f"missing input(s) {', '.join(missing)} (the program takes "
                                           f"{', '.join(self.input_names)})")
        extra = [n for n in feeds if n not in self._inputs]
        if extra:
            raise BadInputError(self.path, f"unknown input(s) {', '.join(extra)} (the program takes "
                                           f"{', '.join(self.input_names)})")
        out = {}
        for name in self.input_names:
            dtype, shape = self._inputs[name]
            arr = np.asarray(feeds[name])
            if arr.ndim != len(shape):
                raise BadInputError(self.path, f"input {name!r} has rank {arr.ndim} (shape {list(arr.shape)}); "
                                               f"the program declares rank {len(shape)} {_show(shape)}")
            if any(want is not None and want != got for want, got in zip(shape, arr.shape, strict=True)):
                raise BadInputError(self.path, f"input {name!r} has shape {list(arr.shape)}; the program declares "
                                               f"{_show(shape)}")
            problem = _outside(arr.shape, *self._flexible.get(name, (None, None)))
            if problem:
                raise BadInputError(self.path, f"input {name!r} has shape {list(arr.shape)}; {problem}")
            out[name] = arr.astype(dtype, copy=False)
        return out

    def run(self, feeds: dict[str, np.ndarray], trace: TraceOptions | None = None,
            state: ProgramState | None = None) -> dict[str, np.ndarray]:
        """Execute the program on `feeds` (input name -> array); returns output name -> array in the declared
        dtypes. With `trace`, `last_trace` holds this run's op trace afterwards. A stateful program reads and
        updates `state` (`make_state`) in place; without one its states start from the feeds (or zeros)."""
        return self.run_plan(self._plan, feeds, trace, state=state)


Flexibility = tuple[list[tuple[int, int]] | None, list[tuple[int, ...]] | None]


def _state_tensor(var: Any) -> tuple[np.dtype[Any], tuple[int, ...]] | None:
    """(dtype, shape) of the tensor a state input wraps, or None when `var` is not a state."""
    from coremltools.converters.mil.mil import types  # coremltools: only once a program is loaded

    sym = getattr(var, "sym_type", None)
    if sym is None or not types.is_state(sym):
        return None
    tensor = sym.wrapped_type()
    return (held_dtype(np.dtype(types.nptype_from_builtin(tensor.get_primitive()))),
            tuple(int(d) for d in tensor.get_shape()))


def _described(states: dict[str, tuple[np.dtype[Any], tuple[int, ...]]]) -> str:
    return ", ".join(f"{name} {dtype} {list(shape)}" for name, (dtype, shape) in sorted(states.items())) or "none"


def _flexibility(description: Any) -> dict[str, Flexibility]:
    """input name -> (per-axis (lower, upper) ranges, upper -1 = unbounded) or (None, enumerated shapes), from the
    function's I/O description."""
    out: dict[str, Flexibility] = {}
    for feature in description.input:
        if feature.type.WhichOneof("Type") != "multiArrayType":
            continue
        arr = feature.type.multiArrayType
        flex = arr.WhichOneof("ShapeFlexibility")
        if flex == "shapeRange":
            out[feature.name] = ([(int(r.lowerBound), int(r.upperBound)) for r in arr.shapeRange.sizeRanges], None)
        elif flex == "enumeratedShapes":
            out[feature.name] = (None, [tuple(int(d) for d in s.shape) for s in arr.enumeratedShapes.shapes])
    return out


def _outside(shape: tuple[int, ...], ranges: list[tuple[int, int]] | None,
             shapes: list[tuple[int, ...]] | None) -> str | None:
    """Why `shape` is outside the declared flexibility (Core ML would refuse it), or None."""
    if ranges and len(ranges) == len(shape):
        for axis, (size, (lo, hi)) in enumerate(zip(shape, ranges, strict=True)):
            if size < lo or (hi > 0 and size > hi):
                return f"the program accepts {lo}..{hi if hi > 0 else 'unbounded'} on axis {axis}"
    if shapes and tuple(shape) not in shapes:
        return f"the program accepts only the shapes {', '.join(str(list(s)) for s in shapes)}"
    return None


def _show(shape: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _precision(plan: Plan) -> str:
    """'fp16', 'fp32' or 'mixed' from the float dtypes of the tensors (rank >= 2) the program's ops compute: casts,
    constants and scalar / length arithmetic are left out, so an fp16 program with fp32 I/O and fp32 length
    bookkeeping (coremltools keeps some in fp32) is fp16."""
    seen: set[str] = set()
    for op_type, dtypes in plan.float_dtypes.items():
        if op_type not in _NOT_COMPUTE:
            seen |= dtypes
    if seen == {"float16"}:
        return "fp16"
    if "float16" in seen:
        return "mixed"
    return "fp32"
