"""`rnnt-tui record` and `rnnt-tui replay`: NeMo's side recorded once into a bundle, replayed against a candidate.

`record CKPT CLIP|MANIFEST --out BUNDLE` needs torch and NeMo (it restores the checkpoint); `replay BUNDLE
--against coreml|mil|onnx` needs neither and prints what `compare` prints - the same tables, JSON (plus a `bundle`
block) and exit codes. A recorded corpus replays clip by clip; its JSON holds every clip's report.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from rnnt_tui.cli import options
from rnnt_tui.cli.common import check_markdown, emit_json, emitter, err, guard, out, status, write_markdown
from rnnt_tui.core.names import COMPUTE_UNITS, DEFAULT_COMPUTE_UNITS, PRECISIONS
from rnnt_tui.exit_codes import exit_code_for
from rnnt_tui.formatting import num

REPLAY_CANDIDATES = ("coreml", "mil", "onnx", "coreai")


@click.command()
@click.argument("checkpoint")
@click.argument("clips", metavar="CLIP|MANIFEST")
@click.option("--out", "out_path", required=True, type=click.Path(), help="The new bundle: a folder, or NAME.rnntb.")
@click.option("--joint", "joint", type=click.Choice(["auto", "full", "path"]), default="auto", show_default=True,
              help="Keep the joint's whole T x U grid, or only the decode-path cells (auto: by size).")
@click.option("--convert", type=click.Choice([*PRECISIONS, "coreai"]), default=None,
              help="Also convert to Core ML packages of this precision (or to Core AI assets: coreai), into the "
                   "bundle.")
@click.option("--export", "export", type=click.Choice(["onnx"]), default=None,
              help="Also store NeMo's ONNX export, so `replay --against onnx` needs neither torch nor NeMo.")
@click.option("--stream", "stream_mode", is_flag=True,
              help="Also record NeMo's chunked (cache-aware) reference on CLIP (or every clip of MANIFEST) and the "
                   "streaming steps for onnx and mil, so `replay --against onnx|mil` (or coreml on a Mac) runs the "
                   "streaming comparison on every clip (implies --convert fp32 and --export onnx for the decoder and "
                   "joint; with --convert coreai the Core AI assets and streaming step too, for --against coreai).")
@click.option("--att-context", default=None, metavar="L,R|all",
              help="With --stream: the att context to record (default: the model's), or 'all'.")
@click.option("--cache-states", "cache_states", is_flag=True,
              help="With --stream: also record the streaming step with its caches in Core ML states (a macOS 15 "
                   "program), so `replay --against mil|coreml --cache-states` runs it (with --convert coreai, the "
                   "Core AI step with its caches in Core AI states too).")
@options.runs
@options.warmup
@options.threads
@options.joint_chunk
@options.json_mode
def record(checkpoint: str, clips: str, out_path: str, joint: str, convert: str | None, export: str | None,
           stream_mode: bool, att_context: str | None, cache_states: bool, runs: int, warmup: int, joint_chunk: int,
           json_mode: bool) -> None:
    """Record NeMo's reference on CLIP (or every clip of MANIFEST) into a bundle at --out."""
    settings = options.settings(runs, warmup, "validation", joint_chunk=joint_chunk)
    if att_context is not None and not stream_mode:
        raise click.UsageError("--att-context needs --stream")
    if cache_states and not stream_mode:
        raise click.UsageError("--cache-states records the stateful streaming step: it needs --stream")
    stream_coreai = stream_mode and convert == "coreai"
    if stream_mode:
        if convert not in (None, "fp32", "coreai"):
            raise click.UsageError("--stream records fp32 Core ML packages (its mil decoder and joint), and Core AI "
                                   "assets with --convert coreai")
        convert, export = "fp32", "onnx"

    def body() -> int:
        from rnnt_tui.core.bundle.corpus_input import read_clips
        from rnnt_tui.core.bundle.format import Bundle
        from rnnt_tui.core.bundle.record import record as run_record

        if stream_mode:  # before NeMo: a checkpoint that cannot stream, or an --att-context it lacks
            from rnnt_tui.core.stream.precheck import check_streaming_checkpoint

            check_streaming_checkpoint(Path(checkpoint), att_context)
        inputs, bad = read_clips(Path(clips))
        for problem in bad:
            err.print(f"[bold yellow]skipped:[/] {escape(problem.message())}", markup=True, highlight=False)
        with status(json_mode) as progress:
            path = run_record(Path(checkpoint).expanduser(), inputs, Path(out_path), joint=joint, convert=convert,
                              export_onnx=export == "onnx", settings=settings, progress=progress,
                              skipped=[{"line": b.line, "source": b.source, "problem": b.problem} for b in bad],
                              stream=stream_mode, att_context=att_context, cache_states=cache_states,
                              stream_coreai=stream_coreai)
        bundle = Bundle.open(path, verify=False)
        for entry in bundle.meta.get("skipped", [])[len(bad):]:  # clips whose audio the record refused
            where = f"{Path(clips).name}:{entry['line']}"
            err.print(f"[bold yellow]skipped:[/] {escape(where)}: {escape(entry['problem'])}", markup=True,
                      highlight=False)
        try:
            size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() \
                else path.stat().st_size
            summary = {"bundle": str(path), "bytes": size, "clips": len(bundle.meta["clips"]),
                       "joint": bundle.meta["joint"], "packages": sorted(bundle.meta.get("packages") or {}),
                       "onnx": bool(bundle.meta.get("onnx")), "format_version": bundle.format_version,
                       "skipped": bundle.meta.get("skipped", []),
                       "transcripts": [c["decode"]["reference_text"] for c in bundle.meta["clips"]],
                       "stream": None if "stream" not in bundle.meta else [
                           {"att_context_size": c["att_context_size"], "clips": len(c["clips"]),
                            "chunks": sum(len(clip["chunks"]) for clip in c["clips"]), "steps": sorted(c["steps"])}
                           for c in bundle.meta["stream"]["contexts"]]}
        finally:
            bundle.close()
        if json_mode:
            emit_json(summary)
        else:
            out.print(f"recorded {summary['clips']} clip(s) into {path} ({size / 1e6:.2f} MB); joint: "
                      f"{summary['joint']['storage']} ({summary['joint']['why']})")
        return 0

    guard(body)


