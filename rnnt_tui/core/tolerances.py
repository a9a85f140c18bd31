"""Default tolerances per component, in one place, and how CLI overrides are parsed.

Pass/fail is numpy's allclose rule per element: |candidate - reference| <= atol + rtol * |reference|.
The defaults suit an fp32 export of a trained model; fp16 Core ML runs need the looser `FP16` set. They start
from the widely used parakeet conversion scripts' values (mel 1.0/1e-2, encoder 5e-2/5e-3, decoder 1e-1/1e-2,
joint 1e-1/1e-2) tightened for fp32, where exports of these components typically agree to ~1e-5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rnnt_tui.core.components import COMPONENTS


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float


FP32 = {
    "preprocessor": Tolerance(atol=1e-3, rtol=1e-3),
    "encoder": Tolerance(atol=1e-3, rtol=1e-3),
    "decoder": Tolerance(atol=1e-4, rtol=1e-3),
    "joint": Tolerance(atol=1e-3, rtol=1e-3),
}
FP16 = {
    "preprocessor": Tolerance(atol=1.0, rtol=1e-2),
    "encoder": Tolerance(atol=5e-2, rtol=5e-3),
    "decoder": Tolerance(atol=1e-1, rtol=1e-2),
    "joint": Tolerance(atol=1e-1, rtol=1e-2),
}

#: compressed weights (int8, 6- / 4-bit palettes) change every weight by up to half a quantisation step, so a
#: component's output moves by about a percent of its range: judged relative to the output (and by the decode)
COMPRESSED = {
    "preprocessor": FP16["preprocessor"],
    "encoder": Tolerance(atol=0.5, rtol=0.1),
    "decoder": Tolerance(atol=0.25, rtol=0.1),
    "joint": Tolerance(atol=1.0, rtol=0.1),
}


def defaults(precision: str = "fp32") -> dict[str, Tolerance]:
    return dict(FP16 if precision == "fp16" else FP32)


def parse_override(text: str, kind: str) -> dict[str, float]:
    """Parse `--atol` / `--rtol` values: `1e-3` (every component) or `encoder=1e-2,joint=5e-2`."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.rpartition("=")
        names = [name] if sep else list(COMPONENTS)
        for component in names:
            if component not in COMPONENTS:
                raise ValueError(f"--{kind}: unknown component {component!r} (use {', '.join(COMPONENTS)})")
            out[component] = tolerance_number(value, kind)
    return out


def tolerance_number(value: str, kind: str) -> float:
    """One `--atol` / `--rtol` value: a finite number >= 0 (NaN would pass every element, a negative none);
    ValueError saying which otherwise."""
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"--{kind}: {value!r} is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"--{kind}: {value!r} is not a tolerance (a finite number >= 0)")
    return number


def resolve(precision: str, atol: dict[str, float] | None = None,
            rtol: dict[str, float] | None = None) -> dict[str, Tolerance]:
    base = defaults(precision)
    return {c: Tolerance(atol=(atol or {}).get(c, t.atol), rtol=(rtol or {}).get(c, t.rtol))
            for c, t in base.items()}
