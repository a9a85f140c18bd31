"""The command palette's rnnt-tui entries: every action the keys offer, plus the recent files.

The list comes from the app (`RnntApp.palette_commands`), so a new action shows up in the palette by being
added there once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

Command = tuple[str, str, Callable[[], Any]]


class RnntCommands(Provider):
    """Actions and recent files, searchable by their titles."""

    def _commands(self) -> list[Command]:
        app: Any = self.app
        return list(app.palette_commands()) if hasattr(app, "palette_commands") else []

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
