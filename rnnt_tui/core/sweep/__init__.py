"""The Core ML compute-unit sweep: the same comparison on each compute unit, one row per unit, whatever happens.

The reference runs once for all units (and not at all when no unit can run): when the first unit is ready, a
reference-only session runs every step through a `SharedReference` that records each of the reference's calls
(keyed by the call and a digest of its inputs); the per-unit sessions then replay those results, so the
reference's timings and outputs are the same measured ones for every row (each row's speedup is against them).
Each unit gets its own candidate runtime, closed whatever happens; a unit that cannot run keeps its row with the
reason: `unavailable` (Core ML cannot run here, the package needs a newer macOS, this Mac lacks the unit's
accelerator) or `failed` (Core ML refused to load, a step raised), else `ok` / `mismatch`.

Per unit and package the row says whether the runtime's load included compilation, and reports a cold compile +
first load beside a load of the cached compiled model (`core.coreml.load.load_times`); per component, Core ML's
compute plan (share of ops on CPU / GPU / Neural Engine) or why there is none, and on request (`drift`) the first
op that drifts from CPU_ONLY in each component out of tolerance.
"""

from __future__ import annotations

import hashlib
import threading
import traceback
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from rnnt_tui.core.components import COMPONENTS
from rnnt_tui.core.errors import CancelledError, RuntimeUnavailableError
from rnnt_tui.core.names import CANDIDATE, COMPUTE_UNITS, REFERENCE, Status
from rnnt_tui.core.pipeline import events as ev
from rnnt_tui.core.pipeline.context import error_text
from rnnt_tui.core.pipeline.driver import NO_CANDIDATE, new_session, prepare_candidate, run_steps
from rnnt_tui.core.pipeline.session import Session
from rnnt_tui.core.progress import Progress, no_progress
from rnnt_tui.core.runtimes.base import Availability, BoundCall, FunctionCall, PrepareReport, Runtime
from rnnt_tui.core.timing import Timings

#: the statuses a row can have (the CLI maps them to exit codes with `exit_codes.sweep_exit_code`)
ROW_STATUSES = ("ok", Status.MISMATCH.value, Status.FAILED.value, Status.UNAVAILABLE.value)
#: the job of the sweep's `Progress` events
JOB = "sweep"


def _digest(value: Any, h: Any) -> None:
    if isinstance(value, dict):
        for key in sorted(value):
            h.update(str(key).encode())
            _digest(value[key], h)
    elif isinstance(value, (list, tuple)):
        h.update(f"seq{len(value)}".encode())
        for item in value:
            _digest(item, h)
    elif hasattr(value, "detach"):  # a torch tensor (the reference's decoder state and outputs)
        _digest(np.asarray(value.detach().cpu()), h)
    elif isinstance(value, np.ndarray) or np.isscalar(value):
        array = np.ascontiguousarray(value)
        h.update(f"{array.dtype}{array.shape}".encode())
        h.update(array.tobytes())
    else:
        h.update(repr(value).encode())


def call_key(*parts: Any) -> str:
    h = hashlib.blake2b(digest_size=16)
    _digest(parts, h)
    return h.hexdigest()


