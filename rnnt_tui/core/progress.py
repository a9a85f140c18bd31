"""The progress callback every long core call takes: `progress(message, fraction or None)`, fraction in [0, 1]."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, float | None], None]


def no_progress(message: str, fraction: float | None = None) -> None:
    """A Progress that ignores everything."""
