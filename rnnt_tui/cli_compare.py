"""The headless `compare`, `convert` and `cache` commands (see cli.py for the entry point and exit codes)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from rnnt_tui.cli_render import num
from rnnt_tui.exit_codes import ExitCode


def _cli() -> object:
    from rnnt_tui import cli

    return cli


def _check_against(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    from rnnt_tui.core.runtimes import RUNTIMES

    if value not in RUNTIMES or value == "pytorch":
        raise click.BadParameter(f"{value!r} is not a candidate runtime; choose one of "
                                 f"{', '.join(n for n in RUNTIMES if n != 'pytorch')}")
    return value


@click.command()
@click.argument("checkpoint", required=False)
@click.argument("audio", required=False)
@click.option("--against", required=True, callback=_check_against, metavar="{onnx,coreml}",
              help="The candidate runtime.")
@click.option("--compute-units", type=click.Choice(["CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL"]),
              default="CPU_ONLY", show_default=True, help="Core ML compute units.")
@click.option("--sweep", is_flag=True, help="Core ML: compare on all four compute units, one row per unit.")
@click.option("--precision", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True,
              help="Core ML conversion precision (also picks the default tolerances).")
@click.option("--packages", type=click.Path(file_okay=False), default=None,
              help="Core ML: a folder of existing .mlpackage/.mlmodelc files to use instead of converting.")
@click.option("--runs", type=click.IntRange(1, 1000), default=5, show_default=True)
@click.option("--warmup", type=click.IntRange(0, 1000), default=1, show_default=True)
@click.option("--atol", default="", help="Absolute tolerance: one value, or per component: encoder=1e-2,joint=5e-2.")
@click.option("--rtol", default="", help="Relative tolerance, same form as --atol.")
@click.option("--joint-mode", type=click.Choice(["validation", "as-saved"]), default="validation", show_default=True)
@click.option("--joint-chunk", type=click.IntRange(0, 100000), default=32, show_default=True,
              help="Frames per joint chunk; 0 = the whole T x U grid at once.")
@click.option("--json", "json_mode", is_flag=True, help="The full report as JSON on stdout.")
@click.option("--markdown", type=click.Path(dir_okay=False), default=None, help="Also write the report as Markdown.")
def compare(checkpoint: str | None, audio: str | None, against: str, compute_units: str, sweep: bool, precision: str,
            packages: str | None, runs: int, warmup: int, atol: str, rtol: str, joint_mode: str, joint_chunk: int,
            json_mode: bool, markdown: str | None) -> None:
    """Compare every component of CHECKPOINT on AUDIO: NeMo/PyTorch vs ONNX Runtime or Core ML."""
    cli = _cli()

    def body() -> int:
        from rnnt_tui.cli_render import diffs_table, fuse_table, shapes_table, timings_table, transcripts
        from rnnt_tui.core.report import STATUS_OK, STATUS_UNAVAILABLE, build_report, to_markdown
        from rnnt_tui.core.runtimes.base import RuntimeOptions
        from rnnt_tui.core.workflow import open_session

        options = RuntimeOptions(precision=precision, compute_units=compute_units, packages_dir=packages)
        settings = cli._settings(runs, warmup, joint_mode, precision, atol, rtol, joint_chunk)  # type: ignore[attr-defined]
        with cli._status(json_mode) as progress:  # type: ignore[attr-defined]
            session = open_session(cli._checkpoint(checkpoint), cli._audio(audio), against, options,  # type: ignore[attr-defined]
                                   settings, progress)
            if session.candidate_unavailable is None:
                session.run_all(progress)
        report = build_report(session)
        if markdown:
            Path(markdown).write_text(to_markdown(report))
        if sweep:
            return _sweep(session, json_mode, report)
        if json_mode:
            cli._emit_json(report)  # type: ignore[attr-defined]
        elif session.candidate_unavailable is None:
            for renderable in (fuse_table(session), shapes_table(session), timings_table(session),
                               diffs_table(session), transcripts(session)):
                cli.out.print(renderable)  # type: ignore[attr-defined]
        else:
            cli.out.print(_prepare_table(report))  # type: ignore[attr-defined]
        if report["status"] == STATUS_UNAVAILABLE:
            cli.err.print(f"[bold yellow]{session.candidate.label if session.candidate else against} cannot run "  # type: ignore[attr-defined]
                          f"here:[/] {session.candidate_unavailable}")
            return ExitCode.UNAVAILABLE
        _print_failures(session)
        if report["status"] == "failed":
            return ExitCode.FAILED
        return ExitCode.OK if report["status"] == STATUS_OK else ExitCode.MISMATCH

    sys.exit(cli._guard(body))  # type: ignore[attr-defined]


def _print_failures(session: object) -> None:
    """One stderr line per failed step, and the cache's note if it could not be used (exit 4 names the error)."""
    from rnnt_tui.core.results import FAILED

    cli = _cli()
    reports = getattr(session, "prepare_reports", {}).get("candidate", {})
    for note in sorted({n for r in reports.values() for n in r.notes if "without a cache" in n}):
        cli.err.print(f"[yellow]note:[/] {note}")  # type: ignore[attr-defined]
    for name, result in getattr(session, "results", {}).items():
        if result.status == FAILED:
            cli.err.print(f"[bold red]failed:[/] {name}: {result.error}")  # type: ignore[attr-defined]


