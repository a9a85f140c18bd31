"""The op trace: what every op of one run produced (shape, dtype, max |x|, NaN/Inf counts, a fixed sample, and
for selected ops the tensors), bounded in memory; and the op-by-op comparison of two runs.

Two runs are matched by output name, else by op name. An fp16 program's names carry coremltools' cast suffixes
(`x_cast_fp16`, `features_to_fp16`, `gather_1_cast_uint16_to_int32`) and some of its outputs are renamed after
their op (`linear_0_cast_fp16` for fp32's `audio_signal_1` of op `linear_0`), so names are compared without the
suffixes, and the casts the fp16 program inserts are skipped where the op they cast is already matched. Drift is
measured on the full tensors where both runs kept them, otherwise on the sample (the same strided positions of
equal-shaped outputs): a lower bound of the true max |Δ|, flagged as sampled.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_MAX_BYTES = 256 * 2**20
DEFAULT_SAMPLE = 1024
_CAST_SUFFIX = re.compile(r"(?:_(?:cast|to)_(?:fp16|fp32|fp64|u?int(?:8|16|32|64)|bool))+$")


@dataclass(frozen=True)
class TraceOptions:
    """What to record. `keep`: op names (or a predicate on (name, type)) whose output tensors are kept, within
    `max_bytes` in total; every op gets its statistics and a `sample` of up to that many elements per output
    (float32: 4 KiB per output by default, ~25 MiB for a 5,000-op Parakeet encoder)."""

    keep: frozenset[str] | Callable[[str, str], bool] | None = None
    max_bytes: int = DEFAULT_MAX_BYTES
    sample: int = DEFAULT_SAMPLE

    def wants(self, name: str, op_type: str) -> bool:
        if self.keep is None:
            return False
        if callable(self.keep):
            return bool(self.keep(name, op_type))
        return name in self.keep


@dataclass(frozen=True)
class OpRecord:
    """One op of one run. Per output: name, shape, dtype, max |x| (over finite values), NaN and Inf counts."""

    index: int
    name: str
    type: str
    outputs: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]
    max_abs: tuple[float, ...]
    nan: tuple[int, ...]
    inf: tuple[int, ...]
    elapsed_ms: float
    scope: str = ""
    samples: tuple[np.ndarray, ...] = ()
    tensors: dict[str, np.ndarray] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "type": self.type, "outputs": list(self.outputs),
                "shapes": [list(s) for s in self.shapes], "dtypes": list(self.dtypes),
                "max_abs": [round(v, 6) for v in self.max_abs], "nan": list(self.nan), "inf": list(self.inf),
                "elapsed_ms": round(self.elapsed_ms, 3), "scope": self.scope, "kept": sorted(self.tensors)}


@dataclass
class OpTrace:
    """The records of one run, in execution order; `kept_bytes` of tensors kept, `dropped` ops whose tensors were
    wanted but did not fit in `max_bytes`."""

    package: str
    records: list[OpRecord] = field(default_factory=list)
    kept_bytes: int = 0
    dropped: list[str] = field(default_factory=list)

    def by_output(self) -> dict[str, tuple[OpRecord, int]]:
        return {out: (rec, i) for rec in self.records for i, out in enumerate(rec.outputs)}

    def first_nonfinite(self) -> OpRecord | None:
        return next((r for r in self.records if any(r.nan) or any(r.inf)), None)


def _sample(arr: np.ndarray, n: int) -> np.ndarray:
    flat = arr.reshape(-1)
    if flat.size > n:
        flat = flat[:: -(-flat.size // n)]
    return np.array(flat, dtype=np.float32)  # exact for fp16/fp32 values and integers below 2**24


def record(trace: OpTrace, options: TraceOptions, index: int, name: str, op_type: str, scope: str,
           outputs: tuple[str, ...], values: tuple[Any, ...], elapsed_ms: float) -> None:
    """Append one op's record to `trace`."""
    shapes, dtypes, maxes, nans, infs, samples = [], [], [], [], [], []
    keep: dict[str, np.ndarray] = {}
    wanted = options.wants(name, op_type)
    for out, value in zip(outputs, values, strict=True):
        arr = np.asarray(value)
        shapes.append(tuple(int(d) for d in arr.shape))
        dtypes.append(str(arr.dtype))
        if arr.dtype.kind == "f" and arr.size:
            finite = np.isfinite(arr)
            nan = int(np.isnan(arr).sum())
            nans.append(nan)
            infs.append(int(arr.size - finite.sum()) - nan)
            maxes.append(float(np.abs(arr[finite]).max()) if finite.any() else float("nan"))
        else:
            nans.append(0)
            infs.append(0)
            maxes.append(float(np.abs(arr.astype(np.float64)).max()) if arr.size and arr.dtype.kind in "iub"
                         else 0.0)
        samples.append(_sample(arr, options.sample) if arr.dtype.kind in "fiub" else np.zeros(0))
        if wanted:
            if trace.kept_bytes + arr.nbytes <= options.max_bytes:
                keep[out] = np.array(arr)
                trace.kept_bytes += arr.nbytes
            else:
                trace.dropped.append(name)
    trace.records.append(OpRecord(index=index, name=name, type=op_type, outputs=outputs, shapes=tuple(shapes),
                                  dtypes=tuple(dtypes), max_abs=tuple(maxes), nan=tuple(nans), inf=tuple(infs),
                                  elapsed_ms=elapsed_ms, scope=scope, samples=tuple(samples), tensors=keep))