class SharedReference(Runtime):
    """The reference runtime, recorded once and replayed: while recording, every call runs for real (so its
    timings are real) and its first result is kept by the call and a digest of its inputs; once `replaying`, a
    call seen before returns the kept result without running the reference. `real_calls` counts the calls that
    reached the wrapped runtime."""

    name: ClassVar[str] = "shared-reference"
    label: ClassVar[str] = "reference (shared)"

    def __init__(self, inner: Runtime) -> None:
        super().__init__(inner.loaded, inner.options)
        self.inner = inner
        self.reports = inner.reports
        self.components = inner.components  # type: ignore[misc]
        self.label = inner.label  # type: ignore[misc]
        self._kept: dict[str, Any] = {}
        self.real_calls = 0
        self.replaying = False
        #: component -> the contract-named inputs of its first call (what a drift search feeds the package)
        self.first_inputs: dict[str, dict[str, np.ndarray]] = {}

    @classmethod
    def availability(cls) -> Availability:
        return Availability(ok=True)

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def prepare(self, progress: Progress = no_progress,
                cancel: threading.Event | None = None) -> list[PrepareReport]:
        return list(self.inner.reports.values())

    def _once(self, key: str, call: Any) -> Any:
        if self.replaying and key in self._kept:
            return self._kept[key]
        self.real_calls += 1
        result = call()
        self._kept.setdefault(key, result)
        return result

    def bind(self, component: str, inputs: dict[str, np.ndarray]) -> BoundCall:
        key = call_key("bind", component, inputs)
        self.first_inputs.setdefault(component, inputs)
        if self.replaying and key in self._kept:
            raw, convert = self._kept[key]
            return FunctionCall(lambda: raw, convert)
        bound = self.inner.bind(component, inputs)

        def call() -> Any:  # timed by the caller: the real reference runs every time until a result is kept
            self.real_calls += 1
            raw = bound()
            self._kept.setdefault(key, (raw, bound.outputs))
            return raw

        return FunctionCall(call, bound.outputs)

    def initial_state(self) -> Any:
        return self._once(call_key("initial_state"), self.inner.initial_state)

    def decoder_step(self, token: int, state: Any) -> tuple[Any, Any]:
        result: tuple[Any, Any] = self._once(call_key("decoder_step", token, state),
                                             lambda: self.inner.decoder_step(token, state))
        return result

    def joint_step(self, frame: np.ndarray, decoder_output: Any) -> np.ndarray:
        result: np.ndarray = self._once(call_key("joint_step", frame, decoder_output),
                                        lambda: self.inner.joint_step(frame, decoder_output))
        return result


@dataclass
class SweepRow:
    """One compute unit: its status (`ROW_STATUSES`), per-component timings and worst diff, per-package load times,
    Core ML's op placement, and the error (with its traceback) when the unit could not run."""

    compute_units: str
    status: str
    components: dict[str, dict[str, Any]] = field(default_factory=dict)
    transcript: str | None = None
    error: str | None = None
    placement: dict[str, Any] = field(default_factory=dict)
    loads: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    traceback: str | None = None
    drift: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"compute_units": self.compute_units, "status": self.status, "components": self.components,
                "transcript": self.transcript, "error": self.error, "placement": self.placement,
                "loads": self.loads, "notes": list(self.notes), "traceback": self.traceback, "drift": self.drift}


def placements(candidate: Runtime, units: str) -> dict[str, Any]:
    """Per component, the share of ops (and estimated cost) on CPU / GPU / Neural Engine, from MLComputePlan; a
    component whose plan Core ML refuses gets {"error": ...}. Where the platform cannot tell at all (not macOS
    14.4+) the reason is kept under "unavailable"."""
    from rnnt_tui.core.coreml.plan import compute_plan

    out: dict[str, Any] = {}
    for component, path in candidate.compiled_paths.items():
        try:
            out[component] = compute_plan(path, component, units).to_json()
        except RuntimeUnavailableError as exc:
            return {"unavailable": str(exc)}
        except Exception as exc:  # noqa: BLE001 - one component's plan failing leaves the others and the row
            out[component] = {"component": component, "compute_units": units, "error": error_text(exc)}
    return out


def package_loads(candidate: Runtime, units: str) -> dict[str, dict[str, Any]]:
    """Per package: the runtime's own load (and whether it compiled), beside a cold compile + first load and a
    load of the cached compiled model on `units`."""
    from rnnt_tui.core.coreml.load import load_times

    out: dict[str, dict[str, Any]] = {}
    compiled = candidate.compiled_paths
    for key, info in candidate.packages.items():
        report = candidate.reports.get(key)
        entry: dict[str, Any] = {"package": str(info.path),
                                 "load_ms": report.load_ms if report else None,
                                 "load_compiled": (not report.cached) if report and report.load_ms is not None
                                 else None}
        if info.path.suffix == ".mlmodelc":
            entry["cold"] = None
            entry["note"] = "given compiled: no cold compile to measure"
        else:
            try:
                entry.update(load_times(info.path, units, compiled.get(key)).to_json())
            except Exception as exc:  # noqa: BLE001 - the timing of one package failing is reported, not fatal
                entry["load_times_error"] = error_text(exc)
        out[key] = entry
    return out


