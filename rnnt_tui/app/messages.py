"""The Textual messages of the app: the core's pipeline events, wrapped, and the app's own few.

The engine (in its child process) emits plain `core.pipeline.events`; the app posts each one wrapped in a
`CoreEvent` (thread-safe) and `controller.Controller` routes it by type. A `Progress` can replace an earlier, not
yet handled `Progress` of the same job, so a fast export cannot pile up hundreds of updates in the queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from rnnt_tui.core.pipeline.events import Event
    from rnnt_tui.core.pipeline.pipeline import RuntimeChoice


class CoreEvent(Message):
    """One event of the core's pipeline."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        from rnnt_tui.core.pipeline.events import Progress

        return isinstance(message, CoreEvent) and isinstance(self.event, Progress) \
            and isinstance(message.event, Progress) and message.event.job == self.event.job


@dataclass
class RuntimesChecked(Message):
    """Which candidate runtimes can run here, their labels, and why not."""

    availability: dict[str, RuntimeChoice]


@dataclass
class JobDone(Message):
    """A job ended (finished or cancelled), so the status line can settle."""

    job: str
    text: str
    cancelled: bool = False


@dataclass
class Exported(Message):
    """A report was written; the paths to tell the user."""

    paths: list[Path]
