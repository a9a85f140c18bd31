"""Errors the core raises on purpose; each carries a message fit to show a user as it is."""

from __future__ import annotations

from pathlib import Path


class RnntTuiError(Exception):
    """Base of the errors the core raises on purpose."""


class BadInputError(RnntTuiError):
    """A file the user gave cannot be used. The message names the file and the problem."""

    def __init__(self, path: Path | str | None, problem: str) -> None:
        self.path = Path(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)

    def __reduce__(self) -> tuple[type[BadInputError], tuple[Path | None, str]]:
        return BadInputError, (self.path, self.problem)  # so it crosses the app's engine-process pipe intact


class RuntimeUnavailableError(RnntTuiError):
    """The chosen runtime cannot run on this machine; the message says why in one sentence."""


class CancelledError(RnntTuiError):
    """Work was cancelled by the user; nothing partial was kept."""


class StepFailedError(RnntTuiError):
    """A runtime raised while running a component."""
