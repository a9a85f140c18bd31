"""fp16 (and compressed-weight) hazards, op by op: each component's candidate program run beside its fp32 counterpart
in the MIL interpreter on the same inputs (NeMo's, `runs.reference_feeds`).

Per op of the candidate it flags (kinds):
- `nonfinite`: NaN/Inf the fp32 program does not have (the first op that produced them is `first_nonfinite`);
- `overflow`: an fp16 op whose fp32 value passes 65504;
- `inexact-integer`: an fp16 op holding integer values above 2048 (index arithmetic: slice bounds, lengths);
- `underflow`: an fp16 op where ≥ 5 % of the fp32 program's nonzero values sit below fp16's normal range (6.1e-5),
  collapsing to subnormals or zero;
- `constant`: an fp16 constant that holds inf/NaN, or an fp32 constant over 65504 cast to fp16 (from `lint`);
- `drift`: the first op whose max |Δ| passes `threshold` of the fp32 value's max |x| (`first_drift`). Ops are
  matched by name without coremltools' cast suffixes (`mil.trace.compare_traces`); where the candidate is not the
  tool's own conversion and names do not match, the checks read the candidate's own values.

Ranking: the flagged ops are grouped (per NeMo module and kind, else where one feeds another), and each group's
effect on the component output is measured by running the candidate again with that group's outputs replaced by the
fp32 program's values (`runs.run_with_values`): `effect` is the output's max |Δ| before minus after. Each op carries
its NeMo module (`coreml.op_modules`; "unknown" when the package does not record it). Everything here is "Core ML
program, MIL interpreter", not Core ML.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rnnt_tui.core.components import COMPONENTS
from rnnt_tui.core.coreml import op_modules
from rnnt_tui.core.errors import CancelledError, RnntTuiError
from rnnt_tui.core.precision.runs import Feeds, max_diff, run_with_values, value_range
from rnnt_tui.core.progress import Progress, no_progress

LABEL = "Core ML program, MIL interpreter"
FP16_MAX = 65504.0
FP16_TINY = 6.104e-5
EXACT_INTEGERS = 2048
UNDERFLOW_SHARE = 0.05
DEFAULT_THRESHOLD = 0.01
MAX_RANKED_GROUPS = 8
_KEEP_ELEMENTS = 1 << 20  # fp32 tensors kept for ranking: outputs up to this many elements
KINDS = ("nonfinite", "overflow", "inexact-integer", "underflow", "constant", "drift")
#: the kinds that fail certification (`precision` exits 1); underflow and drift are observations
FAILING_KINDS = ("nonfinite", "overflow", "inexact-integer", "constant")
MAIN_OUTPUT = {"preprocessor": "features", "encoder": "encoded", "decoder": "decoder_output", "joint": "logits"}
MAIN_OUTPUTS = {"preprocessor": ("features", "features_length"), "encoder": ("encoded", "encoded_length"),
                "decoder": ("decoder_output", "h_out", "c_out"), "joint": ("logits",)}


@dataclass(frozen=True)
class Hazard:
    kind: str
    op: str
    op_type: str
    module: str
    detail: str
    value: float | None = None
    group: int = -1
    effect: float | None = None  # output max |Δ| removed when the group computes in fp32
    source: str | None = None  # the PyTorch line that made the op, where the program records it (Core AI)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "op": self.op, "op_type": self.op_type, "module": self.module,
                "detail": self.detail, "value": _num(self.value), "group": self.group, "effect": _num(self.effect),
                "source": self.source}


@dataclass(frozen=True)
class ComponentHazards:
    """One component: the candidate vs its fp32 program, the hazards ranked by effect (largest first)."""

    component: str
    package: str
    reference_package: str
    output: str = ""
    max_diff: float | None = None
    output_range: float | None = None
    finite: bool = True
    first_nonfinite: Hazard | None = None
    first_drift: Hazard | None = None
    hazards: tuple[Hazard, ...] = field(default_factory=tuple)
    ops: int = 0
    error: str | None = None
    label: str = LABEL  # what ran the candidate
    observed: str = ""  # where the candidate's per-op values came from, when not all from `label`

    @property
    def relative_diff(self) -> float | None:
        if self.max_diff is None or not self.output_range:
            return None
        return self.max_diff / self.output_range

    def to_json(self) -> dict[str, Any]:
        return {"component": self.component, "label": self.label, "package": self.package,
                "reference_package": self.reference_package, "output": self.output,
                "max_diff": _num(self.max_diff), "output_range": _num(self.output_range),
                "relative_diff": _num(self.relative_diff), "finite": self.finite, "ops": self.ops,
                "first_nonfinite": self.first_nonfinite.to_json() if self.first_nonfinite else None,
                "first_drift": self.first_drift.to_json() if self.first_drift else None,
                "hazards": [h.to_json() for h in self.hazards], "error": self.error, "observed": self.observed}


def _num(value: float | None) -> float | str | None:
    if value is None:
        return None
    return value if np.isfinite(value) else str(value)


def _integer_valued(sample: np.ndarray) -> bool:
    finite = sample[np.isfinite(sample)]
    return bool(finite.size) and bool(np.all(finite == np.round(finite)))


def _op_hazards(rec: Any, ref: Any, mapping: dict[str, str], structural: set[str]) -> list[Hazard]:
    """The hazards of one candidate op record `rec` (with its fp32 counterpart `ref`, or None)."""
    out: list[Hazard] = []
    module = op_modules.module_of(mapping, rec.name)
    for i, dtype in enumerate(rec.dtypes):
        bad = rec.nan[i] + rec.inf[i]
        ref_bad = (ref.nan[i] + ref.inf[i]) if ref is not None and i < len(ref.nan) else 0
        if bad and not ref_bad:
            out.append(Hazard("nonfinite", rec.name, rec.type, module, f"{rec.nan[i]} NaN, {rec.inf[i]} Inf",
                              float(bad)))
        if dtype != "float16":
            continue
        peak = ref.max_abs[i] if ref is not None and i < len(ref.max_abs) else rec.max_abs[i]
        if np.isfinite(peak) and peak > FP16_MAX:
            out.append(Hazard("overflow", rec.name, rec.type, module, f"fp32 value reaches {peak:.4g} > 65504",
                              float(peak)))
        sample = ref.samples[i] if ref is not None and i < len(ref.samples) else None
        integral = (sample is not None and sample.size > 0 and _integer_valued(sample)) or rec.name in structural
        if integral and np.isfinite(peak) and peak > EXACT_INTEGERS:
            out.append(Hazard("inexact-integer", rec.name, rec.type, module,
                              f"integer values up to {peak:.0f} held in fp16 (exact only up to 2048)", float(peak)))
        if sample is not None and sample.size:
            nonzero = np.abs(sample[np.isfinite(sample) & (sample != 0)])
            share = float((nonzero < FP16_TINY).mean()) if nonzero.size else 0.0
            if share >= UNDERFLOW_SHARE:
                out.append(Hazard("underflow", rec.name, rec.type, module,
                                  f"{share:.0%} of the nonzero fp32 values are below fp16's normal range", share))
    return out


def _groups(program: Any, names: list[str], keys: dict[str, tuple[str, str]]) -> dict[str, int]:
    """Group flagged ops: one group per (NeMo module, kind) where the module is known (the positional encoding's
    slice bounds are one hazard), otherwise ops that feed one another (directly or through one cast)."""
    steps = {s.meta.name: s for s in program.plan.steps}
    producer = {out: s.meta.name for s in program.plan.steps for out in s.outputs}
    parent = {n: n for n in names}

    def find(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for name in names:
        step = steps.get(name)
        if step is None:
            continue
        for _, ref in step.dynamic:
            for value in ref if isinstance(ref, tuple) else (ref,):
                src = producer.get(value)
                if src is not None and src not in parent and steps[src].meta.type == "cast":
                    inner = [producer.get(v) for _, r in steps[src].dynamic for v in (r if isinstance(r, tuple)
                                                                                      else (r,))]
                    src = next((s for s in inner if s in parent), None)
                if src is not None and src in parent:
                    parent[find(src)] = find(name)
    first_of: dict[tuple[str, str], str] = {}
    for name in names:
        if name in keys:
            parent[find(name)] = find(first_of.setdefault(keys[name], name))
    roots = {find(n) for n in names}
    index = {root: i for i, root in enumerate(sorted(roots, key=names.index))}
    return {n: index[find(n)] for n in names}


def analyse_component(component: str, candidate_path: Path, reference_path: Path, feeds: Feeds,
                      threshold: float = DEFAULT_THRESHOLD, rank: bool = True,
                      cancel: threading.Event | None = None,
                      names: tuple[dict[str, str], dict[str, str]] | None = None) -> ComponentHazards:
    """Hazards of one component's candidate program against its fp32 program on `feeds`. `names` maps the
    contract's input and output names to the candidate's tensor names when they differ (`--packages`)."""
    from rnnt_tui.core.coreml.fp16_policy import INDEX_ARITHMETIC, classify
    from rnnt_tui.core.coreml.spec import META_PREFIX, read_spec
    from rnnt_tui.core.mil import MilProgram, TraceOptions, compare_traces
    from rnnt_tui.core.mil.trace import base_name
    from rnnt_tui.core.precision.lint import lint_package, load_program

    mapping = op_modules.decode(read_spec(candidate_path).metadata.get(META_PREFIX + op_modules.METADATA_KEY))
    reference, candidate = MilProgram.load(reference_path), MilProgram.load(candidate_path)
    rename_in, rename_out = names or ({}, {})
    cand_feeds = {rename_in.get(k, k): v for k, v in feeds.items()}
    raw = candidate.run(cand_feeds, trace=TraceOptions())
    cand_out = {k: raw[rename_out.get(k, k)] for k in MAIN_OUTPUTS.get(component, ()) if rename_out.get(k, k) in raw}
    cand_out = cand_out or raw
    cand_trace = candidate.last_trace
    assert cand_trace is not None
    small = {base_name(rec.name) for rec in cand_trace.records  # the keep predicate is asked by op name
             if all(int(np.prod(shape)) <= _KEEP_ELEMENTS for shape in rec.shapes)}
    ref_out = reference.run(feeds, trace=TraceOptions(keep=lambda name, _type: base_name(name) in small))
    ref_trace = reference.last_trace
    assert ref_trace is not None and cand_trace is not None
    structural = {name for name, kept in classify(load_program(candidate_path).functions["main"]).items()
                  if kept.reason == INDEX_ARITHMETIC}
    index: dict[str, Any] = {}
    for rec in ref_trace.records:
        index.setdefault(base_name(rec.name), rec)
    found: list[Hazard] = []
    for rec in cand_trace.records:
        found += _op_hazards(rec, index.get(base_name(rec.name)), mapping, structural)
    for finding in lint_package(candidate_path).findings:
        if finding.check == "fp16-constant" and finding.op:
            found.append(Hazard("constant", finding.op, "const", finding.module or op_modules.UNKNOWN,
                                finding.message))
    first_bad = cand_trace.first_nonfinite()
    first_nonfinite = next((h for h in found if first_bad is not None and h.op == first_bad.name
                            and h.kind == "nonfinite"), None)
    comparison = compare_traces(ref_trace, cand_trace, threshold, relative=True)
    first_drift = None
    if comparison.first is not None:
        row = comparison.first
        first_drift = Hazard("drift", row.op_b, row.type, op_modules.module_of(mapping, row.op_b),
                             f"max |Δ| {row.max_diff:.4g} = {row.relative:.2%} of max |x| {row.max_abs_a:.4g}",
                             row.relative)
        found.append(first_drift)
    output = MAIN_OUTPUT.get(component, next(iter(ref_out)))
    base = max_diff(ref_out, cand_out)
    ranked = _rank(candidate, cand_feeds, ref_out, ref_trace, base, found, rank, cancel, rename_out)
    return ComponentHazards(component=component, package=str(candidate_path), reference_package=str(reference_path),
                            output=output, max_diff=base, output_range=value_range(ref_out, output),
                            finite=all(np.isfinite(np.asarray(v, np.float64)).all() for v in cand_out.values()
                                       if np.asarray(v).dtype.kind == "f"),
                            first_nonfinite=first_nonfinite, first_drift=first_drift, hazards=tuple(ranked),
                            ops=candidate.op_count)


def _reference_values(trace: Any, candidate: Any, ops: list[str]) -> dict[str, np.ndarray]:
    """The fp32 program's tensors for the outputs of the candidate's `ops` (matched by name, same shape)."""
    from rnnt_tui.core.mil.trace import base_name

    kept = {base_name(out): arr for rec in trace.records for out, arr in rec.tensors.items()}
    values = {}
    for step in candidate.plan.steps:
        if step.meta.name in ops:
            for out in step.outputs:
                arr = kept.get(base_name(out))
                if arr is not None:
                    values[out] = arr
    return values


def _renamed(out: Feeds, rename_out: dict[str, str]) -> Feeds:
    back = {v: k for k, v in rename_out.items()}
    return {back.get(k, k): v for k, v in out.items()}


def _rank(candidate: Any, feeds: Feeds, ref_out: Feeds, ref_trace: Any, base: float, found: list[Hazard],
          rank: bool, cancel: threading.Event | None, rename_out: dict[str, str]) -> list[Hazard]:
    steps = {s.meta.name for s in candidate.plan.steps}
    names = list(dict.fromkeys(h.op for h in found if h.op in steps))
    group_of = _groups(candidate, names, {h.op: (h.module, h.kind) for h in found
                                          if h.module != op_modules.UNKNOWN})
    effects: dict[int, float] = {}
    if rank and base > 0:
        order = sorted(set(group_of.values()), key=lambda g: min(KINDS.index(h.kind) for h in found
                                                                 if group_of.get(h.op) == g))
        for group in order[:MAX_RANKED_GROUPS]:
            if cancel is not None and cancel.is_set():
                raise CancelledError("cancelled while ranking hazards")
            members = [n for n, g in group_of.items() if g == group]
            values = _reference_values(ref_trace, candidate, members)
            if not values:
                continue
            try:
                after = max_diff(ref_out, _renamed(run_with_values(candidate, feeds, values), rename_out))
            except (RnntTuiError, ValueError):
                continue  # substituting this group alone is inconsistent (e.g. a shape): no effect measured
            if np.isfinite(base):
                effects[group] = base - after
            else:
                effects[group] = float("inf") if np.isfinite(after) else 0.0
    out = [Hazard(h.kind, h.op, h.op_type, h.module, h.detail, h.value, group_of.get(h.op, -1),
                  effects.get(group_of.get(h.op, -1))) for h in found]
    return sorted(out, key=lambda h: (-(h.effect if h.effect is not None else -1.0), KINDS.index(h.kind)))


def analyse(feeds: dict[str, Feeds], candidates: dict[str, Path], references: dict[str, Path],
            threshold: float = DEFAULT_THRESHOLD, progress: Progress = no_progress,
            cancel: threading.Event | None = None,
            names: dict[str, tuple[dict[str, str], dict[str, str]]] | None = None) -> list[ComponentHazards]:
    """Every component present in both `candidates` and `references`; a component that fails (unreadable
    package, an op the interpreter cannot run, bad inputs) reports its error and the others go on."""
    wanted = [c for c in COMPONENTS if c in candidates and c in references]
    out = []
    for i, component in enumerate(wanted):
        if cancel is not None and cancel.is_set():
            raise CancelledError("cancelled during the hazard analysis")
        progress(f"Hazards: {component} ({LABEL})", i / max(1, len(wanted)))
        try:
            out.append(analyse_component(component, candidates[component], references[component],
                                         feeds[component], threshold, cancel=cancel,
                                         names=(names or {}).get(component)))
        except CancelledError:
            raise
        except (RnntTuiError, ValueError, MemoryError) as exc:
            out.append(ComponentHazards(component=component, package=str(candidates[component]),
                                        reference_package=str(references[component]), error=str(exc)))
    progress("Hazards: done", 1.0)
    return out
