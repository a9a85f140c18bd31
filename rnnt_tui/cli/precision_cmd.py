"""`rnnt-tui precision` and `rnnt-tui lint`: fp16 / compressed-weight certification from the command line.

`precision CKPT [CLIP]` runs the candidate (the tool's own fp16 conversion, `--precision mixed`, `--weights`, or
`--packages DIR`) beside the tool's fp32 conversion in the MIL interpreter and prints the hazards (each op with its
NeMo module), the lint findings, the decode check and the flexible-dimension edge sweep. `--against coreai`
certifies the Core AI fp16 conversion instead, on Apple's Core AI runtime against PyTorch fp32
(`core.precision.coreai`): hazards with the op, NeMo module and PyTorch line, and the decode check.
`lint PACKAGE_OR_DIR` reads packages without a clip. Text goes to stdout, progress and errors to stderr; `--json`
prints the report's `to_json`. Exit: 0 ok, 1 hazards found (non-finite output, decode differs, an edge fails or
drifts, a lint error), 2 bad input, 3 Core AI cannot run here, 4 something could not be analysed (the rest of the
report is still printed).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.table import Table

from rnnt_tui.cli.common import audio_path, checkpoint_path, emit_json, err, guard, out, status
from rnnt_tui.core.errors import RuntimeUnavailableError
from rnnt_tui.exit_codes import ExitCode
from rnnt_tui.formatting import num

LABEL = "Core ML program, MIL interpreter"
WEIGHT_CHOICES = ("int8", "palettize6", "palettize4")
TOP_HAZARDS = 10


@contextmanager
def _numpy_quiet() -> Iterator[None]:
    """fp16 overflow is what the analysis looks for: numpy's warnings about it are not news to the user."""
    import numpy as np

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _exit(status_text: str) -> int:
    return {"ok": ExitCode.OK, "hazards": ExitCode.MISMATCH}.get(status_text, ExitCode.FAILED)


def _hazard_tables(report: Any) -> None:
    for comp in report.hazards:
        if comp.error:
            err.print(f"[bold red]{comp.component}:[/] {comp.error}", markup=True, highlight=False)
            continue
        title = (f"{comp.component} ({comp.label}): max |Δ| {num(comp.max_diff)} of range {num(comp.output_range)}"
                 f" ({num(comp.relative_diff)} relative), finite {num(comp.finite)}")
        if not comp.hazards:
            out.print(f"{title}: no hazards")
            continue
        table = Table(title=title, title_justify="left")
        sources = any(h.source for h in comp.hazards)
        for col in ("kind", "op", "type", "NeMo module", *(("PyTorch line",) if sources else ()), "detail", "effect"):
            table.add_column(col, no_wrap=col not in ("detail", "PyTorch line"))
        for h in comp.hazards[:TOP_HAZARDS]:
            table.add_row(h.kind, h.op, h.op_type, h.module, *((h.source or "",) if sources else ()), h.detail,
                          num(h.effect))
        out.print(table)
        if len(comp.hazards) > TOP_HAZARDS:
            out.print(f"  ... {len(comp.hazards) - TOP_HAZARDS} more (--json lists all)")
        if comp.first_nonfinite:
            out.print(f"  first NaN/Inf: {comp.first_nonfinite.op} ({comp.first_nonfinite.module})")
        if comp.first_drift:
            where = f" at {comp.first_drift.source}" if comp.first_drift.source else ""
            out.print(f"  first drift: {comp.first_drift.op} ({comp.first_drift.module}){where}: "
                      f"{comp.first_drift.detail}")


def _edge_table(report: Any) -> None:
    for sweep in report.edges:
        if sweep.error:
            err.print(f"[bold red]edge sweep, {sweep.component}:[/] {sweep.error}", markup=True, highlight=False)
            continue
        table = Table(title=f"Edge sweep: {sweep.component} ({LABEL})", title_justify="left")
        for col in ("axis", "length", "seconds", "status", "max |Δ| vs NeMo", "detail"):
            table.add_column(col)
        for p in sweep.points:
            table.add_row(p.axis, str(p.length), num(p.seconds), p.status, num(p.max_diff), p.detail)
        out.print(table)


def _lint_tables(reports: Any) -> None:
    for report in reports:
        if report.error:
            err.print(f"[bold red]lint:[/] {report.error}", markup=True, highlight=False)
            continue
        dtypes = ", ".join(f"{k} {v}" for k, v in sorted(report.compute_dtypes.items())) or "none"
        meant = f"; meant for {report.intended_units}" if report.intended_units else ""
        table = Table(title=f"Lint: {report.path.name} ({report.ops} ops; compute: {dtypes}{meant})",
                      title_justify="left", caption=report.intended_why)
        for col in ("severity", "check", "op", "NeMo module", "message"):
            table.add_column(col, no_wrap=col != "message")
        for f in report.findings:
            table.add_row(f.severity, f.check, f.op or "", f.module or "", f.message)
        out.print(table)


def _check_options(against: str, precision: str, components: tuple[str, ...], packages: str | None,
                   weights: str | None) -> None:
    """Options that do not go together: a usage error (exit 2) before anything runs. What Core AI refuses, and
    its words, are the app's too (`core.precision.refusals`)."""
    from rnnt_tui.core.precision.refusals import certification_problem

    problem = certification_problem(against, precision, weights, packages)
    if problem is not None:
        raise click.UsageError(problem)
    if components and against != "coreai":
        raise click.UsageError("--component chooses Core AI components: use it with --against coreai")