def _prepare_table(report: dict[str, object]) -> Table:
    candidate = report.get("candidate") or {}
    assert isinstance(candidate, dict)
    table = Table(title=f"{candidate.get('label')}: prepared (not run)", title_justify="left")
    for col in ("component", "action", "prepare ms", "cached", "artifact", "notes"):
        table.add_column(col)
    for rep in candidate.get("prepare", []):
        table.add_row(rep["component"], rep["action"], num(rep["prepare_ms"]), "yes" if rep["cached"] else "no",
                      str(rep["artifact"] or "-"),
                      "; ".join(n for n in rep["notes"] if n != candidate.get("reason"))[:200])
    return table


def _sweep(session: object, json_mode: bool, report: dict[str, object]) -> int:
    from rnnt_tui.core.sweep import sweep as run_sweep

    cli = _cli()
    if session.candidate is None or session.candidate.name != "coreml":  # type: ignore[attr-defined]
        raise click.UsageError("--sweep compares Core ML compute units: use it with --against coreml")
    if session.candidate_unavailable:  # type: ignore[attr-defined]
        if json_mode:
            cli._emit_json({**report, "sweep": None})  # type: ignore[attr-defined]
        cli.err.print(f"[bold yellow]Core ML cannot run here:[/] {session.candidate_unavailable}")  # type: ignore[attr-defined]
        return ExitCode.UNAVAILABLE
    rows = run_sweep(session)  # type: ignore[arg-type]
    if json_mode:
        cli._emit_json({**report, "sweep": [r.to_json() for r in rows]})  # type: ignore[attr-defined]
        return ExitCode.OK
    table = Table(title="Compute-unit sweep", title_justify="left")
    for col in ("compute units", "status", "component", "load ms", "median ms", "p90 ms", "speedup", "worst max abs"):
        table.add_column(col)
    for row in rows:
        for name, comp in row.components.items():
            table.add_row(row.compute_units, row.status, name, num(comp["load_ms"]), num(comp["median_ms"]),
                          num(comp["p90_ms"]), num(comp["speedup"]), num(comp["worst_max_abs"]))
    cli.out.print(table)  # type: ignore[attr-defined]
    return ExitCode.OK


@click.command()
@click.argument("checkpoint", required=False)
@click.option("--precision", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="coreml-packages", show_default=True,
              help="Folder for the .mlpackage files (created; existing packages of the same name are replaced).")
@click.option("--max-frames", type=click.IntRange(16, 100000), default=None,
              help="Upper bound of the flexible encoder time axis, in encoder frames.")
@click.option("--target", "deployment_target", default="macOS14", show_default=True,
              help="Minimum deployment target (macOS13, macOS14, macOS15, iOS17, ...).")
@click.option("--json", "json_mode", is_flag=True)
def convert(checkpoint: str | None, precision: str, out_dir: str, max_frames: int | None, deployment_target: str,
            json_mode: bool) -> None:
    """Convert CHECKPOINT's components to Core ML packages (works on Linux too)."""
    cli = _cli()

    def body() -> int:
        from rnnt_tui.core.coreml.convert import write_packages

        with cli._status(json_mode) as progress:  # type: ignore[attr-defined]
            packages = write_packages(cli._checkpoint(checkpoint), Path(out_dir), precision=precision,  # type: ignore[attr-defined]
                                      max_frames=max_frames, minimum_deployment_target=deployment_target,
                                      progress=progress)
        rows = [p.to_json() for p in packages]
        if json_mode:
            cli._emit_json(rows)  # type: ignore[attr-defined]
        else:
            table = Table(title=f"Core ML packages ({precision}) in {out_dir}", title_justify="left")
            for col in ("component", "package", "seconds", "cached"):
                table.add_column(col)
            for row in rows:
                table.add_row(str(row.get("component")), str(row.get("path")), num(row.get("seconds")),
                              "yes" if row.get("cached") else "no")
            cli.out.print(table)  # type: ignore[attr-defined]
        return ExitCode.OK

    sys.exit(cli._guard(body))  # type: ignore[attr-defined]


@click.command()
@click.argument("action", type=click.Choice(["list", "clear"]), default="list")
@click.option("--json", "json_mode", is_flag=True)
def cache(action: str, json_mode: bool) -> None:
    """List or clear cached exports and conversions."""
    from rnnt_tui.core.cache import ArtifactCache

    cli = _cli()
    store = ArtifactCache()
    if action == "clear":
        removed = store.clear()
        cli.err.print(f"removed {removed} entries from {store.root}")  # type: ignore[attr-defined]
        sys.exit(ExitCode.OK)
    entries = store.entries()
    if json_mode:
        cli._emit_json([{"key": e.key, "path": str(e.path), "size_bytes": e.size_bytes, "meta": e.meta}  # type: ignore[attr-defined]
                        for e in entries])
        sys.exit(ExitCode.OK)
    table = Table(title=f"Cache: {store.root}", title_justify="left")
    for col in ("key", "runtime", "component", "checkpoint", "size MB", "state"):
        table.add_column(col)
    for e in entries:
        meta = e.meta
        table.add_row(e.key[:12], str(meta.get("runtime", "-")), str(meta.get("component", "-")),
                      str(meta.get("checkpoint", "-"))[-40:], f"{e.size_bytes / 1e6:.1f}",
                      "corrupt" if meta.get("corrupt") else "ok")
    cli.out.print(table)  # type: ignore[attr-defined]
    sys.exit(ExitCode.OK)
