"""Running Core AI assets: one event loop and the open executables of one runtime, with synchronous calls.

Core AI's runtime is async: `async with asset.executable() as model: f = model.load_function("main"); outs =
await f({name: NDArray})`. `Executor` keeps one private event loop and an `AsyncExitStack` holding every
executable it opened (on Linux `executable()` lowers the program to the runtime's binary form in a temporary
folder and loads it; leaving the stack releases them and removes those folders). `bind` converts the numpy feed
to `NDArray`s once, so a timed call is only `run_until_complete(f(feed))` plus reading the outputs back
(zero-copy views). Calls must come from a thread without a running event loop (the pipeline's worker threads and
the CLI); the loop is not shared between threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rnnt_tui.core.quiet import quiet


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[list[str]]:
    """Capture what native code writes to file descriptor 2 (the runtime logs "ODIE [default]: Loading function
    'main'" there, past Python's sys.stderr); the lines land in the yielded list."""
    lines: list[str] = []
    fd = 2
    with tempfile.TemporaryFile() as sink:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        saved = os.dup(fd)
        os.dup2(sink.fileno(), fd)
        try:
            yield lines
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            lines.extend(line for line in sink.read().decode(errors="replace").splitlines() if line.strip())


class Executor:
    """Open Core AI executables and the loop that drives them."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._stack: contextlib.AsyncExitStack | None = contextlib.AsyncExitStack()

    def _run(self, awaitable: Any) -> Any:
        return self._loop.run_until_complete(awaitable)

    def open(self, path: Path) -> tuple[Any, float, str]:
        """Load the asset at `path`; returns (model, load ms, captured chatter)."""
        from coreai.authoring.asset import AIModelAsset

        if self._stack is None:
            raise RuntimeError("this Core AI executor is closed")
        start = time.perf_counter()
        with native_stderr_captured() as native, quiet() as q:
            asset = AIModelAsset.load(path)
            model = self._run(self._stack.enter_async_context(asset.executable()))
        return model, (time.perf_counter() - start) * 1000, "\n".join([q.text, *native]).strip()

    def function(self, model: Any, name: str = "main", **tools: Any) -> Any:
        """`model.load_function(name)` (with an IntermediateLogger / Profiler when given)."""
        with native_stderr_captured(), quiet():
            return model.load_function(name, **tools)

    def bind(self, function: Any, feed: dict[str, np.ndarray]) -> Callable[[], dict[str, np.ndarray]]:
        """A zero-argument call of `function` on `feed` (converted to NDArrays now), returning numpy outputs by
        name."""
        from coreai.runtime import NDArray

        arrays = {k: NDArray(np.ascontiguousarray(v)) for k, v in feed.items()}
        run = self._loop.run_until_complete

        def call() -> dict[str, np.ndarray]:
            outs = run(function(arrays))
            return {k: v.numpy() for k, v in outs.items()}

        return call

    def call(self, function: Any, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.bind(function, feed)()

    def close(self) -> None:
        """Release every executable (and the runtime's temporary folders), then the loop."""
        stack, self._stack = self._stack, None
        if stack is not None and not self._loop.is_closed():
            with contextlib.suppress(Exception), quiet():
                self._run(stack.aclose())
        if not self._loop.is_closed():
            self._loop.close()