def base_name(name: str) -> str:
    """An output name without coremltools' fp16 cast suffixes."""
    return _CAST_SUFFIX.sub("", name)


@dataclass(frozen=True)
class DriftRow:
    """One matched output: reference op (run a) and candidate op (run b), their max |x| and max |Δ|."""

    output: str
    op_a: str
    op_b: str
    type: str
    shape: tuple[int, ...]
    max_abs_a: float
    max_abs_b: float
    max_diff: float
    relative: float
    sampled: bool
    over: bool

    def to_json(self) -> dict[str, Any]:
        return {"output": self.output, "op_a": self.op_a, "op_b": self.op_b, "type": self.type,
                "shape": list(self.shape), "max_abs_a": self.max_abs_a, "max_abs_b": self.max_abs_b,
                "max_diff": self.max_diff, "relative": self.relative, "sampled": self.sampled, "over": self.over}


@dataclass(frozen=True)
class TraceComparison:
    """Per-op drift of run b against run a; `first` is the first op (in b's order) past the threshold."""

    rows: tuple[DriftRow, ...]
    first: DriftRow | None
    threshold: float
    relative: bool
    unmatched: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "relative": self.relative,
                "first": self.first.to_json() if self.first else None,
                "rows": [r.to_json() for r in self.rows], "unmatched": list(self.unmatched)}


def _index(trace: OpTrace) -> tuple[dict[str, tuple[OpRecord, int]], dict[str, OpRecord]]:
    """(output base name -> (record, output index), op base name -> record), inserted casts skipped."""
    outputs: dict[str, tuple[OpRecord, int]] = {}
    ops: dict[str, OpRecord] = {}
    for rec in trace.records:
        for i, name in enumerate(rec.outputs):
            key = base_name(name)
            if key in outputs and rec.type == "cast":
                continue  # an inserted cast of an output already matched
            outputs[key] = (rec, i)
        ops.setdefault(base_name(rec.name), rec)
    return outputs, ops


def _match(rec: OpRecord, ib: int, outputs: dict[str, tuple[OpRecord, int]],
           ops: dict[str, OpRecord]) -> tuple[OpRecord, int] | None:
    """b's output `ib` in a: by output name, else (fp16 programs rename some outputs after their op) by op name."""
    found = outputs.get(base_name(rec.outputs[ib]))
    if found is not None:
        return found
    op = ops.get(base_name(rec.name))
    if op is not None and op.type == rec.type and len(op.outputs) == len(rec.outputs):
        return op, ib
    return None


def _diff(ra: OpRecord, ia: int, rb: OpRecord, ib: int) -> tuple[float, bool] | None:
    if ra.shapes[ia] != rb.shapes[ib]:
        return None
    ta, tb = ra.tensors.get(ra.outputs[ia]), rb.tensors.get(rb.outputs[ib])
    if ta is not None and tb is not None:
        a, b, sampled = ta.astype(np.float64), tb.astype(np.float64), False
    else:
        a, b, sampled = ra.samples[ia], rb.samples[ib], True
        if a.shape != b.shape:
            return None
    if a.size == 0:
        return 0.0, sampled
    if a.dtype.kind == "b" or b.dtype.kind == "b":
        a, b = a.astype(np.float64), b.astype(np.float64)
    delta = np.abs(a - b)
    bad = np.isnan(a) != np.isnan(b)
    if bad.any():
        return float("inf"), sampled
    delta = np.where(np.isnan(delta), 0.0, delta)
    return float(delta.max()), sampled


def compare_traces(a: OpTrace, b: OpTrace, threshold: float, relative: bool = False) -> TraceComparison:
    """Match b's outputs to a's by name (without cast suffixes) and measure each one's drift; `first` is the first
    op of b whose drift (max |Δ|, or max |Δ| / max |a| with `relative`) exceeds `threshold`."""
    outputs_a, ops_a = _index(a)
    rows: list[DriftRow] = []
    unmatched: list[str] = []
    seen: set[tuple[str, int]] = set()
    for rec in b.records:
        for ib, name in enumerate(rec.outputs):
            found = _match(rec, ib, outputs_a, ops_a)
            if found is None:
                unmatched.append(name)
                continue
            ra, ia = found
            if (ra.name, ia) in seen:
                continue  # a cast of an output already compared
            seen.add((ra.name, ia))
            got = _diff(ra, ia, rec, ib)
            if got is None:
                unmatched.append(name)
                continue
            diff, sampled = got
            scale = ra.max_abs[ia]
            rel = diff / scale if scale and np.isfinite(scale) and scale > 0 else (0.0 if diff == 0 else float("inf"))
            over = (rel if relative else diff) > threshold
            rows.append(DriftRow(output=ra.outputs[ia], op_a=ra.name, op_b=rec.name, type=rec.type,
                                 shape=rec.shapes[ib], max_abs_a=ra.max_abs[ia], max_abs_b=rec.max_abs[ib],
                                 max_diff=diff, relative=rel, sampled=sampled, over=over))
    first = next((r for r in rows if r.over), None)
    return TraceComparison(rows=tuple(rows), first=first, threshold=threshold, relative=relative,
                           unmatched=tuple(unmatched))