@click.command()
@click.argument("bundle_path", metavar="BUNDLE")
@click.option("--against", required=True, type=click.Choice(REPLAY_CANDIDATES),
              help="The candidate: coreml (Core ML, macOS), mil (the Core ML program in rnnt-tui's MIL "
                   "interpreter, any OS), onnx (the NeMo ONNX export recorded in the bundle), coreai (Core AI "
                   "assets on Apple's Core AI runtime).")
@click.option("--packages", type=click.Path(file_okay=False), default=None,
              help="Core ML packages to run instead of the bundle's own conversion.")
@click.option("--compute-units", type=click.Choice(COMPUTE_UNITS), default=DEFAULT_COMPUTE_UNITS, show_default=True,
              help="Core ML compute units.")
@click.option("--precision", type=click.Choice(PRECISIONS), default=None,
              help="Which of the bundle's conversions to run (default fp32 when recorded); picks the default "
                   "tolerances.")
@click.option("--runs", type=click.IntRange(1, 1000), default=None, help="Timed runs (default: as recorded).")
@click.option("--warmup", type=click.IntRange(0, 1000), default=None, help="Untimed warm-ups (default: as recorded).")
@options.threads
@options.atol
@options.rtol
@options.json_mode
@click.option("--markdown", type=click.Path(dir_okay=False), default=None, help="Also write the report as Markdown.")
@click.option("--cache-states", "cache_states", is_flag=True,
              help="A streaming bundle recorded with --cache-states: run its stateful streaming step (caches in Core "
                   "ML states) with --against mil (the MIL interpreter) or coreml (Core ML, macOS 15).")
def replay(bundle_path: str, against: str, packages: str | None, compute_units: str, precision: str | None,
           runs: int | None, warmup: int | None, atol: str, rtol: str, json_mode: bool, markdown: str | None,
           cache_states: bool) -> None:
    """Compare a candidate runtime with the NeMo reference recorded in BUNDLE (no torch, no NeMo)."""
    from rnnt_tui.core.tolerances import parse_override, resolve

    try:
        overrides = parse_override(atol, "atol"), parse_override(rtol, "rtol")
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None

    def body() -> int:
        check_markdown(markdown)
        if _is_stream_bundle(bundle_path):
            return _replay_stream(bundle_path, against, atol, rtol, json_mode, markdown, cache_states)
        if cache_states:
            from rnnt_tui.core.errors import BadInputError

            raise BadInputError(bundle_path, "holds no streaming record: --cache-states replays the stateful "
                                             "streaming step of a bundle recorded with --stream --cache-states")
        from rnnt_tui.core.bundle.replay import open_recording, recorded_settings
        from rnnt_tui.core.options import RuntimeOptions
        from rnnt_tui.core.pipeline.driver import run_steps
        from rnnt_tui.core.pipeline.pipeline import Pipeline
        from rnnt_tui.core.pipeline.request import Request
        from rnnt_tui.core.report import Comparison

        recording = open_recording(bundle_path, against, precision)
        reports: list[dict[str, Any]] = []
        records: list[Any] = []
        with status(json_mode) as progress:
            emit = emitter(progress)
            pipeline = Pipeline(emit)
            try:
                # tolerances: the user's, else those the candidate's programs call for, else the recording's
                asked = replace(recorded_settings(recording.bundle, None, runs, warmup),
                                tolerances=resolve(recording.precision or "fp32", *overrides),
                                tolerances_given=bool(atol or rtol))
                request = Request(recording.bundle.path, recording.bundle.path, against,
                                  RuntimeOptions(precision=precision or "fp32", compute_units=compute_units,
                                                 packages_dir=packages), asked)
                first = pipeline.open(request, reference=recording)
                for warning in recording.warnings:
                    err.print(f"[bold yellow]warning:[/] {escape(str(warning))}")
                for index in range(len(recording.clips)):
                    started = time.perf_counter()
                    session = first if index == 0 else pipeline.session_for(index)
                    run_steps(session, emit=emit)
                    comparison = Comparison.of(session)
                    reports.append({**comparison.to_json(), "bundle": recording.report_block(index)})
                    records.append(recording.corpus_record(index, session, time.perf_counter() - started))
                    if index == 0:
                        shown = comparison  # the first clip's tables; every clip's session is released
                    del session
                corpus = recording.corpus(records) if len(records) > 1 else None
            finally:
                pipeline.close()
        return _show(reports, shown, json_mode, markdown, corpus)

    guard(body)