def drift_searches(candidate: Runtime, row: SweepRow, inputs: dict[str, dict[str, np.ndarray]],
                   settings: Any) -> dict[str, dict[str, Any]]:
    """For each component out of tolerance on this unit: the first op that drifts between CPU_ONLY and the unit
    (`core.coreml.plan.first_drifting_op`), fed the package-named form of the component's first reference input;
    or why no search could run."""
    from rnnt_tui.core.coreml.plan import core_ml_problem, first_drifting_op

    out: dict[str, dict[str, Any]] = {}
    if row.compute_units == "CPU_ONLY":
        return out
    problem = core_ml_problem(what="Core ML drift searches")
    for name, comp in row.components.items():
        if comp.get("status") != Status.MISMATCH.value:
            continue
        if problem:
            out[name] = {"component": name, "error": problem}
            continue
        info = candidate.packages.get(name)
        try:
            if info is None or info.path.suffix != ".mlpackage" or name not in inputs:
                raise ValueError(f"a drift search needs the {name}'s .mlpackage and its reference input")
            feed = candidate.package_feed(name, inputs[name])
            tol = settings.tolerances[name]
            out[name] = first_drifting_op(info.path, feed, name, "CPU_ONLY", row.compute_units, tol.atol,
                                          tol.rtol).to_json()
        except Exception as exc:  # noqa: BLE001 - one search failing is reported in its place
            out[name] = {"component": name, "error": error_text(exc)}
    return out


def _missing_accelerator(units: str) -> tuple[str | None, list[str]]:
    """(why `units` cannot run as asked on this Mac, notes): unavailable when none of the accelerators it adds
    exists here (Core ML would quietly run it on the CPU)."""
    from rnnt_tui.core.coreml.platform import UNIT_DEVICES, compute_devices, missing_devices

    try:
        devices = compute_devices()
    except Exception as exc:  # noqa: BLE001 - unknown devices: run the unit and say the devices are unknown
        return None, [f"compute devices not known ({error_text(exc)})"]
    notes = [f"compute devices here: {', '.join(devices.values()) or 'none reported'}"]
    accelerators = [d for d in UNIT_DEVICES[units] if d != "CPU"]
    missing = [d for d in missing_devices(units, devices) if d != "CPU"]
    names = {"GPU": "GPU", "NE": "Neural Engine"}
    if accelerators and len(missing) == len(accelerators):
        lacking = " or ".join(names[d] for d in missing)
        return f"this Mac has no {lacking}: Core ML would run {units} on the CPU alone", notes
    if missing:
        notes.append(f"this Mac has no {' or '.join(names[d] for d in missing)}: {units} runs without it")
    return None, notes


