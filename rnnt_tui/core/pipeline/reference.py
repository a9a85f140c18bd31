"""Where a comparison's reference comes from: NeMo on the restored checkpoint, or a recording of it.

`Pipeline` takes its reference from a `ReferenceProvider` and never asks which kind it is: the provider knows the
model's facts, builds each clip's reference runtime (with the steps a recording answers differently and the
recording's own timings), builds the candidate for that model, and says which settings the recording fixed.
`NemoReference` is NeMo's side (one `TorchRuntime` for every clip); the recording's provider lives with the
recordings (`core.bundle.replay.Recording`), so this package never imports `core.bundle`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rnnt_tui.core.audio import Audio, encoder_frame_seconds, load_audio
from rnnt_tui.core.nemo_audio import as_nemo_reads
from rnnt_tui.core.progress import Progress, no_progress

if TYPE_CHECKING:
    from rnnt_tui.core.checkpoint import LoadedModel
    from rnnt_tui.core.options import RuntimeOptions
    from rnnt_tui.core.pipeline.facts import ModelFacts
    from rnnt_tui.core.pipeline.request import Settings
    from rnnt_tui.core.pipeline.session import Step
    from rnnt_tui.core.runtimes.base import PrepareReport, Runtime
    from rnnt_tui.core.stats.results import StepResult
    from rnnt_tui.core.summary import ModelSummary

#: the reference runtime's registered name (`core.runtimes`)
REFERENCE_RUNTIME = "pytorch"


def load_clip(path: Path, summary: ModelSummary) -> Audio:
    """The clip at the model's rate; refused if shorter than one encoder frame."""
    return load_audio(path, summary.sample_rate or 16000,
                      min_seconds=encoder_frame_seconds(summary.window_stride, summary.encoder.subsampling_factor))


@dataclass
class ClipReference:
    """The reference on one clip: the audio as the model sees it, the runtime that answers for it and its
    preparation, the steps it runs differently, and what is applied to each result (recorded timings)."""

    audio: Audio
    runtime: Runtime
    prepared: dict[str, PrepareReport]
    overrides: dict[str, Step] = field(default_factory=dict)
    after_step: Callable[[StepResult], None] | None = None


class ReferenceProvider(Protocol):
    """A comparison's reference, as the pipeline uses it."""

    facts: ModelFacts
    #: what a candidate runtime is built from (a restored `LoadedModel`, or a recording's stand-in for it)
    loaded: Any
    #: True when nothing of NeMo's runs (the reference was recorded)
    recorded: bool
    #: what the user should know about the candidate against this reference (provenance), one line each
    warnings: list[str]

    def settings(self, asked: Settings) -> Settings:
        """The settings steps run with: `asked`, with what the reference fixed (a recording's joint mode)."""

    def clip(self, which: Path | int) -> ClipReference:
        """The reference on a clip (a path to load, or a recording's clip index)."""

    def candidate(self, against: str, options: RuntimeOptions) -> Runtime:
        """The candidate runtime `against` for this model (not prepared yet)."""

    def close(self) -> None:
        """Release the reference runtimes (and an open recording)."""


class NemoReference:
    """NeMo's side: the restored model, its facts, and one prepared `TorchRuntime` for every clip."""

    recorded = False

    def __init__(self, loaded: LoadedModel, joint_mode: str, progress: Progress = no_progress,
                 cancel: threading.Event | None = None, first: Audio | None = None) -> None:
        from rnnt_tui.core.pipeline.facts import NemoFacts
        from rnnt_tui.core.runtimes import get_runtime_class

        self.loaded = loaded
        self.facts: ModelFacts = NemoFacts(loaded, joint_mode)
        self.warnings: list[str] = []
        self.runtime: Runtime = get_runtime_class(REFERENCE_RUNTIME)(loaded)
        self.prepared = {r.component: r for r in self.runtime.prepare(progress, cancel)}
        self._first = first
        #: the last clip as the model sees it, keyed on (path, mtime, size): a session rebuild on the same file
        #: (another candidate, option or setting) does not rerun NeMo's transcribe data loader
        self._last_clip: tuple[tuple[Path, int, int], Audio] | None = None

    def settings(self, asked: Settings) -> Settings:
        return asked

    def clip(self, which: Path | int) -> ClipReference:
        if isinstance(which, int):
            raise ValueError("NeMo's reference runs on clip files, not recorded clip indices")
        path = which.expanduser().resolve()
        try:
            stat = path.stat()
            key: tuple[Path, int, int] | None = (path, stat.st_mtime_ns, stat.st_size)
        except OSError:  # load_clip names the file and the problem
            key = None
        if key is None or self._last_clip is None or self._last_clip[0] != key:
            first = self._first
            audio = first if first is not None and first.path == path else load_clip(path, self.loaded.summary)
            audio = as_nemo_reads(self.loaded, audio)
            if key is None:
                return ClipReference(audio, self.runtime, self.prepared)
            self._last_clip = (key, audio)
        return ClipReference(self._last_clip[1], self.runtime, self.prepared)

    def candidate(self, against: str, options: RuntimeOptions) -> Runtime:
        from rnnt_tui.core.runtimes import get_runtime_class

        return get_runtime_class(against)(self.loaded, options)

    def close(self) -> None:
        self.runtime.close()
