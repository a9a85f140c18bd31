"""The `rnnt-tui` command line read with click: the app's options, or a headless subcommand.

Each subcommand lives in its own module and is imported only when named, so `rnnt-tui` (the app) and
`rnnt-tui --version` load none of the core's numpy-heavy modules. Exit codes: `rnnt_tui.exit_codes.ExitCode`.
`rnnt_tui.cli.main` imports this module only when there is a command line to read.
"""

from __future__ import annotations

import importlib

import click

from rnnt_tui.cli import COMMANDS
from rnnt_tui.exit_codes import ExitCode


class _LazyGroup(click.Group):
    """Subcommands loaded on demand; `rnnt-tui [CHECKPOINT] [AUDIO] [options]` without one opens the app."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(f"rnnt_tui.cli.{module}"), attr)
        return command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = _width_first(args)
        width, args = (args[:2], args[2:]) if args[:1] == ["--width"] else ([], args)
        if not args or args[0] not in (*COMMANDS, "--help", "-h", "--version"):
            args = ["open", *args]
        return super().parse_args(ctx, [*width, *args])


def _width_first(args: list[str]) -> list[str]:
    """`--width N` anywhere on the line (before `--`) moved to the front, where the group reads it."""
    rest, width, i = [], [], 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i:]
            break
        if arg == "--width" and i + 1 < len(args):
            width = [arg, args[i + 1]]
            i += 2
            continue
        if arg.startswith("--width="):
            width = ["--width", arg.split("=", 1)[1]]
        else:
            rest.append(arg)
        i += 1
    return [*width, *rest]


def _set_width(_ctx: click.Context, _param: click.Parameter, value: int | None) -> None:
    from rnnt_tui.cli.common import set_width

    set_width(value)  # None too: an earlier in-process call's --width must not carry over


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from rnnt_tui.versions import all_versions

        click.echo("\n".join(f"{name} {version or 'not installed'}" for name, version in all_versions().items()))
        ctx.exit(0)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Print the versions of rnnt-tui, NeMo, torch, coremltools and textual.")
@click.option("--width", type=click.IntRange(40, 100_000), default=None, expose_value=False, is_eager=True,
              callback=_set_width, help="Lay tables out for N columns (default: the terminal's width; piped or "
                                        "redirected, each table at its natural width). Anywhere on the line.")
def main_group() -> None:
    """Explore and validate NeMo transducer ASR models against Core ML / ONNX Runtime.

    With no subcommand, opens the interactive app (on the bundled demo when no files are given).
    Exit codes: 0 ok, 1 mismatch, 2 bad input, 3 runtime unavailable here, 4 failed, 130 interrupted.
    """


def run(argv: list[str] | None) -> int:
    """Read `argv` (None: sys.argv) and run what it says; the exit code."""
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
