"""The Core ML compute-unit sweep: the same comparison on each compute unit, one row per unit.

Each row holds prepare / load / median / p90 / speedup per component and the worst diff per component, so a
user sees at a glance which unit is fastest and which one drifts. The reference run is shared; each unit gets its
own candidate runtime (the converted packages come from the cache after the first unit).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any

from rnnt_tui.core.components import COMPONENTS
from rnnt_tui.core.runtimes import get_runtime_class
from rnnt_tui.core.runtimes.base import Progress, RuntimeOptions, no_progress
from rnnt_tui.core.session import Session

COMPUTE_UNITS = ("CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL")


@dataclass
class SweepRow:
    compute_units: str
    status: str
    components: dict[str, dict[str, Any]] = field(default_factory=dict)
    transcript: str | None = None
    error: str | None = None
    placement: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"compute_units": self.compute_units, "status": self.status, "components": self.components,
                "transcript": self.transcript, "error": self.error, "placement": self.placement}


def placements(candidate: Any, units: str) -> dict[str, Any]:
    """Per component, the share of ops (and estimated cost) on CPU / GPU / Neural Engine, from MLComputePlan.
    Empty where the platform cannot tell (not macOS 14.4+); the reason is kept under "unavailable"."""
    from rnnt_tui.core.coreml.plan import compute_plan
    from rnnt_tui.core.errors import RuntimeUnavailableError

    out: dict[str, Any] = {}
    for component, path in getattr(candidate, "compiled_paths", {}).items():
        try:
            out[component] = compute_plan(path, component, units).to_json()
        except RuntimeUnavailableError as exc:
            return {"unavailable": str(exc)}
    return out


def sweep(base: Session, units: tuple[str, ...] = COMPUTE_UNITS, progress: Progress = no_progress,
          cancel: threading.Event | None = None) -> list[SweepRow]:
    """Run `base`'s comparison against Core ML on each compute unit."""
    from rnnt_tui.core.report import overall_status

    rows = []
    options = base.candidate.options if base.candidate is not None else RuntimeOptions()
    for unit in units:
        progress(f"compute units {unit}", None)
        candidate = get_runtime_class("coreml")(base.loaded, replace(options, compute_units=unit))
        session = Session(base.loaded, base.audio, base.reference, candidate, base.settings)
        session.prepare(progress, cancel)
        if session.candidate_unavailable:
            rows.append(SweepRow(unit, "unavailable", error=session.candidate_unavailable))
            continue
        session.run_all(progress, cancel)
        row = SweepRow(unit, overall_status(session))
        for name in COMPONENTS:
            result = session.results.get(name)
            if result is None:
                continue
            cand = result.timings.get("candidate")
            worst = max((c.stats.max_abs for c in result.comparisons if c.stats), default=None)
            row.components[name] = {
                "prepare_ms": cand.prepare_ms if cand else None, "load_ms": cand.load_ms if cand else None,
                "median_ms": cand.median_ms if cand else None, "p90_ms": cand.p90_ms if cand else None,
                "speedup": result.speedup, "worst_max_abs": worst, "status": result.status,
            }
        row.transcript = session.decode_comparison.candidate_text if session.decode_comparison else None
        row.placement = placements(candidate, unit)
        rows.append(row)
        candidate.close()
    return rows
