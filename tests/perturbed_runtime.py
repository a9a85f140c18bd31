"""A candidate runtime for tests: NeMo/PyTorch on a copy of the model with one weight nudged.

It goes through the same runtime seam as ONNX Runtime and Core ML, so the comparison code and the CLI treat it
like any other candidate; the tests register it under the name "perturbed".
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, ClassVar

import torch

from rnnt_tui.core.checkpoint import LoadedModel, copy_model
from rnnt_tui.core.fuse import VALIDATION, FuseMode
from rnnt_tui.core.runtimes.base import Availability, RuntimeOptions
from rnnt_tui.core.runtimes.torch_runtime import TorchRuntime

#: which parameter to nudge, chosen by the test through the environment (the CLI builds the runtime itself)
TARGET_ENV = "RNNT_TUI_TEST_PERTURB"


class PerturbedRuntime(TorchRuntime):
    name: ClassVar[str] = "perturbed"
    label: ClassVar[str] = "perturbed copy"

    def __init__(self, loaded: LoadedModel, options: RuntimeOptions | None = None,
                 target: str | None = None, amount: float = 0.05) -> None:
        target = target or os.environ.get(TARGET_ENV, "joint.joint_net.2.weight")
        model: Any = copy_model(loaded.model)
        FuseMode(model).set(VALIDATION)  # like an export: raw logits, no fused loss
        with torch.no_grad():
            dict(model.named_parameters())[target].add_(amount)
        super().__init__(replace(loaded, model=model), options)
        self.target = target


class CrashingRuntime(TorchRuntime):
    """A candidate whose preparation (its "conversion") raises, as a converter crash does."""

    name: ClassVar[str] = "crashing"
    label: ClassVar[str] = "crashing converter"

    def prepare(self, progress: Any = None, cancel: Any = None) -> Any:
        raise RuntimeError("converter crashed in op 'slice_by_index_42'")


class UnavailableRuntime(TorchRuntime):
    """A candidate that prepares but cannot run on this machine (as Core ML off macOS)."""

    name: ClassVar[str] = "unavailable"
    label: ClassVar[str] = "a runtime for another machine"

    @classmethod
    def availability(cls) -> Availability:
        return Availability(ok=False, reason="it needs a machine this is not")


class SweepableRuntime(TorchRuntime):
    """A candidate the compute-unit sweep can run on any OS (NeMo/PyTorch under its own label: nothing it
    computes is shown as Core ML)."""

    name: ClassVar[str] = "sweepable"
    label: ClassVar[str] = "PyTorch stand-in (test)"
