"""`run_app`: what `rnnt-tui` (and `rnnt-tui open`) calls to open the interactive app.

Light on purpose: it imports Textual and the app, nothing heavy, so the first screen paints at once; NeMo, torch
and the runtimes load in the engine process, started once the first frame is up - or, for a recorded bundle (no
NeMo), first of all, with its open sent ahead, so that work overlaps Textual's import and the first frame. While
the app runs, anything a native library writes straight to the terminal's file descriptors (onnxruntime and torch
C++ warnings, coremltools notices) goes to a log file in the state directory instead of over the screen; Textual
keeps drawing on a duplicate of the terminal.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rnnt_tui.core.corpus.subset import Subset


def log_path() -> Path:
    from rnnt_tui.paths import state_dir

    return state_dir() / "rnnt-tui.log"


def _set_std(stdout: object, stderr: object) -> None:
    # sys.__stdout__/__stderr__ are what Textual sizes from and draws on; swapping them is the point here.
    setattr(sys, "__stdout__", stdout)  # noqa: B010
    setattr(sys, "__stderr__", stderr)  # noqa: B010


def on_a_terminal() -> bool:
    """Whether stdout and stderr are both a terminal: only then does stray output go to the log."""
    return all(stream is not None and stream.isatty() for stream in (sys.__stdout__, sys.__stderr__))


@contextlib.contextmanager
def stray_output_to(log: Path) -> Iterator[None]:
    """Point fds 1 and 2 at `log`; Textual draws on `sys.__stderr__` and sizes from `sys.__stdout__`, so both
    become private copies of the terminal for the duration."""
    if not on_a_terminal():
        yield
        return
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        sink = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError:
        yield
        return
    originals = (sys.__stdout__, sys.__stderr__)
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    copies: list[TextIO] = [os.fdopen(os.dup(fd), "w", buffering=1, encoding=getattr(stream, "encoding", None)
                                      or "utf-8", errors="replace")
                            for fd, stream in ((1, sys.__stdout__), (2, sys.__stderr__))]
    sys.stdout.flush()
    sys.stderr.flush()
    for fd in (1, 2):
        os.dup2(sink, fd)
    _set_std(*copies)
    try:
        yield
    finally:
        _set_std(*originals)
        for copy in copies:
            with contextlib.suppress(OSError, ValueError):
                copy.flush()
                copy.close()
        for fd, dup in saved.items():
            os.dup2(dup, fd)
            os.close(dup)
        os.close(sink)


def first_clip(manifest: Path) -> Path | None:
    """The first usable clip a manifest names (None: the explorer opens the demo clip meanwhile)."""
    from rnnt_tui.core.corpus.manifest import read_manifest
    from rnnt_tui.core.errors import BadInputError

    try:
        utterances = read_manifest(manifest).utterances
    except BadInputError:
        return None  # the corpus run reports the problem with the manifest
    return utterances[0].audio_path if utterances else None


def run_app(checkpoint: Path | None = None, audio: Path | None = None, against: str | None = None,
            compute_units: str = "CPU_ONLY", precision: str = "fp32", runs: int = 5, warmup: int = 1,
            packages: str | None = None, subset: Subset | None = None) -> int:
    """Open the app on `checkpoint` and `audio` (the bundled demo when None); returns the exit code. `against`
    None: Core ML on macOS, ONNX Runtime elsewhere; for a recorded bundle, what the bundle can replay (and its
    own clip in the header). `packages`: a folder of packages or Core AI assets the candidate uses instead of
    converting (the Runtimes tab lists each, mapped or skipped with the reason). `subset`: the Corpus tab's subset
    field to start with (`corpus --subset`). The cyclic GC is off until the first frame (`RnntApp.on_ready`
    freezes what start-up built, then turns it back on): its collections cost 50-120 ms of the first frame's
    ~0.5-0.9 s, and start-up leaves almost no cyclic garbage (about 1,200 objects)."""
    gc.disable()
    from rnnt_tui.app.bundle_choice import choose
    from rnnt_tui.app.engine_process import ProcessEngine
    from rnnt_tui.paths import demo_audio, demo_checkpoint

    checkpoint = checkpoint or demo_checkpoint()
    bundle = choose(checkpoint, against)
    engine = ProcessEngine(output=log_path() if on_a_terminal() else None)  # its output as `stray_output_to`
    if bundle is not None:  # a replay's open is light: it runs while Textual loads and the first frame is built
        engine.start(urgent=True)  # (NeMo's restore would compete with them: a checkpoint's engine starts after)
    try:
        from rnnt_tui.app.app import RnntApp
        from rnnt_tui.app.choices import RuntimeChoices
        from rnnt_tui.app.opening import is_manifest

        notes: list[str] = []
        if bundle is not None:
            against = bundle.against
            notes += [bundle.note] if bundle.note else []
            audio = audio or bundle.clip
        options = RuntimeChoices(against=against or ("coreml" if sys.platform == "darwin" else "onnx"),
                                 compute_units=compute_units, precision=precision, runs=runs, warmup=warmup,
                                 packages_dir=packages)
        manifest = None
        if audio is not None and is_manifest(audio):  # `rnnt-tui CHECKPOINT MANIFEST`: its first clip shown
            manifest, audio = audio, first_clip(audio)
        with stray_output_to(log_path()):
            app = RnntApp(checkpoint, audio or demo_audio(), options, engine=engine, manifest=manifest,
                          notes=tuple(notes), subset=subset)
            if bundle is not None:
                app.open_ahead()
            code = app.run()
    finally:
        engine.stop()  # the app stops it when it closes; this when it never ran
        gc.enable()  # (if the app never reached its first frame)
    return int(code or 0)
