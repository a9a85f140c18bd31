"""`rnnt-tui coreai-drift`: where a Core AI conversion drifts from PyTorch, named with Apple's own debugging tools.

Runs the comparison against Core AI once, then for each component out of tolerance (or each `--component` asked
for) runs `core.coreai.drift.find_drift` on that component's first reference input and prints the first op that
differs: its torch.export node, the largest difference, its PyTorch source line and its NeMo module. Exit 0 when no
op drifts, 1 when one does (the JSON report has every failing op), 3 when Core AI cannot run here.
"""

from __future__ import annotations

import click
from rich.table import Table

from rnnt_tui.cli import options
from rnnt_tui.cli.common import audio_path, checkpoint_path, emit_json, emitter, guard, out, status
from rnnt_tui.core.components import COMPONENTS
from rnnt_tui.exit_codes import ExitCode


@click.command("coreai-drift")
@click.argument("checkpoint", required=False)
@click.argument("audio", required=False)
@click.option("--component", "components", multiple=True, type=click.Choice(COMPONENTS),
              help="Search these components even when within tolerance (default: those out of tolerance).")
@options.precision
@click.option("--atol", "drift_atol", type=float, default=1e-4, show_default=True,
              help="Per-op absolute tolerance of the search.")
@click.option("--rtol", "drift_rtol", type=float, default=1e-4, show_default=True,
              help="Per-op relative tolerance of the search.")
@options.json_mode
def coreai_drift(checkpoint: str | None, audio: str | None, components: tuple[str, ...], precision: str,
                 drift_atol: float, drift_rtol: float, json_mode: bool) -> None:
    """Name the first op where CHECKPOINT's Core AI conversion drifts from PyTorch on AUDIO."""
    def body() -> int:
        from rnnt_tui.core.coreai.drift import find_drift
        from rnnt_tui.core.errors import RuntimeUnavailableError
        from rnnt_tui.core.names import Status
        from rnnt_tui.core.options import RuntimeOptions
        from rnnt_tui.core.pipeline.drift_inputs import drift_inputs
        from rnnt_tui.core.pipeline.driver import run_steps
        from rnnt_tui.core.pipeline.pipeline import open_session
        from rnnt_tui.core.pipeline.request import Request

        request = Request(checkpoint_path(checkpoint), audio_path(audio), "coreai",
                          RuntimeOptions(precision=precision), options.settings(1, 0, "validation", precision))
        with status(json_mode) as progress:
            emit = emitter(progress)
            session = open_session(request, emit)
            candidate = session.candidate
            if candidate is None or session.candidate_unavailable is not None:
                raise RuntimeUnavailableError(session.candidate_unavailable or "Core AI was not prepared")
            run_steps(session, emit=emit)
            wanted = list(components) or [n for n in COMPONENTS if session.results[n].status == Status.MISMATCH]
            reports = {}
            for name in wanted:
                progress(f"Core AI: comparing the {name} op by op (Apple's coreai_torch.debugging)", None)
                reports[name] = find_drift(candidate.loaded, name, drift_inputs(session, name),
                                           atol=drift_atol, rtol=drift_rtol, precision=precision)
            candidate.close()
        statuses = {n: str(session.results[n].status) for n in COMPONENTS if n in session.results}
        if json_mode:
            emit_json({"candidate": candidate.describe(), "components": statuses,
                       "drift": {n: r.to_json() for n, r in reports.items()}})
        else:
            table = Table(title=f"{candidate.label}: where it drifts", title_justify="left")
            for col in ("component", "status", "first drifting op", "ops compared", "failing", "tool"):
                table.add_column(col)
            for name in COMPONENTS:
                report = reports.get(name)
                table.add_row(name, statuses.get(name, "-"),
                              (report.first.line() if report.first else "none") if report else "not searched",
                              str(report.compared) if report else "-", str(len(report.failing)) if report else "-",
                              report.tool if report else "-")
            out.print(table)
        return ExitCode.MISMATCH if any(r.first for r in reports.values()) else ExitCode.OK

    guard(body)
