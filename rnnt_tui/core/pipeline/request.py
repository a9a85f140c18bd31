"""What a comparison is asked to do, in one object: the files, the two runtimes and how steps run.

`Request` is what every front end builds (the CLI from its options, the app from its Runtimes tab) and hands to
`Pipeline`. `Settings` is how the steps run; `RuntimeOptions` (core.runtimes.base) is what the candidate runtime
honours. Both are frozen and picklable, so a request crosses the app's engine pipe as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rnnt_tui.core import fuse as fuse_mode
from rnnt_tui.core.names import DEFAULT_COMPUTE_UNITS, DEFAULT_PRECISION
from rnnt_tui.core.options import RuntimeOptions
from rnnt_tui.core.tolerances import Tolerance, defaults

REFERENCE_RUNTIME = "pytorch"


@dataclass(frozen=True)
class Settings:
    """How the steps run. `joint_chunk_frames` 0 means the whole T x U grid at once."""

    runs: int = 5
    warmup: int = 1
    joint_mode: str = fuse_mode.VALIDATION
    tolerances: dict[str, Tolerance] = field(default_factory=defaults)
    joint_chunk_frames: int = 32
    topk: int = 5
    #: True when the user set --atol/--rtol; otherwise a package runtime's tolerances follow the precision its
    #: programs really compute in (a package declaring fp32 I/O but computing fp16 gets the fp16 set)
    tolerances_given: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"runs": self.runs, "warmup": self.warmup, "joint_mode": self.joint_mode,
                "joint_chunk_frames": self.joint_chunk_frames, "tolerances_given": self.tolerances_given,
                "tolerances": {k: {"atol": v.atol, "rtol": v.rtol} for k, v in self.tolerances.items()}}


@dataclass(frozen=True)
class Request:
    """One comparison: checkpoint and clip, the candidate runtime (None: the reference alone) and its options."""

    checkpoint: Path
    clip: Path
    against: str | None = None
    options: RuntimeOptions = field(default_factory=RuntimeOptions)
    settings: Settings = field(default_factory=Settings)

    def resolved(self) -> Request:
        """Paths made absolute (NeMo's restore changes the working directory)."""
        return replace(self, checkpoint=self.checkpoint.expanduser().resolve(),
                       clip=self.clip.expanduser().resolve())

    @property
    def precision(self) -> str:
        return self.options.precision or DEFAULT_PRECISION

    @property
    def compute_units(self) -> str:
        return self.options.compute_units or DEFAULT_COMPUTE_UNITS
