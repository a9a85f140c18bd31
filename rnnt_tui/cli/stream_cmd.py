"""`rnnt-tui stream`: a port compared chunk by chunk with NeMo's cache-aware streaming, or window by window
(`--window`) for offline models on long audio. Renders the core's result objects; JSON is their `to_json`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from rnnt_tui.cli.common import check_markdown, emit_json, err, guard, out, status, write_markdown
from rnnt_tui.cli.options import FiniteRange
from rnnt_tui.core.stream.config import MEL_LEFT_S_RANGE, OFFLINE_WINDOW_S, WINDOW_S_RANGE
from rnnt_tui.exit_codes import exit_code_for
from rnnt_tui.formatting import num

CHOICES = ("onnx", "mil", "coreml", "coreai")


@click.command()
@click.argument("checkpoint", required=False)
@click.argument("audio", required=False)
@click.option("--against", type=click.Choice(CHOICES), default="onnx", show_default=True,
              help="The candidate: onnx (NeMo's ONNX export with cache support), mil (a Core ML program of the "
                   "streaming step, run by rnnt-tui's MIL interpreter), coreml (the same program predicted by Core "
                   "ML: macOS; elsewhere converted, then exit 3), coreai (the step converted with coreai-torch, run "
                   "by Apple's Core AI runtime).")
@click.option("--att-context", default=None, metavar="L,R|all",
              help="The att context to stream with (one the model was trained with), or 'all' for a row per "
                   "lookahead (with --step: the contexts the package's declared shapes fit). Default: the model's "
                   "default context.")
@click.option("--window", "window_s", type=FiniteRange(*WINDOW_S_RANGE), default=None,
              help="Seconds per fixed window (offline models, long audio): cut, run, merge tokens by time.")
@click.option("--overlap", "overlap_s", type=FiniteRange(0, WINDOW_S_RANGE[1]), default=0.0, show_default=True,
              help="Seconds of overlap between windows (with --window).")
@click.option("--mel-left", "mel_left_s", type=FiniteRange(*MEL_LEFT_S_RANGE), default=0.0, show_default=True,
              help="Seconds of audio fed before each window for left context and then dropped (with --window).")
@click.option("--packages", "packages_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None,
              help="Windows through your own offline packages as an app ships them (a folder of Core ML packages, "
                   "--against mil or coreml, or Core AI assets, --against coreai) instead of rnnt-tui's conversion; "
                   "a fixed window they declare (e.g. 15 s) is the window when --window is not given.")
@click.option("--step", "step_packages", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="A third-party streaming step, caches as inputs and outputs, instead of rnnt-tui's conversion: "
                   ".onnx (--against onnx; NeMo's export with cache_support maps by name), .mlpackage (--against mil "
                   "or coreml) or .aimodel (--against coreai); once for every chunk, or twice (first chunk, rest).")
@click.option("--map", "role_map", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="JSON or YAML: a --step package's tensor name -> role (audio_signal, length, cache_last_channel, "
                   "cache_last_time, cache_last_channel_len, encoded, encoded_length, *_next) for names rnnt-tui "
                   "does not know.")
@click.option("--cache-states", "cache_states", is_flag=True,
              help="Carry cache_last_channel and cache_last_time in states instead of as inputs and outputs: Core ML "
                   "states (ct.StateType, fp16, a macOS 15 multifunction package) with --against mil or coreml, "
                   "Core AI states (fp32) with --against coreai.")
@click.option("--no-offline", "no_offline", is_flag=True,
              help="Skip NeMo's offline (full-context) transcript, which the streaming one is compared with.")
@click.option("--offline-window", "offline_window_s", type=FiniteRange(1, 3600), default=OFFLINE_WINDOW_S,
              show_default=True,
              help="Clips longer than this many seconds get NeMo's offline transcript in windows this long (a third "
                   "overlapping, tokens merged by time; said in the report): one full-context pass needs memory "
                   "quadratic in the clip.")
@click.option("--atol", type=FiniteRange(min=0), default=1e-3, show_default=True,
              help="Absolute tolerance per element.")
@click.option("--rtol", type=FiniteRange(min=0), default=1e-3, show_default=True,
              help="Relative tolerance per element.")
@click.option("--json", "json_mode", is_flag=True, help="Machine-readable output on stdout.")
@click.option("--markdown", type=click.Path(dir_okay=False), default=None, help="Also write the report as Markdown.")
def stream(checkpoint: str | None, audio: str | None, against: str, att_context: str | None, window_s: float | None,
           overlap_s: float, mel_left_s: float, packages_dir: Path | None, step_packages: tuple[Path, ...],
           role_map: Path | None,
           cache_states: bool, no_offline: bool, offline_window_s: float, atol: float, rtol: float, json_mode: bool,
           markdown: str | None) -> None:
    """Compare CHECKPOINT's streaming on AUDIO chunk by chunk: NeMo's cache-aware loop vs the candidate."""
    if window_s is not None and overlap_s >= window_s:
        raise click.UsageError("--overlap must be shorter than --window")
    windowed = window_s is not None or packages_dir is not None
    if windowed and step_packages:
        raise click.UsageError("--step is for cache-aware streaming, not --window / --packages")
    if packages_dir is not None and against not in ("mil", "coreml", "coreai"):
        raise click.UsageError("--packages is a folder of Core ML packages (--against mil or coreml) or Core AI assets "
                               "(--against coreai)")
    context = click.get_current_context()
    tolerance_given = any(context.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
                          for name in ("atol", "rtol"))
    if role_map is not None and not step_packages:
        raise click.UsageError("--map names the roles of a --step package's tensors: give --step too")

    def body() -> int:
        from rnnt_tui.cli.common import emitter
        from rnnt_tui.core.stream.config import StreamRequest, stream_demo
        from rnnt_tui.core.tolerances import Tolerance

        check_markdown(markdown)
        demo_ckpt, demo_clip = stream_demo()
        request = StreamRequest(Path(checkpoint).expanduser() if checkpoint else demo_ckpt,
                                Path(audio).expanduser() if audio else demo_clip, against, att_context, window_s,
                                overlap_s, mel_left_s, Tolerance(atol=atol, rtol=rtol),
                                step_packages=step_packages, role_map=role_map, offline=not no_offline,
                                offline_window_s=offline_window_s, cache_states=cache_states,
                                packages_dir=packages_dir, tolerance_given=tolerance_given)
        from rnnt_tui.core.stream.precheck import check_stream_inputs

        check_stream_inputs(request)  # before NeMo: bad files and options refused at once
        with status(json_mode) as progress:
            if windowed:
                from rnnt_tui.core.stream.windows import run_windows

                result: Any = run_windows(request, emitter(progress))
            else:
                from rnnt_tui.core.stream.compare import run_stream

                result = run_stream(request, emitter(progress))
        report = result.to_json()
        if markdown:
            from rnnt_tui.core.stream.markdown import to_markdown

            write_markdown(markdown, to_markdown(report))
        if json_mode:
            emit_json(report)
        elif windowed:
            _print_windows(report)
        else:
            print_stream(report)
        return exit_code_for(report["status"])

    guard(body)


def print_stream(report: dict[str, Any]) -> None:
    out.print(f"[bold]{report['reference']}[/] (NeMo's chunked loop) vs [bold]{report['candidate']}[/]  "
              f"att context {report['att_context_size']}, {len(report['chunks'])} chunks, "
              f"algorithmic latency {num(report['algorithmic_latency_ms'])} ms")
    out.print(f"[dim]candidate's encoder caches carried in {report['caches_carried_in']}[/]")
    table = Table(title="Per chunk: encoder output and caches (max |Δ|), teacher-forced | free-running")
    for col in ("chunk", "start s", "audio ms", "enc TF", "enc FR", "ch cache FR", "time cache FR", "cache len",
                "NeMo ms", "cand ms", "ref text", "cand text", "ok"):
        table.add_column(col, justify="right" if col not in ("ref text", "cand text") else "left")
    for c in report["chunks"]:
        tf, fr = c["teacher_forced"], c["free_running"]
        lens = fr["cache_last_channel_len"]
        table.add_row(str(c["index"]), f"{c['start_s']:.2f}", f"{c['audio_s'] * 1000:.0f}",
                      _v(tf["outputs"][0]["max_abs"]), _v(fr["outputs"][0]["max_abs"]),
                      _v(fr["outputs"][1]["max_abs"]), _v(fr["outputs"][2]["max_abs"]),
                      f"{lens['reference']}/{lens['candidate']}", num(c["timing_ms"]["reference"]),
                      num(c["timing_ms"]["candidate"]), repr(c["tokens"]["reference_text"]),
                      repr(c["tokens"]["candidate_text"]),
                      ("ok*" if c["notes"] else "ok") if c["ok"] else "[red]NO[/]")
    out.print(table)
    for c in report["chunks"]:
        for note in c["notes"]:
            out.print(f"[dim]* chunk {c['index']}: {note}[/]")
    d = report["decode"]
    offline = d["offline"]
    out.print(f"NeMo streaming: {d['reference_text']!r}\nNeMo offline:   "
              f"{'-' if offline['mode'] == 'skipped' else repr(d['offline_text'])}  [dim]({offline['description']})[/]"
              f"\ncandidate:      {d['candidate_text']!r}")
    if d["first_divergence"]:
        fd = d["first_divergence"]
        out.print(f"[red]first divergence[/] at chunk {fd['chunk']} ({fd['time_s']:.2f} s): NeMo "
                  f"{fd['reference_so_far']!r} vs candidate {fd['candidate_so_far']!r}")
    if d["streaming_equals_offline"] is False:
        out.print("[yellow]NeMo's own streaming transcript differs from its offline one at this context[/]")
    if "contexts" in report:
        rows = Table(title="Every lookahead")
        for col in ("att context", "latency ms", "chunks", "drift FR", "step error TF", "identical", "= offline",
                    "WER vs offline: cand | NeMo"):
            rows.add_column(col, justify="right")
        for r in report["contexts"]:
            wers = r["wer_vs_offline"]
            rows.add_row(str(r["att_context_size"]), num(r["latency_ms"]), str(r["chunks"]),
                         _v(r["max_drift_free_running"]), _v(r["max_step_error_teacher_forced"]),
                         "yes" if r["identical_transcript"] else "[red]no[/]",
                         {True: "yes", False: "no", None: "-"}[r["streaming_equals_offline"]],
                         "-" if wers is None else f"{wers['candidate']:.1%} | {wers['nemo_streaming']:.1%}")
        out.print(rows)
    for note in report["notes"] + report["candidate_notes"]:
        err.print(f"[dim]{escape(note)}[/]")


def _print_windows(report: dict[str, Any]) -> None:
    out.print(f"[bold]{report['reference']}[/] vs [bold]{report['candidate']}[/]: {len(report['windows'])} windows of "
              f"{report['window_s']} s, overlap {report['overlap_s']} s, mel left context {report['mel_left_s']} s "
              f"({report['merge_rule']})")
    table = Table(title="Per window")
    for col in ("window", "start s", "end s", "keeps s", "encoder max |Δ|", "NeMo text", "candidate text"):
        table.add_column(col, justify="left" if "text" in col else "right")
    for w in report["windows"]:
        table.add_row(str(w["index"]), f"{w['start_s']:.2f}", f"{w['end_s']:.2f}",
                      f"{w['keep_from_s']:.2f}-{w['keep_to_s']:.2f}", _v(w["encoder_max_abs"]),
                      repr(w["reference_text"]), repr(w["candidate_text"]))
    out.print(table)
    out.print(f"full context:       {report['full_text']!r}\nNeMo windowed:      {report['reference_text']!r}\n"
              f"candidate windowed: {report['candidate_text']!r}")
    seams = Table(title="Seams: words lost, doubled or changed against the full-context transcript")
    for col in ("seam s", "side", "kind", "at s", "full", "windowed"):
        seams.add_column(col)
    for seam in report["seams"]:
        for e in seam["edits"]:
            seams.add_row(f"{seam['time_s']:.2f}", e["side"], e["kind"], f"{e['time_s']:.2f}", repr(e["full"]),
                          repr(e["windowed"]))
    out.print(seams if seams.row_count else "no word lost, doubled or changed at any seam")
    for note in report["notes"]:
        err.print(f"[dim]{note}[/]")


def _v(value: Any) -> str:
    if value is None:
        return "shape!"
    return value if isinstance(value, str) else f"{value:.2e}"
