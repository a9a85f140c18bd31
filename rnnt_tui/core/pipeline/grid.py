"""The one loop over the joint's T x U grid in chunks of frames, so memory stays bounded.

Compare (`joint_grid`), the decision heads (`heads`), a replay's decode-path joint (`bundle.replay`) and
`record` all walk the grid through `grid_chunks`: the same chunks, cancellable between chunks, progress after
each.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from rnnt_tui.core.errors import CancelledError
from rnnt_tui.core.pipeline.request import Settings
from rnnt_tui.core.progress import Progress, no_progress


def chunk_frames(settings: Settings, frames: int) -> int:
    """Frames per chunk of the grid (`joint_chunk_frames` 0: the whole grid at once)."""
    return max(1, min(settings.joint_chunk_frames or frames, frames))


def grid_chunks(frames: int, chunk: int, progress: Progress = no_progress, cancel: threading.Event | None = None,
                what: str = "the joint grid") -> Iterator[tuple[int, int]]:
    """The one loop over the joint grid's chunks of frames: (start, stop) of each, cancellable between chunks,
    progress after each. Compare, replay (decode-path cells) and record all walk the grid through it."""
    for start in range(0, frames, chunk):
        if cancel is not None and cancel.is_set():
            raise CancelledError(f"cancelled during {what}")
        stop = min(start + chunk, frames)
        yield start, stop
        progress(f"joint frames {stop}/{frames}", stop / frames)
