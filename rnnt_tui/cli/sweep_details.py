"""What a compute-unit sweep found beyond its timings, printed under the sweep table: where Core ML placed each
component's ops (share on CPU / GPU / Neural Engine, so an fp32 package that stays off the Neural Engine does not
read as a CPU_AND_NE figure) and, with `--drift`, each drift search's verdict: the first drifting op, or why none
is named (nothing upstream compared: the probe models Core ML did not load are listed).

Renders `core.sweep.SweepRow`s only; computes nothing."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from rnnt_tui.cli.common import out
from rnnt_tui.core.sweep.verdict import drift_verdict


def _share(plan: dict[str, Any]) -> str:
    shares = plan.get("op_share") or {}
    return " ".join(f"{d} {100 * shares.get(d, 0.0):.0f}%" for d in ("CPU", "GPU", "NE"))


def placement_rows(rows: list[Any]) -> list[tuple[str, str, str]]:
    """(compute units, component, "CPU x% GPU y% NE z%" or why there is no plan) for each row with a plan."""
    found = []
    for row in rows:
        for component, plan in (row.placement or {}).items():
            if component == "unavailable":
                found.append((row.compute_units, "-", f"no compute plan: {plan}"))
            elif "error" in plan:
                found.append((row.compute_units, component, f"no compute plan: {plan['error']}"))
            else:
                found.append((row.compute_units, component, f"{_share(plan)} of {plan.get('ops', 0)} ops"))
    return found


def print_sweep_details(rows: list[Any]) -> None:
    placed = placement_rows(rows)
    if placed:
        table = Table(title="Op placement (Core ML's compute plan)", title_justify="left")
        for col in ("compute units", "component", "ops on CPU / GPU / Neural Engine"):
            table.add_column(col)
        for units, component, text in placed:
            table.add_row(units, component, text)
        out.print(table)
    searches = [(row.compute_units, name, entry) for row in rows for name, entry in (row.drift or {}).items()]
    if searches:
        table = Table(title="Drift search (vs CPU_ONLY)", title_justify="left")
        for col in ("compute units", "component", "verdict"):
            table.add_column(col)
        for units, name, entry in searches:
            table.add_row(units, name, drift_verdict(entry))
        out.print(table)
