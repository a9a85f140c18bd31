"""The MIL interpreter: runs a saved Core ML ML program (.mlpackage / ML-program .mlmodel) on numpy, on any OS.

Core ML itself predicts only on macOS. This package reads the program a user ships with coremltools' milproto
loader (`load`), builds an execution plan once (`plan`: constants and compressed weights resolved, kernels bound,
intermediates freed after their last use) and runs it with numpy kernels (`kernels_*`) whose semantics are
coremltools' op definitions; ops without a kernel here fall back to coremltools' own value inference, and an op
neither can execute raises `UnsupportedOpError` naming it — never a guessed number. `trace` records what each op
produced and compares two runs op by op. Numbers it gives are "Core ML program, MIL interpreter", never "Core ML".

What it simulates: the program's ops, in its order, each in the dtype the program declares. An fp16 op computes
in fp32 (matmul / conv / reductions accumulate in fp32) and rounds its output to fp16; values the program holds in
fp16 between ops are rounded there, so range hazards (fp16 overflow, inexact integers above 2048 in fp16 shape
arithmetic) show as they would. Integer and shape arithmetic keeps the program's dtypes, except that int16/uint16
(coremltools' fp16 shape casts) are held as int32, because the real runtime does not overflow there
(coremltools#2222).

What it does NOT simulate: the Neural Engine's own arithmetic (fp16 products with its accumulation width,
activation lookup tables, NaN/Inf clamping), Core ML's op fusion and kernel choices, its CPU/GPU/Neural Engine
partitioning, or the GPU's precision. Its results find conversion mistakes and fp16 range hazards; final sign-off
on what a device computes still needs a Mac.
"""

from __future__ import annotations

from rnnt_tui.core.mil.plan import OpFailedError, UnsupportedOpError
from rnnt_tui.core.mil.program import MilProgram
from rnnt_tui.core.mil.trace import OpRecord, OpTrace, TraceComparison, TraceOptions, compare_traces

LABEL = "Core ML program, MIL interpreter"

__all__ = ["LABEL", "MilProgram", "OpFailedError", "OpRecord", "OpTrace", "TraceComparison", "TraceOptions",
           "UnsupportedOpError", "compare_traces"]
