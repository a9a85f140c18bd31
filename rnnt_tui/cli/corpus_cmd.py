"""`rnnt-tui corpus` (score a candidate against NeMo over a manifest, resumably) and `rnnt-tui corpus-report`
(rebuild or merge the reports from results files).

Rendering only: the run is `core.corpus.runner.run_corpus`'s events, the figures are `core.corpus.report`'s.
Data (tables, or the report's JSON with --json) goes to stdout; progress with an ETA goes to an interactive
stderr, diagnostics to stderr. Exit codes: 0 ok, 1 a gate breached, 2 nothing could be evaluated (bad input),
3 the candidate cannot run here, 4 failed, 130 interrupted (what finished is kept; --resume continues).
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from rnnt_tui.cli import options
from rnnt_tui.cli.common import checkpoint_path, emit_json, err, guard, out
from rnnt_tui.exit_codes import ExitCode
from rnnt_tui.formatting import num


def _gates(max_wer_delta: float | None, min_qoi: float | None, min_identical: float | None,
           max_out_of_tolerance: int) -> Any:
    from rnnt_tui.core.corpus.aggregate import Gates

    return Gates(max_wer_delta, min_qoi, min_identical, max_out_of_tolerance)


def gate_options(fn: Any) -> Any:
    for option in reversed((
            click.option("--max-wer-delta", type=float, default=None,
                         help="Gate: exit 1 if candidate WER minus reference WER (a fraction: 0.005 = half a point) "
                              "is above this."),
            click.option("--min-qoi", type=click.FloatRange(0, 1), default=None,
                         help="Gate: exit 1 if the share of utterances (with text) whose candidate WER is no worse "
                              "than the reference's is below this."),
            click.option("--min-identical", type=click.FloatRange(0, 1), default=None,
                         help="Gate: exit 1 if the share of utterances decoded identically, token for token, is "
                              "below this."),
            click.option("--max-out-of-tolerance", type=click.IntRange(0), default=0, show_default=True,
                         help="Gate: exit 1 if more utterances than this are out of tolerance (a step outside its "
                              "tolerance or the decode diverging: what `compare` on that clip calls a mismatch)."))):
        fn = option(fn)
    return fn


@click.command()
@click.argument("checkpoint", required=False)
@click.argument("manifest", required=False)
@options.against()
@options.compute_units
@options.precision
@options.packages
@click.option("--runs", type=click.IntRange(1, 1000), default=1, show_default=True, help="Timed runs per component.")
@click.option("--warmup", type=click.IntRange(0, 1000), default=0, show_default=True, help="Untimed warm-ups.")
@options.atol
@options.threads
@options.rtol
@options.joint_mode
@options.joint_chunk
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N manifest entries.")
@click.option("--shard", default=None, metavar="I/N", help="This process's share of the entries (I of N, 1-based).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output folder for results.jsonl and the reports [default: ./corpus-<manifest>-<runtime>].")
@click.option("--resume", is_flag=True, help="Continue the run in --out: skip what is recorded, never duplicate.")
@click.option("--stream", "stream_mode", is_flag=True,
              help="Score streaming transcripts (cache-aware models; any candidate `stream` takes): NeMo's chunked "
                   "loop vs the candidate's streaming step per utterance, against NeMo streaming and NeMo offline.")
@click.option("--att-context", default=None, metavar="L,R|all",
              help="With --stream: the att context (one the model was trained with) or 'all' (a row per lookahead).")
@click.option("--cache-states", "cache_states", is_flag=True,
              help="With --stream and --against mil or coreml: the streaming step carries its caches in Core ML "
                   "states (ct.StateType, a macOS 15 program) instead of as inputs and outputs.")
@options.subset
@options.rest
@options.json_mode
@gate_options
def corpus(checkpoint: str | None, manifest: str | None, against: str, compute_units: str, precision: str,
           packages: str | None, runs: int, warmup: int, atol: str, rtol: str, joint_mode: str, joint_chunk: int,
           limit: int | None, shard: str | None, out_dir: str | None, resume: bool, stream_mode: bool,
           att_context: str | None, cache_states: bool, subset_spec: str | None, rest: str, json_mode: bool,
           max_wer_delta: float | None, min_qoi: float | None,
           min_identical: float | None, max_out_of_tolerance: int) -> None:
    """Compare CHECKPOINT on every clip of MANIFEST (a NeMo manifest, a folder of audio files or a text file of
    paths): NeMo/PyTorch vs the candidate runtime, WER/CER against the manifest text, QoI, drift per component."""
    from rnnt_tui.core.corpus.manifest import Shard

    settings = options.settings(runs, warmup, joint_mode, precision, atol, rtol, joint_chunk)
    try:
        parsed_shard = Shard.parse(shard) if shard else None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    subset = options.parse_subset(subset_spec, rest, against, stream_mode)
    gates = _gates(max_wer_delta, min_qoi, min_identical, max_out_of_tolerance)
    if att_context is not None and not stream_mode:
        raise click.UsageError("--att-context needs --stream")
    if cache_states and not stream_mode:
        raise click.UsageError("--cache-states is for the streaming step: it needs --stream")

    def body() -> int:
        from rnnt_tui.core.corpus import demo_manifest
        from rnnt_tui.core.corpus.runner import CorpusRequest
        from rnnt_tui.core.options import RuntimeOptions

        manifest_path = Path(manifest).expanduser() if manifest else demo_manifest()
        target = Path(out_dir).expanduser() if out_dir else \
            _default_out(manifest_path, against + ("-stream" if stream_mode else "")
                         + ("-states" if cache_states else "")
                         + (f"-{subset.kind}{subset.count}-{rest}" if subset else ""), parsed_shard)
        if stream_mode:  # before NeMo and before --out is made: a checkpoint that cannot stream, a bad context
            from rnnt_tui.core.stream.precheck import check_streaming_checkpoint

            check_streaming_checkpoint(checkpoint_path(checkpoint), att_context)
        request = CorpusRequest(checkpoint_path(checkpoint), manifest_path, against, target,
                                RuntimeOptions(precision=precision, compute_units=compute_units,
                                               packages_dir=packages),
                                settings, limit, parsed_shard, resume, gates, stream_mode, att_context, subset,
                                cache_states=cache_states)
        return _run(request, json_mode)

    guard(body)


def _default_out(manifest: Path, against: str, shard: Any) -> Path:
    stem = manifest.name if manifest.is_dir() else manifest.stem
    suffix = f"-shard{shard.number}of{shard.count}" if shard else ""
    return Path.cwd() / f"corpus-{stem}-{against}{suffix}"


def _progress_bar(json_mode: bool) -> AbstractContextManager[Progress | None]:
    if json_mode or not err.is_terminal:
        return nullcontext(None)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=err, transient=True)


def _run(request: Any, json_mode: bool) -> int:
    from rnnt_tui.core.corpus import runner
    from rnnt_tui.core.pipeline import events

    cancel = threading.Event()
    finished: runner.CorpusFinished | None = None
    with _progress_bar(json_mode) as bar:
        task = bar.add_task("reading the manifest", total=None) if bar is not None else None
        try:
            for event in runner.run_corpus(request, cancel):
                if isinstance(event, runner.CorpusPlanned):
                    if bar is not None and task is not None:
                        bar.update(task, total=event.total, completed=event.done)
                    if event.done:
                        err.print(f"resuming: {event.done} of {event.total} already recorded in {event.out_dir}")
                    if event.estimate:
                        err.print(event.estimate, highlight=False, markup=False)
                elif isinstance(event, events.Progress) and bar is not None and task is not None:
                    bar.update(task, description=event.text[:60])
                elif isinstance(event, events.CandidateFailed):
                    err.print(f"[bold red]{escape(event.label)} could not be prepared:[/] {escape(str(event.reason))}")
                elif isinstance(event, runner.UtteranceStarted) and bar is not None and task is not None:
                    bar.update(task, description=Path(event.audio).name[:40])
                elif isinstance(event, runner.UtteranceFinished):
                    if bar is not None and task is not None:
                        bar.update(task, completed=event.position)
                    if event.note:
                        err.print(event.note, highlight=False, markup=False)
                    record = event.record
                    if record.status != "ok":
                        where = f"{request.manifest}:{record.line}" + \
                            (f" ({Path(record.audio).name})" if record.stage != "manifest" and record.audio else "")
                        err.print(f"[yellow]{escape(where)}:[/] {record.status} ({record.stage}): "
                                  f"{escape(str(record.error))}", markup=True, highlight=False)
                elif isinstance(event, runner.CorpusFinished):
                    finished = event
        except KeyboardInterrupt:
            cancel.set()
            err.print(f"interrupted: what finished is in {request.out_dir / 'results.jsonl'}; add --resume to "
                      "continue")
            return ExitCode.INTERRUPTED
    assert finished is not None
    code = show_report(request.out_dir, json_mode)
    err.print(f"results and reports: {request.out_dir}")
    return ExitCode.INTERRUPTED if finished.interrupted else code


def show_report(out_dir: Path, json_mode: bool) -> int:
    """Print the report written in `out_dir` and return the exit code its figures and gates give."""
    import json

    from rnnt_tui.core.corpus.report import REPORT_JSON

    report = json.loads((out_dir / REPORT_JSON).read_text(encoding="utf-8"))
    if json_mode:
        emit_json(report)
    else:
        for table in _tables(report):
            out.print(table)
    for sentence in report["gates"]["breached"]:
        err.print(f"[bold red]gate breached:[/] {sentence}")
    return exit_code(report)


def exit_code(report: dict[str, Any]) -> int:
    summary = report["summary"]
    if summary["evaluated"] == 0:
        return ExitCode.FAILED if summary["failed"] else ExitCode.BAD_INPUT
    return ExitCode.MISMATCH if report["gates"]["breached"] else ExitCode.OK


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def _tables(report: dict[str, Any]) -> list[Table]:
    from rnnt_tui.core.corpus.report import candidate_column
    from rnnt_tui.core.corpus.subset import ran_on

    run, s = report["run"], report["summary"]
    where = f"; {run['candidate_label']} ran on {run['runs_on']}" if run.get("runs_on") else ""
    head = Table(title=f"Corpus: {s['evaluated']} of {s['utterances']} utterances evaluated "
                       f"({s['errors']} bad input, {s['failed']} failed{where})", title_justify="left")
    reference = "NeMo streaming" if run.get("stream") else "NeMo / PyTorch"
    for col in ("figure", reference, candidate_column(run, s), "Δ"):
        head.add_column(col, justify="left" if col == "figure" else "right")
    head.add_row("WER", _pct(s["wer"]["reference"]), _pct(s["wer"]["candidate"]), _pct(s["wer_delta"]))
    head.add_row("CER", _pct(s["cer"]["reference"]), _pct(s["cer"]["candidate"]), _pct(s["cer_delta"]))
    head.add_row("RTFx", num(s["rtfx"]["reference"]), num(s["rtfx"]["candidate"]), "")
    head.add_row(f"QoI (over {s['qoi_over']} with text)", "", _pct(s["qoi"]), "")
    head.add_row(f"identical decode (of {s['identical_over']})", "", _pct(s["identical"]), "")
    head.add_row(f"out of tolerance (of {s['evaluated']})", "", str(s["out_of_tolerance"]), "")
    resampled = ", ".join(f"{n} {name}" for name, n in sorted(s.get("resamplers", {}).items()))
    head.caption = f"audio for both runtimes and NeMo's column, by resampler: {resampled}" if resampled else None
    tables = [head, *([_candidates_table(report["candidates"])] if report.get("candidates") else [])]
    if report["drift"]:
        mixed = "; mixed: all candidates together" if report.get("candidates") else ""
        drift = Table(title=f"Drift per component (worst figure per utterance; bad-tail percentiles{mixed})",
                      title_justify="left")
        for col in ("component", "figure", "p50", "p90", "p99", "worst", "NaN"):
            drift.add_column(col, justify="left" if col in ("component", "figure") else "right")
        for component, figures in report["drift"].items():
            for name, d in figures.items():
                drift.add_row(component, name, num(d["p50"]), num(d["p90"]), num(d["p99"]), num(d["worst"]),
                              str(d["nan"]))
        tables.append(drift)
    rows = {r["uid"]: r for r in report["utterances"]}
    worst = Table(title="Worst utterances", title_justify="left")
    subset = bool(report.get("candidates"))  # --subset: two candidates ran, each row says which
    for col in ("line", "audio", "out of tolerance", "ΔWER", "identical", "divergence",
                *(("ran on",) if subset else ()), "reference", "candidate"):
        worst.add_column(col, overflow="fold")
    out_of_tolerance = {o["uid"] for o in report["out_of_tolerance_utterances"]}
    # every utterance out of tolerance is listed (they rank first), then the worst of the rest up to five rows
    for uid in report["worst"][:max(5, len(out_of_tolerance))]:
        r = rows[uid]
        worst.add_row(str(r["line"]), Path(r["audio"]).name,
                      r["out_of_tolerance_steps"] if uid in out_of_tolerance else "no", _pct(r["wer_delta"]),
                      str(r["identical"]), num(r["first_divergence"]),
                      *((ran_on(r["candidate"], r["runs_on"]) or "",) if subset else ()),
                      r["reference_text"] or "", r["candidate_text"] or "")
    tables.append(worst)
    if report.get("stream"):
        from rnnt_tui.core.stream.config import states_kind

        states = states_kind(run["against"]) if (run.get("stream") or {}).get("cache_states") else None
        tables.append(_stream_table(report["stream"], states))
    if report["problems"]:
        problems = Table(title=f"Not evaluated ({len(report['problems'])})", title_justify="left")
        for col in ("line", "audio", "status", "problem"):
            problems.add_column(col, overflow="fold")
        for p in report["problems"][:20]:
            problems.add_row(str(p["line"]), p["audio"], f"{p['status']} ({p['stage']})", p["error"] or "")
        tables.append(problems)
    return tables


def _candidates_table(rows: list[dict[str, Any]]) -> Table:
    from rnnt_tui.core.corpus.subset import candidate_name

    table = Table(title="Per candidate (--subset: each runtime's own figures)", title_justify="left")
    for col in ("candidate", "utterances", "WER NeMo / candidate", "ΔWER", "identical", "out of tol.", "RTFx"):
        table.add_column(col, justify="left" if col == "candidate" else "right")
    for c in rows:
        table.add_row(candidate_name(c["label"], c["runs_on"]), str(c["utterances"]),
                      f"{_pct(c['wer']['reference'])} / {_pct(c['wer']['candidate'])}", _pct(c["wer_delta"]),
                      _pct(c["identical"]), str(c["out_of_tolerance"]), num(c["rtfx"]["candidate"]))
    return table


def _stream_table(rows: list[dict[str, Any]], cache_states: str | None = None) -> Table:
    """`cache_states`: whose states held the candidate's caches (None: inputs and outputs)."""
    table = Table(title="Streaming per att context (reference: NeMo's cache-aware loop"
                  + (f"; the candidate's caches in {cache_states}" if cache_states else "") + ")", title_justify="left")
    for col in ("att context", "latency ms", "utterances", "identical", "within tol.", "WER vs NeMo streaming",
                "WER vs NeMo offline", "NeMo streaming vs offline", "QoI vs streaming / offline", "drift p90"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["att_context_size"]), num(r["latency_ms"]), str(r["utterances"]), _pct(r["identical"]),
                      str(r["within_tolerance"]), _pct(r["wer_vs_streaming"]), _pct(r["wer_vs_offline"]),
                      _pct(r["nemo_streaming_vs_offline"]),
                      f"{_pct(r['qoi_vs_streaming'])} / {_pct(r['qoi_vs_offline'])}",
                      num(r["drift_free_running"]["p90"]))
    return table


@click.command("corpus-report")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Where to write the reports [default: the one results folder given; required to merge several].")
@options.json_mode
@gate_options
def corpus_report(results: tuple[str, ...], out_dir: str | None, json_mode: bool, max_wer_delta: float | None,
                  min_qoi: float | None, min_identical: float | None, max_out_of_tolerance: int) -> None:
    """Rebuild report.json, report.md and utterances.csv from RESULTS (output folders or results.jsonl files);
    several (the shards of one manifest) are merged into one report."""
    sources = [Path(r).expanduser() for r in results]
    if out_dir is None and len(sources) > 1:
        raise click.UsageError("merging several results needs --out DIR for the merged reports")
    target = Path(out_dir).expanduser() if out_dir else (sources[0] if sources[0].is_dir() else sources[0].parent)

    def body() -> int:
        from rnnt_tui.core.corpus.report import rebuild_reports

        rebuild_reports(target, _gates(max_wer_delta, min_qoi, min_identical, max_out_of_tolerance), sources)
        code = show_report(target, json_mode)
        err.print(f"reports: {target}")
        return code

    guard(body)