def _component_rows(session: Session, reference: dict[str, Timings | None]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in COMPONENTS:
        result = session.results.get(name)
        if result is None:
            continue
        cand, ref = result.timings.get(CANDIDATE), reference.get(name)
        worst = max((c.stats.max_abs for c in result.comparisons if c.stats), default=None)
        out[name] = {
            "prepare_ms": cand.prepare_ms if cand else None, "load_ms": cand.load_ms if cand else None,
            "load_compiled": (not cand.cached) if cand and cand.cached is not None else None,
            "median_ms": cand.median_ms if cand else None, "p90_ms": cand.p90_ms if cand else None,
            "reference_median_ms": ref.median_ms if ref else None,
            "speedup": ref.median_ms / cand.median_ms if ref and cand and cand.median_ms > 0 else None,
            "worst_max_abs": worst, "status": str(result.status), "error": result.error,
        }
    return out


class _OnceReference:
    """The reference's run, made the first time a unit needs it (never, when no unit can run)."""

    def __init__(self, base: Session) -> None:
        self.base = base
        self.shared = SharedReference(base.reference)
        self.timings: dict[str, Timings | None] | None = None

    def run(self, emit: ev.Emit, cancel: threading.Event | None) -> dict[str, Timings | None]:
        if self.timings is None:
            emit(ev.Progress(JOB, "the reference, once for every compute unit"))
            base = self.base
            run = new_session(base.facts, base.audio, self.shared, None, base.settings,
                              {REFERENCE: base.prepare_reports.get(REFERENCE, {})}, NO_CANDIDATE, base.overrides,
                              base.after_step)
            run_steps(run, emit=emit, cancel=cancel)
            self.shared.replaying = True
            self.timings = {name: r.timings.get(REFERENCE) for name, r in run.results.items()}
        return self.timings


def _unit_row(base: Session, once: _OnceReference, unit: str, runtime: type[Runtime], emit: ev.Emit,
              cancel: threading.Event | None, load_timing: bool, drift: bool) -> SweepRow:
    from rnnt_tui.core.report import overall_status

    candidate: Runtime | None = None
    try:
        notes: list[str] = []
        if runtime.availability().ok and runtime.name == "coreml":
            missing, notes = _missing_accelerator(unit)
            if missing:
                return SweepRow(unit, Status.UNAVAILABLE.value, error=missing, notes=notes)
        candidate = runtime(base.reference.loaded, replace(_options(base), compute_units=unit))
        state = prepare_candidate(candidate, emit, cancel)  # converts even where Core ML cannot run
        if state.failed is not None:
            return SweepRow(unit, Status.FAILED.value, error=state.failed, notes=notes, traceback=state.details)
        if state.unavailable is not None:
            return SweepRow(unit, Status.UNAVAILABLE.value, error=state.unavailable, notes=notes)
        reference = once.run(emit, cancel)
        session = new_session(base.facts, base.audio, once.shared, candidate, base.settings,
                              {REFERENCE: base.prepare_reports.get(REFERENCE, {})}, state, base.overrides,
                              base.after_step)
        run_steps(session, emit=emit, cancel=cancel)
        row = SweepRow(unit, overall_status(session), components=_component_rows(session, reference), notes=notes)
        row.transcript = session.decode_comparison.candidate_text if session.decode_comparison else None
        row.error = next((f"{n}: {r.error}" for n, r in session.results.items() if r.error), None)
        row.placement = placements(candidate, unit)
        if load_timing:
            row.loads = package_loads(candidate, unit)
        if drift:
            row.drift = drift_searches(candidate, row, once.shared.first_inputs, base.settings)
        return row
    except CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - this unit failed (a load Core ML refused, a crash); the others run
        return SweepRow(unit, Status.FAILED.value, error=error_text(exc), traceback=traceback.format_exc())
    finally:
        if candidate is not None:
            candidate.close()


def _options(base: Session) -> Any:
    from rnnt_tui.core.options import RuntimeOptions

    return base.candidate.options if base.candidate is not None else RuntimeOptions()


def sweep(base: Session, units: tuple[str, ...] = COMPUTE_UNITS, emit: ev.Emit = ev.ignore,
          cancel: threading.Event | None = None, load_timing: bool = True,
          runtime: str | type[Runtime] = "coreml", drift: bool = False) -> list[SweepRow]:
    """Run `base`'s comparison on each compute unit: one row per unit, always. The reference runs once, when the
    first unit can run (recorded, then replayed for every unit); `load_timing` adds cold-compile vs cached-load
    times per package; `drift` searches, for each component out of tolerance on a unit, the first op that
    drifts from CPU_ONLY. `runtime` is the candidate (its registered name or class; the MIL interpreter runs the
    same packages on any OS, where compute units do not apply)."""
    from rnnt_tui.core.runtimes import get_runtime_class

    cls = get_runtime_class(runtime) if isinstance(runtime, str) else runtime
    once = _OnceReference(base)
    quiet = _progress_only(emit)
    rows = []
    for index, unit in enumerate(units):
        emit(ev.SweepUnitStarted(unit, index + 1, len(units)))
        emit(ev.Progress(JOB, f"compute units {unit}", index / max(len(units), 1)))
        rows.append(_unit_row(base, once, unit, cls, quiet, cancel, load_timing, drift))
        emit(ev.SweepUnitFinished(rows[-1]))
    return rows


def _progress_only(emit: ev.Emit) -> ev.Emit:
    """What of a unit's own run reaches the sweep's listener: its progress, as the sweep's (its steps' results
    belong to the row, not to the session a front end shows)."""

    def forward(event: ev.Event) -> None:
        if isinstance(event, ev.Progress):
            emit(ev.Progress(JOB, event.text, event.fraction))

    return forward
