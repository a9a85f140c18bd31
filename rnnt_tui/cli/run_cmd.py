"""`rnnt-tui run`: the NeMo/PyTorch pipeline alone on a clip — shapes, timings, greedy transcript."""

from __future__ import annotations

import click

from rnnt_tui.cli import options
from rnnt_tui.cli.common import audio_path, checkpoint_path, emit_json, emitter, err, guard, out, status
from rnnt_tui.exit_codes import ExitCode


@click.command()
@click.argument("checkpoint", required=False)
@click.argument("audio", required=False)
@options.runs
@options.warmup
@options.threads
@options.joint_mode
@options.json_mode
def run(checkpoint: str | None, audio: str | None, runs: int, warmup: int, joint_mode: str, json_mode: bool) -> None:
    """Run the NeMo/PyTorch pipeline on AUDIO: shapes, timings, greedy transcript.

    Exits 4 when a step fails; in --joint-mode as-saved a fused joint cannot return logits, which is reported
    but not counted as a failure (it is what the checkpoint does).
    """
    def body() -> int:
        from rnnt_tui.cli.render import fuse_table, run_table, transcripts
        from rnnt_tui.core.components import JOINT
        from rnnt_tui.core.fuse import AS_SAVED
        from rnnt_tui.core.names import Status
        from rnnt_tui.core.pipeline.driver import run_steps
        from rnnt_tui.core.pipeline.pipeline import open_session
        from rnnt_tui.core.pipeline.request import Request
        from rnnt_tui.core.report import Comparison, run_report

        with status(json_mode) as progress:
            request = Request(checkpoint_path(checkpoint), audio_path(audio), None,
                              settings=options.settings(runs, warmup, joint_mode))
            emit = emitter(progress)
            comparison = Comparison.of(run_steps(open_session(request, emit), emit=emit))
        if json_mode:
            emit_json(run_report(comparison))
        else:
            out.print(fuse_table(comparison))
            out.print(run_table(comparison))
            out.print(transcripts(comparison))
        failed = [r for name, r in comparison.results.items() if r.status == Status.FAILED
                  and not (name == JOINT and joint_mode == AS_SAVED and comparison.fuse().saved.fuse_loss_wer)]
        for result in failed:
            err.print(f"[bold red]failed:[/] {result.name}: {result.error}")
        return ExitCode.FAILED if failed else ExitCode.OK

    guard(body)
