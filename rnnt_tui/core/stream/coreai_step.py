"""The Core AI streaming encoder step: NeMo's `encoder.cache_aware_stream_step`, caches as explicit inputs and
outputs, converted with coreai-torch and run by Apple's Core AI runtime.

Converted the way the tool converts its offline components (`core.coreai.export.convert_module`: torch.export,
coreai-torch's decompositions, `TorchConverter`, outputs named by role) from the same traceable wrapper the Core ML
step uses (`core.stream.wrapper.StreamStepWrapper`), one fp32 asset per phase with static shapes: the first chunk
(drop_extra_pre_encoded 0, NeMo's first-chunk rule, a shorter chunk) and the rest. A shorter last chunk is
zero-padded, its true length fed. Both assets live in one ArtifactCache entry; their lowered programs are kept in
the cache too (`core.coreai.execute.Executor.open`). The label says which runtime ran it ("Core AI (Apple Core AI
runtime, Linux CPU)" here).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from rnnt_tui.core.errors import RuntimeUnavailableError
from rnnt_tui.core.pipeline.events import ProgressCallback
from rnnt_tui.core.stream.steps import PHASES, Caches, StepOutput, StreamStep, drop_for, pre_encode, step_output


class CoreAIStreamStep(StreamStep):
    name = "coreai"
    libraries = ("nemo_toolkit", "torch", "coreai-torch", "coreai-core")

    @property
    def label(self) -> str:
        from rnnt_tui.core.coreai.platform import label_text

        return label_text()

    def prepare(self, progress: ProgressCallback, cancel: threading.Event | None = None) -> None:
        from rnnt_tui.core.coreai.platform import coreai_problem

        problem = coreai_problem(need_converter=True)
        if problem is not None:
            raise RuntimeUnavailableError(problem)
        super().prepare(progress, cancel)

    def _build(self, out: Path) -> dict[str, Any]:
        import torch

        from rnnt_tui.core.coreai.export import convert_module
        from rnnt_tui.core.stream.wrapper import StreamStepWrapper

        clone = self._clone()
        cfg = clone.encoder.streaming_cfg
        ch, tm, chl = clone.encoder.get_initial_cache_state(batch_size=1)
        frames: dict[str, int] = {}
        notes: list[str] = []
        for phase in PHASES:
            chunk, pre = pre_encode(cfg, phase)
            frames[phase] = chunk + pre
            example = (torch.zeros(1, int(clone.encoder._feat_in), frames[phase]),
                       torch.tensor([frames[phase]], dtype=torch.int32), ch, tm, chl.to(torch.int32))
            wrapper = StreamStepWrapper(clone.encoder, drop_for(cfg, phase)).eval()
            notes += convert_module(wrapper, example, out / f"encoder-{phase}.aimodel",
                                    input_names=StreamStepWrapper.INPUTS, output_names=StreamStepWrapper.OUTPUTS,
                                    metadata={"component": f"stream-step-{phase}", "source_sha256": self.loaded.sha256,
                                              "frames": frames[phase]})
        return {"converter": "torch.export + coreai-torch TorchConverter (fp32)", "frames": frames,
                "context": self.context, "notes": notes}

    def _load(self, path: Path) -> None:
        from rnnt_tui.core.coreai.assets import read_asset
        from rnnt_tui.core.coreai.execute import Executor
        from rnnt_tui.core.coreai.platform import where_it_runs

        self.executor: Any = Executor()
        lowering = self._cache()
        self.functions: dict[str, Any] = {}
        for phase in PHASES:
            asset = path / f"encoder-{phase}.aimodel"
            self.frames[phase] = int(read_asset(asset).functions["main"].input("features").shape[2])
            model, ms, cached, _ = self.executor.open(asset, lowering)
            self.functions[phase] = self.executor.function(model)
            self.notes.append(f"{phase} chunk loaded by {where_it_runs()} in {ms:.0f} ms "
                              f"({'lowered program from the cache' if cached else 'lowered now'})")

    def __call__(self, features: np.ndarray, length: int, caches: Caches, first: bool) -> StepOutput:
        out = self.executor.call(self.functions["first" if first else "next"], {
            "features": self.padded(features, first), "length": np.array([length], np.int32),
            "cache_last_channel": caches["cache_last_channel"].astype(np.float32),
            "cache_last_time": caches["cache_last_time"].astype(np.float32),
            "cache_last_channel_len": caches["cache_last_channel_len"].astype(np.int32)})
        return step_output(out)

    def close(self) -> None:
        executor = getattr(self, "executor", None)
        if executor is not None:
            executor.close()
        self.executor = None
