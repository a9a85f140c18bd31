"""What every headless command shares: the two consoles, the error guard, progress on stderr, JSON output.

Data goes to stdout (`out`), diagnostics to stderr (`err`), both made by `make_console` (piped data keeps its
natural width, `--width N` sets one; errors are one line); the guard maps the core's errors to `ExitCode`s and
one line each (never a traceback, except an unexpected one's, folded under the line).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console, ConsoleDimensions
from rich.markup import escape

from rnnt_tui.core.errors import BadInputError, CancelledError, RuntimeUnavailableError
from rnnt_tui.core.progress import Progress
from rnnt_tui.exit_codes import ExitCode
from rnnt_tui.paths import demo_audio, demo_checkpoint

#: the width data is laid out for when stdout is not a terminal (a file, a pipe): wide enough that every table
#: keeps its natural width, nothing is cut ("compon…") or folded
NATURAL_WIDTH = 10_000
_width: int | None = None


def set_width(width: int | None) -> None:
    """`--width N`: lay data out for N columns, terminal or not (None: the terminal's width, or natural when
    piped)."""
    global _width
    _width = width


class _DataConsole(Console):
    """stdout: the terminal's width on a terminal; piped, tables at their natural width; `--width` (or $COLUMNS)
    wins over both."""

    @property
    def size(self) -> ConsoleDimensions:
        base = super().size
        if _width is not None:
            return ConsoleDimensions(_width, base.height)
        if self._width is None and not self.is_terminal:
            return ConsoleDimensions(NATURAL_WIDTH, base.height)
        return base

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


def make_console(stderr: bool = False) -> Console:
    """The one place consoles are made. stdout carries data (see `_DataConsole`); stderr carries diagnostics, one
    message per line: never wrapped by Rich (a terminal wraps them itself, a log keeps them whole)."""
    if stderr:
        return Console(stderr=True, highlight=False, soft_wrap=True)
    return _DataConsole(highlight=False, soft_wrap=False)


out = make_console()
err = make_console(stderr=True)

ProgressFn = Progress  # the core's one progress-callback type


def checkpoint_path(value: str | None) -> Path:
    return Path(value).expanduser() if value else demo_checkpoint()


def audio_path(value: str | None) -> Path:
    return Path(value).expanduser() if value else demo_audio()


@contextmanager
def status(json_mode: bool) -> Iterator[ProgressFn]:
    """A progress callback: a spinner on an interactive stderr, nothing otherwise."""
    if err.is_terminal and not json_mode:
        with err.status("starting") as spinner:
            def progress(message: str, fraction: float | None = None) -> None:
                pct = f" {fraction:.0%}" if fraction is not None else ""
                spinner.update(f"{message}{pct}")
            yield progress
    else:
        def silent(message: str, fraction: float | None = None) -> None:
            """No progress on a non-interactive stderr."""

        yield silent


def emitter(progress: ProgressFn) -> Callable[[object], None]:
    """A pipeline `emit` for a headless command: progress to the spinner, a failed candidate's traceback to
    stderr (folded under its one line); everything else is read from the finished session."""
    from rnnt_tui.core.pipeline import events

    def emit(event: object) -> None:
        if isinstance(event, events.Progress):
            progress(event.text, event.fraction)
        elif isinstance(event, events.StepStarted):
            progress(f"running {event.name}", None)
        elif isinstance(event, events.CandidateFailed):
            err.print(f"[bold red]{escape(event.label)} could not be prepared[/] (the reference still runs): "
                      f"{escape(str(event.reason))}")
            err.print(_indent(event.details), style="dim", markup=False, highlight=False)

    return emit


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip().splitlines())


def guard(fn: Callable[[], int]) -> NoReturn:
    """Run a command body and exit with its code; the core's errors become exit codes and one-line messages."""
    sys.exit(run_guarded(fn))


def run_guarded(fn: Callable[[], int]) -> int:
    try:
        return fn()
    except BadInputError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False)  # a path may hold [...]
        return ExitCode.BAD_INPUT
    except RuntimeUnavailableError as exc:
        err.print(f"[bold yellow]unavailable:[/] {escape(str(exc))}")
        return ExitCode.UNAVAILABLE
    except (KeyboardInterrupt, CancelledError):
        err.print("interrupted")
        return ExitCode.INTERRUPTED
    except click.UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - last line of defence: a message, not a traceback
        err.print(f"[bold red]failed:[/] {type(exc).__name__}: {escape(str(exc))}")
        return ExitCode.FAILED


def check_markdown(value: str | None) -> None:
    """Refuse a `--markdown FILE` that cannot be written - its folder missing or not writable - before the
    comparison runs, naming the file (exit 2), not after it as an OSError (exit 4) with the report lost."""
    if not value:
        return
    import os

    path = Path(value).expanduser()
    folder = path.parent
    if not folder.is_dir():
        raise BadInputError(path, f"cannot write the Markdown report: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise BadInputError(path, "cannot write the Markdown report: permission denied")


def write_markdown(value: str, text: str) -> None:
    """Write the `--markdown` report; a write that fails anyway (a full disk) is one line naming the file."""
    path = Path(value).expanduser()
    try:
        path.write_text(text)
    except OSError as exc:
        raise BadInputError(path, f"cannot write the Markdown report: {exc.strerror or exc}") from exc


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))
