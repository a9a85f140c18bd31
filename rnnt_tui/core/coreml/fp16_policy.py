"""Which ops of an ML program must not compute in fp16, found from the program's structure alone.

Two kinds of values lose their meaning in fp16 whatever the clip, so the tool's own `--precision fp16` conversion
keeps the ops that compute them in fp32 and lists them:

- **index arithmetic**: floating-point ops all of whose computed float inputs derive from integers (tensor shapes,
  lengths, integer inputs cast to float). fp16 holds integers exactly only up to 2048 (above 4096 only multiples
  of 4), so slice bounds such as the relative positional encoding's `centre ∓ T` (centre ≈ 5000) and length
  formulas such as the subsampling's `floor((len + pad - k) / s + 1)` go wrong on long inputs.
- **statistics over a flexible axis**: sums and means over an axis whose length is not fixed (the time axis), and
  the ops computed only from such statistics. The per-feature normalisation's sums of squares pass 65504 on long
  clips (inf variance at 30 s, non-finite features at 60 s).

The same walk reads a saved fp16 program (`lint` reports integer arithmetic that still runs in fp16), and gives
the op selector for `ct.transform.FP16ComputePrecision`. It reads MIL ops only; it never runs anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rnnt_tui.core.coreml.op_modules import sanitized, walk

INDEX_ARITHMETIC = "index arithmetic"
FLEXIBLE_STATISTIC = "statistic over a flexible axis"
#: reductions whose fp16 result depends on the axis length (max/min/argmax are exact in fp16 whatever the length)
ACCUMULATING = frozenset({"reduce_sum", "reduce_mean", "reduce_sum_square", "reduce_l1_norm", "reduce_l2_norm",
                          "reduce_log_sum", "reduce_log_sum_exp", "reduce_prod", "cumsum"})
#: ops that never compute on float values (selectors are not asked about them)
_NOT_ARITHMETIC = frozenset({"const", "cast", "shape"})
#: a constant this small is a parameter of the arithmetic (a scale, an offset), not data
_SMALL_CONST = 16


@dataclass(frozen=True)
class KeptOp:
    """One op kept in fp32, and why."""

    name: str
    op_type: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "op_type": self.op_type, "reason": self.reason}


def _inputs(op: Any) -> list[Any]:
    out: list[Any] = []
    for value in op.inputs.values():
        out.extend(value if isinstance(value, (list, tuple)) else [value])
    return out


def _is_float(var: Any) -> bool:
    from coremltools.converters.mil.mil import types  # coremltools: only when a program is read

    dtype = var.dtype
    return bool(types.is_float(dtype))


def _is_integer(var: Any) -> bool:
    from coremltools.converters.mil.mil import types

    dtype = var.dtype
    return bool(types.is_int(dtype) or types.is_bool(dtype))


def _is_bool(var: Any) -> bool:
    from coremltools.converters.mil.mil import types

    return bool(types.is_bool(var.dtype))


def _is_const(var: Any) -> bool:
    return var.op is None or var.op.op_type == "const" or var.val is not None


def _flexible_reduction(op: Any) -> bool:
    """A summing reduction over at least one axis whose length is symbolic (not fixed at conversion)."""
    from coremltools.converters.mil.mil.types.symbolic import is_symbolic

    if op.op_type not in ACCUMULATING:
        return False
    x = op.inputs.get("x")
    shape = getattr(x, "shape", None)
    if x is None or shape is None or not _is_float(x):
        return False
    if op.op_type == "cumsum":
        axis = op.inputs.get("axis")
        axes = [int(axis.val)] if axis is not None and axis.val is not None else list(range(len(shape)))
    else:
        given = op.inputs.get("axes")
        axes = [int(a) for a in given.val] if given is not None and given.val is not None else list(range(len(shape)))
    return any(is_symbolic(shape[a % len(shape)]) for a in axes) if shape else False


def classify(block: Any) -> dict[str, KeptOp]:
    """Op name -> KeptOp for the ops of `block` (and its nested blocks) that fp16 would break on long inputs."""
    integer: set[int] = set()  # ids of vars whose value derives from integers
    flags: set[int] = set()  # ids of booleans and of floats made only from them (0/1: exact in fp16)
    statistic: set[int] = set()  # ids of vars that are statistics over a flexible axis (or derive from them)
    kept: dict[str, KeptOp] = {}
    for op in walk(block):
        inputs = _inputs(op)
        outputs = list(op.outputs)
        if outputs and all(_is_bool(v) for v in outputs):
            flags.update(id(v) for v in outputs)
            continue
        if op.op_type == "cast" and inputs and id(inputs[0]) in flags:
            flags.update(id(v) for v in outputs)
            continue
        if op.op_type == "shape" or (op.op_type == "cast" and inputs
                                     and (id(inputs[0]) in integer or _is_integer(inputs[0]))):
            integer.update(id(v) for v in outputs)
            continue
        if op.op_type == "cast" and inputs and id(inputs[0]) in statistic:
            statistic.update(id(v) for v in outputs)
            continue
        if op.op_type in _NOT_ARITHMETIC:
            continue
        if all(_is_integer(v) for v in outputs) and outputs:
            integer.update(id(v) for v in outputs)
        computed = [v for v in inputs if _is_float(v) and not _is_const(v)]
        if _flexible_reduction(op):
            kept[op.name] = KeptOp(op.name, op.op_type, FLEXIBLE_STATISTIC)
            statistic.update(id(v) for v in outputs)
            continue
        if computed and all(id(v) in flags for v in computed):
            flags.update(id(v) for v in outputs)
            continue
        computed = [v for v in computed if id(v) not in flags]
        integer_inputs = [v for v in inputs if _is_integer(v) and not _is_const(v)]
        consts_small = all(v.val is None or getattr(v.val, "size", 1) <= _SMALL_CONST
                           for v in inputs if _is_float(v) and _is_const(v))
        produces_float = any(_is_float(v) for v in outputs)
        if computed and consts_small and all(id(v) in integer for v in computed):
            if produces_float:
                kept[op.name] = KeptOp(op.name, op.op_type, INDEX_ARITHMETIC)
            integer.update(id(v) for v in outputs)
        elif not computed and integer_inputs and produces_float and consts_small:
            integer.update(id(v) for v in outputs)  # e.g. range/fill from integers: exact values, nothing to keep
        elif (computed and consts_small and any(id(v) in statistic for v in computed)
              and all(id(v) in statistic or id(v) in integer for v in computed)):
            kept[op.name] = KeptOp(op.name, op.op_type, FLEXIBLE_STATISTIC)
            statistic.update(id(v) for v in outputs)
    return kept


def classify_program(prog: Any, function: str = "main") -> dict[str, KeptOp]:
    return classify(prog.functions[function])


class KeepFp32Selector:
    """An `op_selector` for `ct.transform.FP16ComputePrecision`: True (fp16) for every op except the ones kept.

    `structural=True` adds what `classify` finds in the program the first time the selector is asked (before the
    fp16 pass has changed anything); `names` / `types` add ops by name or type (the mixed-precision set). The ops it
    kept are in `kept` after the conversion.
    """

    def __init__(self, structural: bool = True, names: Iterable[str] = (), types: Iterable[str] = ()) -> None:
        self.structural = structural
        self.names = frozenset(sanitized(n) for n in names)
        self.types = frozenset(types)
        self.kept: dict[str, KeptOp] = {}
        self._found: dict[str, KeptOp] | None = None

    def __call__(self, op: Any) -> bool:
        if self._found is None:
            block = op.enclosing_block
            while getattr(block, "outer_op", None) is not None:
                block = block.outer_op.enclosing_block
            self._found = classify(block) if self.structural else {}
        hit = self._found.get(op.name)
        if hit is None and (sanitized(op.name) in self.names or op.op_type in self.types):
            hit = KeptOp(op.name, op.op_type, "chosen")
        if hit is not None:
            self.kept[op.name] = hit
            return False
        return True


def selector_snippet(keep: Mapping[str, Iterable[str]], types: Iterable[str] = ()) -> str:
    """Python that rebuilds a selection (component -> op names) for `ct.convert(..., compute_precision=...)`.
    Names are compared as the saved program writes them (`op_modules.sanitized`), so saved names work too."""
    table = {c: sorted({sanitized(n) for n in names}) for c, names in keep.items()}
    type_list = sorted(set(types))
    lines = ["import re", "", "import coremltools as ct", "", "KEEP_FP32 = {"]
    lines += [f"    {c!r}: {set(names) if names else 'set()'}," for c, names in table.items()]
    lines += ["}", f"KEEP_FP32_TYPES = {set(type_list) if type_list else 'set()'}", "", "",
              "def saved_name(name):  # how coremltools writes an op name into the saved program",
              "    name = re.sub('[^a-zA-Z0-9_]', '_', name)",
              "    return 'op_' + name if re.match('[^a-zA-Z_]', name) else name", "", "",
              "def compute_precision(component):  # ct.convert(..., compute_precision=compute_precision('encoder'))",
              "    keep = KEEP_FP32.get(component, set())",
              "    return ct.transform.FP16ComputePrecision(",
              "        op_selector=lambda op: saved_name(op.name) not in keep and op.op_type not in KEEP_FP32_TYPES)"]
    return "\n".join(lines)