def _is_stream_bundle(path: str) -> bool:
    from rnnt_tui.core.bundle.format import Bundle

    bundle = Bundle.open(path, verify=False)
    try:
        return "stream" in bundle.meta
    finally:
        bundle.close()


def _replay_stream(path: str, against: str, atol: str, rtol: str, json_mode: bool, markdown: str | None,
                   cache_states: bool) -> int:
    """A streaming bundle: the streaming comparison against the recorded NeMo chunks (`stream`'s output)."""
    from rnnt_tui.cli.stream_cmd import print_stream
    from rnnt_tui.core.bundle.stream_replay import replay_stream
    from rnnt_tui.core.stream.markdown import to_markdown
    from rnnt_tui.core.tolerances import Tolerance, tolerance_number

    try:
        tolerance = Tolerance(atol=tolerance_number(atol or "1e-3", "atol"),
                              rtol=tolerance_number(rtol or "1e-3", "rtol"))
    except ValueError as exc:
        raise click.UsageError(f"{exc}; a streaming replay takes one --atol / --rtol number each") from None
    with status(json_mode) as progress:
        replayed = replay_stream(path, against, emitter(progress), tolerance=tolerance, cache_states=cache_states)
    reports = [r.to_json() for r in replayed.results]
    if markdown:
        write_markdown(markdown, "\n".join(to_markdown(r) for r in reports))
    if json_mode:
        emit_json(replayed.to_json())
    elif len(reports) == 1:
        print_stream(reports[0])
    else:
        from rich.table import Table

        from rnnt_tui.cli.corpus_cmd import _stream_table

        table = Table(title=f"Streaming replay of {len(reports)} recorded clips", title_justify="left")
        for column in ("clip", "status", "att context", "chunks", "drift FR", "NeMo streaming", "candidate"):
            table.add_column(column)
        for result in replayed.results:
            for context in result.contexts:
                table.add_row(Path(result.clip).name, "ok" if context.ok else "mismatch",
                              str(list(context.att_context_size)), str(len(context.chunks)),
                              f"{context.max_drift:.2e}", repr(context.reference_text), repr(context.candidate_text))
        out.print(table)
        out.print(f"[dim]candidate's encoder caches carried in {reports[0]['caches_carried_in']}[/]")
        out.print(_stream_table(list(replayed.rows)))
    return exit_code_for(replayed.status)


def _show(reports: list[dict[str, Any]], first: Any, json_mode: bool, markdown: str | None,
          corpus: dict[str, Any] | None) -> int:
    from rnnt_tui.cli.compare_cmd import print_failures, say_why_not, show_comparison
    from rnnt_tui.core.report import to_markdown

    order = ("unavailable", "failed", "mismatch", "ok")
    overall = min((r["status"] for r in reports), key=lambda s: order.index(s) if s in order else 0)
    if markdown:
        write_markdown(markdown, "\n".join(to_markdown(r) for r in reports))
    if json_mode:
        emit_json(reports[0] if len(reports) == 1 else {"clips": reports, "status": overall, "corpus": corpus,
                                                        "bundle": {k: v for k, v in reports[0]["bundle"].items()
                                                                   if k != "clip"}})
    elif len(reports) == 1 or first.candidate_reason is not None:
        show_comparison(first, reports[0])
    else:
        out.print(_corpus_table(reports))
        if corpus is not None:
            head = corpus["summary"]
            wer = head["wer"]
            out.print(f"WER reference {num(wer['reference'])}, candidate {num(wer['candidate'])} (ΔWER "
                      f"{num(head['wer_delta'])}); QoI {num(head['qoi'])}; identical decodes {num(head['identical'])}"
                      f" of {head['identical_over']}")
    say_why_not(first)
    for report in reports:
        print_failures(report)
    return exit_code_for(overall)


def _corpus_table(reports: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title=f"Replay of {len(reports)} recorded clips", title_justify="left")
    for column in ("clip", "status", "token agreement", "WER", "worst joint max abs", "candidate transcript"):
        table.add_column(column)
    for report in reports:
        decode = report.get("decode") or {}
        joint = next((c for c in report["components"] if c["name"] == "joint"), None)
        stats = (joint or {"outputs": [{}]})["outputs"][0].get("stats") or {}
        table.add_row(Path(report["audio"]["path"]).name, report["status"], num(decode.get("token_agreement")),
                      num(decode.get("wer")), num(stats.get("max_abs")), str(decode.get("candidate_text")))
    return table
