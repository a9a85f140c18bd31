"""The `rnnt-tui` command: opens the app, or runs a headless subcommand (inspect, run, compare, convert, cache).

Headless commands write data to stdout (Rich tables on a terminal, JSON with --json) and diagnostics to stderr;
their exit codes are `rnnt_tui.exit_codes.ExitCode`. Textual is imported only when the app opens.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from rnnt_tui.core.errors import BadInputError, CancelledError, RuntimeUnavailableError
from rnnt_tui.exit_codes import ExitCode
from rnnt_tui.paths import demo_audio, demo_checkpoint
from rnnt_tui.versions import all_versions

out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False)

COMPUTE_UNITS = ("CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL")
PRECISIONS = ("fp32", "fp16")
SUBCOMMANDS = ("inspect", "run", "compare", "convert", "cache", "open")


class _DefaultToOpen(click.Group):
    """`rnnt-tui [CHECKPOINT] [AUDIO] [options]` without a subcommand opens the app. The headless commands that
    live in `cli_compare` (which imports the core's numpy-heavy modules) are imported only when named."""

    LAZY = ("compare", "convert", "cache")

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY and cmd_name not in self.commands:
            from rnnt_tui import cli_compare

            self.add_command(getattr(cli_compare, cmd_name))
        return super().get_command(ctx, cmd_name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        known = (*self.commands, *self.LAZY, "--help", "-h", "--version")
        if not args or args[0] not in known:
            args = ["open", *args]
        return super().parse_args(ctx, args)


def _version_text() -> str:
    return "\n".join(f"{name} {version or 'not installed'}" for name, version in all_versions().items())


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(_version_text())
        ctx.exit(0)


@click.group(cls=_DefaultToOpen, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Print the versions of rnnt-tui, NeMo, torch, coremltools and textual.")
def main_group() -> None:
    """Explore and validate NeMo transducer ASR models against Core ML / ONNX Runtime.

    With no subcommand, opens the interactive app (on the bundled demo when no files are given).
    Exit codes: 0 ok, 1 mismatch, 2 bad input, 3 runtime unavailable here, 4 failed, 130 interrupted.
    """


def _checkpoint(value: str | None) -> Path:
    return Path(value).expanduser() if value else demo_checkpoint()


def _audio(value: str | None) -> Path:
    return Path(value).expanduser() if value else demo_audio()


@contextmanager
def _status(json_mode: bool) -> Iterator[Callable[[str, float | None], None]]:
    """A progress callback: a spinner on an interactive stderr, nothing otherwise."""
    if err.is_terminal and not json_mode:
        with err.status("starting") as status:
            def progress(message: str, fraction: float | None = None) -> None:
                pct = f" {fraction:.0%}" if fraction is not None else ""
                status.update(f"{message}{pct}")
            yield progress
    else:
        def silent(message: str, fraction: float | None = None) -> None:
            """No progress on a non-interactive stderr."""

        yield silent


def _guard(fn: Callable[[], int]) -> int:
    """Map the core's errors to exit codes and one-line messages on stderr (never a traceback)."""
    try:
        return fn()
    except BadInputError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        return ExitCode.BAD_INPUT
    except RuntimeUnavailableError as exc:
        err.print(f"[bold yellow]unavailable:[/] {exc}")
        return ExitCode.UNAVAILABLE
    except (KeyboardInterrupt, CancelledError):
        err.print("interrupted")
        return ExitCode.INTERRUPTED
    except click.UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - last line of defence: a message, not a traceback
        err.print(f"[bold red]failed:[/] {type(exc).__name__}: {exc}")
        return ExitCode.FAILED


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@main_group.command("open")
@click.argument("checkpoint", required=False)
@click.argument("audio", required=False)
@click.option("--against", type=click.Choice(["onnx", "coreml"]), default=None,
              help="Second runtime (default: coreml on macOS, onnx elsewhere).")
@click.option("--compute-units", type=click.Choice(COMPUTE_UNITS), default="CPU_ONLY", show_default=True)
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True)
@click.option("--runs", type=click.IntRange(1, 1000), default=5, show_default=True)
@click.option("--warmup", type=click.IntRange(0, 1000), default=1, show_default=True)
def open_app(checkpoint: str | None, audio: str | None, against: str | None, compute_units: str, precision: str,
             runs: int, warmup: int) -> None:
    """Open the interactive app (the default command)."""
    from rnnt_tui.app.main import run_app  # textual only here

    if against is None:
        against = "coreml" if sys.platform == "darwin" else "onnx"
    code = run_app(Path(checkpoint).expanduser() if checkpoint else None,
                   Path(audio).expanduser() if audio else None, against=against, compute_units=compute_units,
                   precision=precision, runs=runs, warmup=warmup)
    sys.exit(code)


@main_group.command()
@click.argument("checkpoint", required=False)
@click.option("--json", "json_mode", is_flag=True, help="Machine-readable output on stdout.")
def inspect(checkpoint: str | None, json_mode: bool) -> None:
    """Summarise CHECKPOINT from its config alone (nothing is restored or executed)."""
    def body() -> int:
        from rnnt_tui.cli_render import summary_table
        from rnnt_tui.core.summary import read_summary

        summary = read_summary(_checkpoint(checkpoint))
        if json_mode:
            _emit_json(summary.to_json())
        else:
            out.print(summary_table(summary))
        return ExitCode.OK

    sys.exit(_guard(body))


def _settings(runs: int, warmup: int, joint_mode: str, precision: str = "fp32", atol: str = "", rtol: str = "",
              joint_chunk: int = 32) -> Any:
    from rnnt_tui.core.session import SessionSettings
    from rnnt_tui.core.tolerances import parse_override, resolve

    try:
        tolerances = resolve(precision, parse_override(atol, "atol"), parse_override(rtol, "rtol"))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    return SessionSettings(runs=runs, warmup=warmup, joint_mode=joint_mode, tolerances=tolerances,
                           joint_chunk_frames=joint_chunk)


JOINT_MODE = click.option("--joint-mode", type=click.Choice(["validation", "as-saved"]), default="validation",
                          show_default=True,
                          help="validation: fuse off, log_softmax off (raw logits, like exports); as-saved: the "
                               "checkpoint's own flags.")


@main_group.command()
@click.argument("checkpoint", required=False)
@click.argument("audio", required=False)
@click.option("--runs", type=click.IntRange(1, 1000), default=5, show_default=True, help="Timed runs.")
@click.option("--warmup", type=click.IntRange(0, 1000), default=1, show_default=True, help="Untimed warm-ups.")
@JOINT_MODE
@click.option("--json", "json_mode", is_flag=True)
def run(checkpoint: str | None, audio: str | None, runs: int, warmup: int, joint_mode: str, json_mode: bool) -> None:
    """Run the NeMo/PyTorch pipeline on AUDIO: shapes, timings, greedy transcript."""
    def body() -> int:
        from rnnt_tui.cli_render import fuse_table, run_table, transcripts
        from rnnt_tui.core.report import run_report
        from rnnt_tui.core.results import FAILED
        from rnnt_tui.core.workflow import open_session

        with _status(json_mode) as progress:
            session = open_session(_checkpoint(checkpoint), _audio(audio), None,
                                   settings=_settings(runs, warmup, joint_mode), progress=progress)
            session.run_all(progress)
        if json_mode:
            _emit_json(run_report(session))
        else:
            out.print(fuse_table(session))
            out.print(run_table(session))
            out.print(transcripts(session))
        failed = [r for name, r in session.results.items() if r.status == FAILED and name != "joint"]
        return ExitCode.FAILED if failed else ExitCode.OK

    sys.exit(_guard(body))


def main(argv: list[str] | None = None) -> int:
    try:
        main_group.main(args=argv, prog_name="rnnt-tui", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return ExitCode.BAD_INPUT
    except click.exceptions.Abort:
        return ExitCode.INTERRUPTED
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return ExitCode.OK
