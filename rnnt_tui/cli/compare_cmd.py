"""`rnnt-tui compare`: every component on NeMo/PyTorch and on a candidate runtime, same inputs, diffs and timings;
`--sweep` repeats it on every Core ML compute unit."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from rnnt_tui.cli import options
from rnnt_tui.cli.common import (
    audio_path,
    check_markdown,
    checkpoint_path,
    emit_json,
    emitter,
    err,
    guard,
    out,
    status,
    write_markdown,
)
from rnnt_tui.exit_codes import exit_code_for, sweep_exit_code
from rnnt_tui.formatting import num


@click.command()
@click.argument("checkpoint", required=False)
@click.argument("audio", required=False)
@options.against()
@options.compute_units
@click.option("--sweep", is_flag=True, help="Core ML: compare on all four compute units, one row per unit.")
@click.option("--drift", is_flag=True, help="Core ML (implies --sweep): for each component out of tolerance on a "
              "unit, search the first op that drifts from CPU_ONLY (coremltools' MLModelComparator).")
@options.precision
@click.option("--weights", type=click.Choice(("int8", "palettize6", "palettize4")), default=None,
              help="Core AI: compress the converted weights with coreai-opt (int8, 6- or 4-bit palettes; not the "
                   "preprocessor); looser tolerances for compressed weights.")
@options.packages
@options.runs
@options.warmup
@options.threads
@options.atol
@options.rtol
@options.joint_mode
@options.joint_chunk
@options.json_mode
@click.option("--markdown", type=click.Path(dir_okay=False), default=None, help="Also write the report as Markdown.")
def compare(checkpoint: str | None, audio: str | None, against: str, compute_units: str, sweep: bool, precision: str,
            packages: str | None, runs: int, warmup: int, atol: str, rtol: str, joint_mode: str, joint_chunk: int,
            json_mode: bool, markdown: str | None, drift: bool = False, weights: str | None = None) -> None:
    """Compare every component of CHECKPOINT on AUDIO: NeMo/PyTorch vs the candidate runtime."""
    sweep = sweep or drift
    if sweep and against != "coreml":
        raise click.UsageError("--sweep compares Core ML compute units: use it with --against coreml")
    if weights and (against != "coreai" or packages):
        raise click.UsageError("--weights compresses the tool's own Core AI conversion: use it with --against coreai "
                               "and no --packages (`convert --weights` compresses Core ML packages)")
    settings = options.settings(runs, warmup, joint_mode, precision, atol, rtol, joint_chunk)

    def body() -> int:
        from rnnt_tui.core.options import RuntimeOptions
        from rnnt_tui.core.pipeline.driver import run_steps
        from rnnt_tui.core.pipeline.pipeline import open_session
        from rnnt_tui.core.pipeline.request import Request
        from rnnt_tui.core.report import Comparison, to_markdown

        check_markdown(markdown)
        request = Request(checkpoint_path(checkpoint), audio_path(audio), against,
                          RuntimeOptions(precision=precision, compute_units=compute_units, packages_dir=packages,
                                         weights=weights),
                          settings)
        with status(json_mode) as progress:
            emit = emitter(progress)
            session = open_session(request, emit)
            run_steps(session, emit=emit)  # the reference runs even when the candidate cannot (README)
            comparison = Comparison.of(session)
            report = comparison.to_json()
            if sweep and session.candidate_unavailable is None:
                return _sweep(session, report, json_mode, progress, markdown, drift)
        print_packages(session, json_mode)
        if markdown:
            write_markdown(markdown, to_markdown(report))
        if json_mode:
            emit_json({**report, "sweep": None} if sweep else report)
        else:
            if weights:
                from rnnt_tui.core.coreai.weights import DESCRIPTION

                out.print(f"Core AI weights: {DESCRIPTION[weights]}; the preprocessor is not compressed; "
                          "tolerances for compressed weights")
            show_comparison(comparison, report)
        say_why_not(comparison)
        print_failures(report)
        return exit_code_for(report["status"])

    guard(body)


def show_comparison(comparison: Any, report: dict[str, Any]) -> None:
    """The comparison's tables (the reference's alone when the candidate did not run), then, when the candidate
    did not run, what preparing it did and why it did not run (`comparison`: a `core.report.Comparison`, the
    object `report` was made from)."""
    from rnnt_tui.cli.render import diffs_table, fuse_table, shapes_table, timings_table, transcripts

    if comparison.results:
        for renderable in (fuse_table(comparison), shapes_table(comparison), timings_table(comparison),
                           diffs_table(comparison), transcripts(comparison)):
            out.print(renderable)
    if comparison.candidate_reason is not None:
        out.print(prepare_table(report))


def say_why_not(comparison: Any) -> None:
    """On stderr, JSON or not: why the candidate did not run (exit 3 or 4 say that something did not)."""
    note = comparison.candidate_reason
    if note is not None:
        verdict = "could not be prepared" if comparison.status == "failed" else "cannot run here"
        err.print(f"[bold yellow]{comparison.candidate_label or 'the candidate'} {verdict}:[/] {note}")


def print_packages(session: Any, json_mode: bool) -> None:
    """A package runtime's inventory (every package in the folder: what it was mapped to, or why it was skipped)
    on stdout with the tables, and its warnings on stderr (the JSON report holds both)."""
    candidate = session.candidate
    if candidate is None:
        return
    for warning in candidate.warnings:
        err.print(f"[yellow]warning:[/] {warning}", markup=True, highlight=False)
    inventory = candidate.inventory
    if json_mode or not inventory:
        return
    table = Table(title=f"{candidate.label}: packages", title_justify="left")
    table.add_column("package")
    for entry in inventory:
        table.add_row(entry.line())
    out.print(table)


def print_failures(report: dict[str, Any]) -> None:
    """One stderr line per failed step, and the cache's note if it could not be used (exit 4 names the error),
    read from the report (`core.report.build_report`)."""
    prepared = (report.get("candidate") or {}).get("prepare", [])
    for note in sorted({n for r in prepared for n in r["notes"] if "without a cache" in n}):
        err.print(f"[yellow]note:[/] {note}")
    steps = [*report["components"], *([{"name": "decode", **report["decode"]}] if report.get("decode") else [])]
    for step in steps:
        if step.get("status") == "failed":
            err.print(f"[bold red]failed:[/] {step['name']}: {step.get('error')}")


def prepare_table(report: dict[str, Any]) -> Table:
    candidate = report.get("candidate") or {}
    table = Table(title=f"{candidate.get('label')}: prepared (not run)", title_justify="left")
    for col in ("component", "action", "prepare ms", "cached", "artifact", "notes"):
        table.add_column(col)
    for rep in candidate.get("prepare", []):
        table.add_row(rep["component"], rep["action"], num(rep["prepare_ms"]), "yes" if rep["cached"] else "no",
                      str(rep["artifact"] or "-"),
                      "; ".join(n for n in rep["notes"] if n != candidate.get("reason"))[:200])
    return table


def _sweep(session: Any, report: dict[str, Any], json_mode: bool, progress: Any, markdown: str | None,
           drift: bool = False) -> int:
    from rnnt_tui.cli.sweep_details import print_sweep_details
    from rnnt_tui.core.report import sweep_markdown, to_markdown
    from rnnt_tui.core.sweep import sweep as run_sweep

    rows = run_sweep(session, emit=emitter(progress), drift=drift)
    code = sweep_exit_code([str(r.status) for r in rows])
    if markdown:
        write_markdown(markdown, to_markdown(report) + sweep_markdown([r.to_json() for r in rows]))
    if json_mode:
        emit_json({**report, "sweep": [r.to_json() for r in rows]})
        return code
    table = Table(title="Compute-unit sweep", title_justify="left")
    for col in ("compute units", "status", "component", "load ms (cold / cached)", "median ms", "p90 ms", "speedup",
                "worst max abs"):
        table.add_column(col)
    for row in rows:
        if not row.components:
            table.add_row(row.compute_units, str(row.status), "-", "-", "-", "-", "-", row.error or "-")
        for name, comp in row.components.items():
            load = row.loads.get(name, {})
            table.add_row(row.compute_units, str(row.status), name,
                          f"{num(load.get('cold_ms', comp.get('load_ms')))} / {num(load.get('cached_open_ms'))}",
                          num(comp.get("median_ms")), num(comp.get("p90_ms")), num(comp.get("speedup")),
                          num(comp.get("worst_max_abs")) if not comp.get("error") else comp["error"])
    out.print(table)
    print_sweep_details(rows)
    for row in rows:
        if row.error and row.status != "unavailable":
            err.print(f"[bold red]{row.compute_units}:[/] {row.error}")
    return code
