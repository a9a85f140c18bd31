"""Which precision certifications the tool refuses, and the one wording for each: `rnnt-tui precision` (a usage
error, exit 2) and the app's precision screen (the engine's refusal) both ask `certification_problem`, so the two
front ends refuse the same combinations with the same sentence.

The MIL interpreter certifies every precision and weight choice. Core AI (`core.precision.coreai.certify_coreai`)
certifies the tool's own fp16 conversion only: not compressed weights (those are checked by comparing at those
weights, with tolerances for compressed weights), not Core ML's precisions (`mixed` / `fp16-all` are coremltools'
op selections), not a folder of the user's Core ML packages. Whether Core AI can run on this machine at all is
`core.coreai.platform.coreai_problem`'s question, asked separately (the CLI asks it only once the input is read).

No heavy imports: the CLI asks this before anything is loaded.
"""

from __future__ import annotations

#: What certifies: the Core ML program in the MIL interpreter, or the Core AI fp16 conversion on Core AI's runtime.
RUNTIMES = ("mil", "coreai")
#: The one precision Core AI certifies.
COREAI_PRECISION = "fp16"


def certification_problem(runtime: str, precision: str = COREAI_PRECISION, weights: str | None = None,
                          packages: str | None = None) -> str | None:
    """Why `runtime` does not certify this combination (None: it does). `precision` is the conversion asked for,
    `weights` the compression (None: none), `packages` a folder of the user's Core ML packages (None: the tool's own
    conversion)."""
    if runtime not in RUNTIMES:
        return f"the precision certification runs on the MIL interpreter or Core AI, not {runtime}"
    if runtime == "mil":
        return None
    if weights:
        return (f"Core AI certifies its fp16 conversion here, not {weights} weights: compressed Core AI weights are "
                "checked by comparing at those weights (`compare --against coreai --weights W`, or the app's "
                "Runtimes tab), with tolerances for compressed weights")
    if precision != COREAI_PRECISION:
        return (f"Core AI certifies its fp16 conversion here, not precision {precision}: that one is Core ML's "
                "(coremltools' op selection)")
    if packages:
        return ("Core AI certifies the tool's own Core AI conversion here, not a folder of packages: --packages is "
                "for Core ML packages (`compare --against coreai --packages DIR` runs your own Core AI assets)")
    return None
