"""What a candidate runtime is asked to honour (precision, compute units, packages, bounds, cache).

Plain data with no library behind it: the app builds these in its own process, which never imports numpy or a
runtime. Each runtime documents which fields it honours.
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnt_tui.core.names import DEFAULT_COMPUTE_UNITS, DEFAULT_PRECISION


@dataclass(frozen=True)
class RuntimeOptions:
    """Options a candidate runtime may use."""

    precision: str = DEFAULT_PRECISION
    compute_units: str = DEFAULT_COMPUTE_UNITS
    minimum_deployment_target: str = "macOS14"
    max_frames: int | None = None  # Core ML time bound in encoder frames; None = about 5 minutes of audio
    packages_dir: str | None = None
    use_cache: bool = True
    weights: str | None = None  # Core AI: compress the converted weights (int8, palettize6, palettize4)
