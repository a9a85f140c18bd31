"""Errors the core raises on purpose; each carries a message fit to show a user as it is."""

from __future__ import annotations

import re
from pathlib import Path

#: the longest reason a one-line status keeps of a problem (`BadInputError.short`)
SHORT_PROBLEM = 60


class RnntTuiError(Exception):
    """Base of the errors the core raises on purpose."""


class BadInputError(RnntTuiError):
    """A file the user gave cannot be used. The message names the file and the problem."""

    def __init__(self, path: Path | str | None, problem: str) -> None:
        self.path = Path(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)

    @property
    def short(self) -> str:
        """The problem in a few words, for a status line that also names the file: its first line without the
        asides in parentheses, cut after a clause ("; " or ": ") to fit SHORT_PROBLEM characters."""
        text = re.sub(r"\s*\([^()]*\)", "", self.problem.strip().splitlines()[0] if self.problem.strip() else "")
        text = " ".join(text.split())
        if len(text) <= SHORT_PROBLEM:
            return text
        cuts = [m.start() for m in re.finditer(r"[;:] ", text) if m.start() <= SHORT_PROBLEM]
        if cuts:
            return text[: cuts[-1]]
        return text[: text.rfind(" ", 0, SHORT_PROBLEM)].rstrip(",;:") + "…"

    def __reduce__(self) -> tuple[type[BadInputError], tuple[Path | None, str]]:
        return BadInputError, (self.path, self.problem)  # so it crosses the app's engine-process pipe intact


class RuntimeUnavailableError(RnntTuiError):
    """The chosen runtime cannot run on this machine; the message says why in one sentence."""


class CancelledError(RnntTuiError):
    """Work was cancelled by the user; nothing partial was kept."""


class StepFailedError(RnntTuiError):
    """A runtime raised while running a component."""
