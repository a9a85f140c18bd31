"""Running Core AI assets: one event loop and the open executables of one runtime, with synchronous calls.

Core AI's runtime is async: `async with asset.executable() as model: f = model.load_function("main"); outs =
await f({name: NDArray})`. `Executor` keeps one private event loop and an `AsyncExitStack` holding every
executable it opened (on Linux `executable()` lowers the program to the runtime's binary form in a temporary
folder and loads it; leaving the stack releases them and removes those folders; with a cache, the lowered folder
is kept and loaded from there instead). `bind` converts the numpy feed to `NDArray`s once, so a timed call is only
`run_until_complete(f(feed))`; outputs are read back as numpy (`as_numpy`, zero-copy views) after it. Calls must
come from a thread without a running event loop (the pipeline's worker threads and the CLI); the loop is not
shared between threads.
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

from rnnt_tui.core.cache import ArtifactCache
from rnnt_tui.core.quiet import quiet

#: the lowered program's folder inside its cache entry (the runtime wants the `.aimodelx` suffix)
LOWERED = "lowered.aimodelx"


def as_numpy(outputs: dict[str, Any]) -> dict[str, np.ndarray]:
    """The runtime's output arrays as numpy (zero-copy views for the standard dtypes)."""
    return {k: v.numpy() for k, v in outputs.items()}


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
        self._models: list[Any] = []  # models loaded from cached lowered programs (outside the stack)

    def _run(self, awaitable: Any) -> Any:
        return self._loop.run_until_complete(awaitable)

    def open(self, path: Path, cache: ArtifactCache | None = None) -> tuple[Any, float, bool, str]:
        """Load the asset at `path`; returns (model, load ms, whether the lowered program came from the cache,
        captured chatter).

        With the bundled runtime (Linux, macOS 26) `executable()` lowers the program to the runtime's binary form
        in a temporary folder on every load; with `cache`, that lowered folder is kept in the ArtifactCache (keyed
        by the program's own hash and the coreai-core version) and loaded from there, which is exactly what
        `executable()` does on that path (`_write_odix`, then `AIModel.load`). The OS framework (macOS 27+) keeps
        its own compiled cache, so it always goes through `executable()`."""
        from coreai.authoring.asset import AIModelAsset

        from rnnt_tui.core.coreai.platform import uses_os_framework

        if self._stack is None:
            raise RuntimeError("this Core AI executor is closed")
        start = time.perf_counter()
        cached = False
        with native_stderr_captured() as native, quiet() as q:
            asset = AIModelAsset.load(path)
            if cache is None or uses_os_framework():
                model = self._run(self._stack.enter_async_context(asset.executable()))
            else:
                model, cached = self._lowered(asset, path, cache)
        return model, (time.perf_counter() - start) * 1000, cached, "\n".join([q.text, *native]).strip()

    def _lowered(self, asset: Any, path: Path, cache: ArtifactCache) -> tuple[Any, bool]:
        from coreai.runtime import AIModel

        from rnnt_tui.core.cache import make_key
        from rnnt_tui.versions import package_version

        key = make_key(kind="coreai-lowered", program=(path / "main.hash").read_bytes().hex(),
                       coreai_core=package_version("coreai-core"))

        def build(tmp: Path) -> dict[str, Any]:
            folder = tmp / LOWERED
            folder.mkdir()
            asset._write_odix(folder)
            return {"asset": str(path), "runtime": "coreai"}

        entry, cached = cache.get_or_build(key, build)
        model = self._run(AIModel.load(entry.path / LOWERED))
        self._models.append(model)
        return model, cached

    def function(self, model: Any, name: str = "main", **tools: Any) -> Any:
        """`model.load_function(name)` (with an IntermediateLogger / Profiler when given)."""
        with native_stderr_captured(), quiet():
            return model.load_function(name, **tools)

    def bind(self, function: Any, feed: dict[str, np.ndarray],
             state: dict[str, Any] | None = None) -> Callable[[], dict[str, Any]]:
        """A zero-argument call of `function` on `feed` (converted to NDArrays now) returning the runtime's own
        output arrays by name: only the call is in it (read them with `as_numpy`, outside any timing). `state`: the
        function's state arrays by name (NDArrays the runtime reads and updates in place)."""
        from coreai.runtime import NDArray

        arrays = {k: NDArray(np.ascontiguousarray(v)) for k, v in feed.items()}
        run = self._loop.run_until_complete

        def call() -> dict[str, Any]:
            result: dict[str, Any] = run(function(arrays, state=state) if state else function(arrays))
            return result

        return call

    def call(self, function: Any, feed: dict[str, np.ndarray],
             state: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
        return as_numpy(self.bind(function, feed, state)())

    def close(self) -> None:
        """Release every executable (and the runtime's temporary folders), then the loop."""
        self._models.clear()
        stack, self._stack = self._stack, None
        if stack is not None and not self._loop.is_closed():
            with contextlib.suppress(Exception), quiet():
                self._run(stack.aclose())
        if not self._loop.is_closed():
            self._loop.close()
