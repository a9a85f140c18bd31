"""The runtime choices the app's Runtimes tab edits, and how they become the core's `Request`; the window settings
`w` asks for.

Plain UI state (no library behind it): the second runtime, the Core ML compute unit, precision, timed runs and
warm-ups, and the `--packages` folder it was opened with. `request()` is the one place where the app's state
turns into what the pipeline runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rnnt_tui.core.names import DEFAULT_COMPUTE_UNITS, DEFAULT_PRECISION
from rnnt_tui.core.options import RuntimeOptions
from rnnt_tui.core.pipeline.request import Request, Settings
from rnnt_tui.core.stream.config import windows_problem
from rnnt_tui.core.tolerances import resolve


@dataclass(frozen=True)
class RuntimeChoices:
    """What the Runtimes tab shows and edits."""

    against: str = "onnx"
    compute_units: str = DEFAULT_COMPUTE_UNITS
    precision: str = DEFAULT_PRECISION
    runs: int = 5
    warmup: int = 1
    packages_dir: str | None = None  # `--packages`: the candidate's packages or assets instead of a conversion

    def request(self, checkpoint: Path, clip: Path, joint_mode: str) -> Request:
        """The pipeline request for these choices (tolerances follow the precision)."""
        return Request(checkpoint, clip, self.against,
                       RuntimeOptions(precision=self.precision, compute_units=self.compute_units,
                                      packages_dir=self.packages_dir),
                       Settings(runs=self.runs, warmup=self.warmup, joint_mode=joint_mode,
                                tolerances=resolve(self.precision)))


@dataclass(frozen=True)
class WindowChoices:
    """What `w` runs with (`stream --window / --overlap / --mel-left`), remembered for the session: seconds per
    window, overlap between neighbours, and audio fed before each window for left context. The defaults are the
    common Core ML export's fixed 15 s window."""

    window_s: float = 15.0
    overlap_s: float = 2.0
    mel_left_s: float = 0.0

    def problem(self) -> str | None:
        """Why these cannot run (None: they can), by the CLI's rules."""
        return windows_problem(self.window_s, self.overlap_s, self.mel_left_s)
