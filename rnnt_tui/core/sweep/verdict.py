"""One line per drift search (`SweepRow.drift`): the first drifting op, no drift, or why no op is named.

Shared by the CLI's sweep details and the app's sweep screen, so both say the same thing; plain text, no UI."""

from __future__ import annotations

from typing import Any

from rnnt_tui.formatting import num


def drift_verdict(entry: dict[str, Any]) -> str:
    """One line per drift search: the first drifting op, no drift, or why no op is named."""
    if "error" in entry:
        return f"no search: {entry['error']}"
    failures = entry.get("load_failures") or []
    probes = f"; {len(failures)} probe model(s) not loaded: {'; '.join(failures)[:200]}" if failures else ""
    failing = entry.get("failing") or []
    if entry.get("first"):
        op = next(d for d in failing if d["output"] == entry["first"])
        return f"first drifting op: {op['op_type']} {op['output']} (max |Δ| {num(op['max_abs'])}){probes}"
    if failing:
        named = ", ".join(f"{d['op_type']} {d['output']}" for d in failing)
        return (f"drift reaches {named}, but nothing upstream of it could be compared: no first op named"
                f"{probes}")
    return f"no op drifted among {entry.get('compared', 0)} compared outputs{probes}"
