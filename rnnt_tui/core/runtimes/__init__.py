"""Runtimes behind one seam: PyTorch/NeMo (the reference), ONNX Runtime, Core ML, the MIL interpreter (Core ML
packages evaluated off the Mac) and Core AI (Apple's runtime, on Linux too).

`get_runtime_class(name)` imports a runtime's module only when asked, so listing runtimes stays cheap.
"""

from __future__ import annotations

import importlib

from rnnt_tui.core.runtimes.base import Runtime

RUNTIMES = {
    "pytorch": "rnnt_tui.core.runtimes.torch_runtime:TorchRuntime",
    "onnx": "rnnt_tui.core.runtimes.onnx_runtime:OnnxRuntime",
    "coreml": "rnnt_tui.core.runtimes.coreml_runtime:CoreMLRuntime",
    "mil": "rnnt_tui.core.runtimes.mil_runtime:MilRuntime",
    "coreai": "rnnt_tui.core.runtimes.coreai_runtime:CoreAIRuntime",
}
CANDIDATES = ("onnx", "coreml", "mil", "coreai")


def get_runtime_class(name: str) -> type[Runtime]:
    try:
        module_name, attr = RUNTIMES[name].split(":")
    except KeyError:
        raise ValueError(f"unknown runtime {name!r}; choose one of {', '.join(RUNTIMES)}") from None
    cls: type[Runtime] = getattr(importlib.import_module(module_name), attr)
    return cls