def _status_line(report: Any) -> str:
    """The verdict with what it counts, so a listed row never contradicts it."""
    listed = sum(len(c.hazards) for c in report.hazards)
    failing = len(report.failing_hazards)
    lint_failing = sum(r.count("error") + r.count("warning") for r in report.lint)
    return (f"status: {report.status} ({failing} range hazard(s) of {listed} listed; the rest are drift / underflow "
            f"observations, which do not fail; {lint_failing} lint error(s) or warning(s))")


@click.command()
@click.argument("checkpoint", required=False)
@click.argument("clip", required=False)
@click.option("--against", type=click.Choice(("mil", "coreai")), default="mil", show_default=True,
              help="mil: Core ML programs in the MIL interpreter; coreai: the Core AI fp16 assets on Apple's runtime.")
@click.option("--precision", type=click.Choice(("fp16", "mixed", "fp16-all")), default="fp16", show_default=True,
              help="The tool's own conversion to certify (fp16-all: coremltools' fp16 with no exceptions).")
@click.option("--component", "components", multiple=True, type=click.Choice(("encoder", "decoder", "joint")),
              help="coreai: analyse only these components (repeatable; default all three, the encoder is slow).")
@click.option("--packages", type=click.Path(file_okay=False), default=None,
              help="Certify this folder of .mlpackage files instead of the tool's own conversion.")
@click.option("--weights", type=click.Choice(WEIGHT_CHOICES), default=None,
              help="Compress the candidate's weights first (int8, 6- or 4-bit palettes).")
@click.option("--max-seconds", type=click.FloatRange(0.5, 3600), default=60.0, show_default=True,
              help="Longest audio the edge sweep runs (longer bounds are listed as skipped).")
@click.option("--no-edges", is_flag=True, help="Skip the flexible-dimension edge sweep.")
@click.option("--json", "json_mode", is_flag=True, help="Machine-readable output on stdout.")
def precision(checkpoint: str | None, clip: str | None, against: str, precision: str, components: tuple[str, ...],
              packages: str | None, weights: str | None, max_seconds: float, no_edges: bool, json_mode: bool) -> None:
    """fp16 / compressed-weight hazards, lint, decode check and edge sweep of CHECKPOINT's Core ML programs (or,
    with --against coreai, its Core AI fp16 assets)."""
    _check_options(against, precision, components, packages, weights)

    def body() -> int:
        from rnnt_tui.core.checkpoint import restore
        from rnnt_tui.core.errors import BadInputError

        path, audio = checkpoint_path(checkpoint), audio_path(clip)
        if not path.is_file():
            raise BadInputError(path, "no such checkpoint file")
        if not audio.is_file():
            raise BadInputError(audio, "no such audio file")
        with status(json_mode) as progress, _numpy_quiet():
            from rnnt_tui.core.precision.certify import certify

            if against == "coreai":
                from rnnt_tui.core.coreai.platform import coreai_problem

                problem = coreai_problem(need_converter=True)
                if problem is not None:
                    raise RuntimeUnavailableError(problem)
            progress(f"Restoring {path.name} through NeMo", None)
            loaded = restore(path)
            if against == "coreai":
                from rnnt_tui.core.precision.coreai import FP16_COMPONENTS, certify_coreai

                report = certify_coreai(loaded, audio, components=components or FP16_COMPONENTS, progress=progress)
            else:
                report = certify(loaded, audio, packages=packages, precision=precision, weights=weights,
                                 max_seconds=max_seconds, edges=not no_edges, progress=progress)
        if json_mode:
            emit_json(report.to_json())
            return _exit(report.status)
        reference = "PyTorch fp32 (NeMo's modules)" if against == "coreai" else "the fp32 programs"
        out.print(f"Precision report ({report.label}): {report.candidate} vs {reference}, clip {report.clip}")
        for line in report.notes:
            out.print(f"note: {line}")
        for line in report.errors:
            err.print(f"[bold red]error:[/] {line}", markup=True, highlight=False)
        for component, kept in report.fp32_ops.items():
            if kept:
                out.print(f"{component}: {len(kept)} ops kept in fp32 by the conversion: "
                          + ", ".join(f"{k['name']} ({k['reason']})" for k in kept))
        _hazard_tables(report)
        if report.decode is not None:
            d = report.decode
            through = "the fp16 assets" if against == "coreai" else "the programs"
            out.print(f"Decode through {through}: identical {num(d.identical)}, token agreement "
                      f"{num(d.token_agreement)}, joint argmax agreement {num(d.joint_argmax_agreement)}")
        _lint_tables(report.lint)
        _edge_table(report)
        out.print(_status_line(report))
        return _exit(report.status)

    guard(body)


@click.command()
@click.argument("target", metavar="PACKAGE_OR_DIR")
@click.option("--json", "json_mode", is_flag=True, help="Machine-readable output on stdout.")
def lint(target: str, json_mode: bool) -> None:
    """Static lint of Core ML packages: NE limits, flexible shapes, fp16 constants and integer arithmetic."""
    def body() -> int:
        from rnnt_tui.core.precision.lint import lint as run_lint

        with _numpy_quiet():
            reports = run_lint(target)
        if json_mode:
            emit_json({"packages": [r.to_json() for r in reports]})
        else:
            _lint_tables(reports)
        if any(r.error for r in reports):
            return ExitCode.FAILED
        return ExitCode.MISMATCH if any(r.failing for r in reports) else ExitCode.OK

    guard(body)
