"""The Core AI streaming encoder step: NeMo's `encoder.cache_aware_stream_step`, caches as explicit inputs and
outputs, converted with coreai-torch and run by Apple's Core AI runtime.

Converted the way the tool converts its offline components (`core.coreai.export.convert_module`: torch.export,
coreai-torch's decompositions, `TorchConverter`, outputs named by role) from the same traceable wrapper the Core ML
step uses (`core.stream.wrapper.StreamStepWrapper`), one fp32 asset per phase with static shapes: the first chunk
(drop_extra_pre_encoded 0, NeMo's first-chunk rule, a shorter chunk) and the rest. A shorter last chunk is
zero-padded, its true length fed. Both assets live in one ArtifactCache entry; their lowered programs are kept in
the cache too (`core.coreai.execute.Executor.open`). The label says which runtime ran it ("Core AI (Apple Core AI
runtime, Linux CPU)" here).

`CoreAIStateStreamStep` (`stream --cache-states --against coreai`) converts `StatefulStreamStepWrapper` instead:
cache_last_channel and cache_last_time become the functions' Core AI states (fp32 arrays handed to each call and
updated in place), and both phases are entrypoints of one asset (`MULTIFUNCTION`, `convert_entrypoints`) whose
weights are stored once; one set of state arrays serves both functions (`state_step.StateCarrying` carries them).
"""

from __future__ import annotations

import gc
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from rnnt_tui.core.errors import RuntimeUnavailableError, StepFailedError
from rnnt_tui.core.pipeline.events import ProgressCallback
from rnnt_tui.core.stream.state_step import STATE_NAMES, StateCarrying, stateful_traceable
from rnnt_tui.core.stream.steps import (
    PHASES,
    Caches,
    StepOutput,
    StreamStep,
    drop_for,
    explicit_traceable,
    pre_encode,
    step_output,
)

#: the one asset of both phases (a function each, named as the phases) when the step is built as one
MULTIFUNCTION = "encoder-stream.aimodel"
#: where `CoreAIStateStreamStep` keeps the caches (said in the report)
CARRIES = ("Core AI states (fp32 arrays given to each call as the function's state, updated in place by the "
           "runtime) for cache_last_channel and cache_last_time: the free-running feed carries its caches in one "
           "state from the first chunk to the last (the first-chunk and next-chunk functions declare the same "
           "states), the teacher-forced feed writes the reference's caches into a second state each chunk; "
           "cache_last_channel_len is an explicit input and output")


class CoreAIStreamStep(StreamStep):
    name = "coreai"
    libraries = ("nemo_toolkit", "torch", "coreai-torch", "coreai-core")
    #: one asset with a function per phase (`MULTIFUNCTION`) instead of an asset per phase
    multifunction = False

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

        from rnnt_tui.core.coreai.export import Entrypoint, convert_entrypoints

        clone = self._clone()
        cfg = clone.encoder.streaming_cfg
        ch, tm, chl = clone.encoder.get_initial_cache_state(batch_size=1)
        frames: dict[str, int] = {}
        entries: list[Entrypoint] = []
        for phase in PHASES:
            chunk, pre = pre_encode(cfg, phase)
            frames[phase] = chunk + pre
            feats = torch.zeros(1, int(clone.encoder._feat_in), frames[phase])
            module, names, example = self._traceable(clone.encoder, drop_for(cfg, phase), feats, frames[phase], ch,
                                                     tm, chl)
            entries.append(Entrypoint(phase, module.eval(), example, names, type(module).OUTPUTS,
                                      getattr(type(module), "STATES", None)))
        notes: list[str] = []
        if self.multifunction:  # one asset, a function per phase: the weights stored once
            notes += convert_entrypoints(entries, out / MULTIFUNCTION, metadata={
                "component": "stream-step", "source_sha256": self.loaded.sha256, "frames": frames})
        else:
            for entry in entries:
                notes += convert_entrypoints([replace(entry, name="main")], out / f"encoder-{entry.name}.aimodel",
                                             metadata={"component": f"stream-step-{entry.name}",
                                                       "source_sha256": self.loaded.sha256,
                                                       "frames": frames[entry.name]})
        return {"converter": "torch.export + coreai-torch TorchConverter (fp32)", "frames": frames,
                "context": self.context, "notes": notes}

    def _programs(self, path: Path) -> dict[str, tuple[Path, str]]:
        """phase -> (asset, function) in a step's folder."""
        if self.multifunction:
            return {phase: (path / MULTIFUNCTION, phase) for phase in PHASES}
        return {phase: (path / f"encoder-{phase}.aimodel", "main") for phase in PHASES}

    def _traceable(self, encoder: Any, drop: int, feats: Any, frames: int, ch: Any, tm: Any,
                   chl: Any) -> tuple[Any, tuple[str, ...], tuple[Any, ...]]:
        return explicit_traceable(encoder, drop, feats, frames, ch, tm, chl)

    def _load(self, path: Path) -> None:
        from rnnt_tui.core.coreai.assets import read_asset
        from rnnt_tui.core.coreai.execute import Executor
        from rnnt_tui.core.coreai.platform import where_it_runs

        self.executor: Any = Executor()
        lowering = self._cache()
        self.functions: dict[str, Any] = {}
        opened: dict[Path, Any] = {}
        for phase, (asset, function) in self._programs(path).items():
            self.frames[phase] = int(read_asset(asset).functions[function].input("features").shape[2])
            if asset not in opened:
                opened[asset] = self.executor.open(asset, lowering)
                _, ms, cached, _ = opened[asset]
                self.notes.append(f"{asset.name} loaded by {where_it_runs()} in {ms:.0f} ms "
                                  f"({'lowered program from the cache' if cached else 'lowered now'})")
            self.functions[phase] = self.executor.function(opened[asset][0], function)

    def __call__(self, features: np.ndarray, length: int, caches: Caches, first: bool) -> StepOutput:
        out = self.executor.call(self.functions["first" if first else "next"], {
            "features": self.padded(features, first), "length": np.array([length], np.int32),
            "cache_last_channel": caches["cache_last_channel"].astype(np.float32),
            "cache_last_time": caches["cache_last_time"].astype(np.float32),
            "cache_last_channel_len": caches["cache_last_channel_len"].astype(np.int32)})
        return step_output(out)

    def close(self) -> None:
        """Release the functions (and whatever else holds the runtime's objects) before the executables: left to the
        interpreter's exit, the Swift runtime can abort ("C++ exception handling detected ...") tearing them down
        after itself (2 replay processes in 5 did)."""
        self.functions = {}
        gc.collect()
        executor = getattr(self, "executor", None)
        if executor is not None:
            executor.close()
        self.executor = None
        super().close()


class CoreAIState:
    """One set of a Core AI function's state arrays (the NDArrays a call reads and updates in place, named as the
    caches), read and written by cache name as an `MLState` is."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]) -> None:
        from coreai.runtime import NDArray

        self.arrays = {name: NDArray(np.zeros(shape, np.float32)) for name, shape in shapes.items()}

    def read_state(self, name: str) -> np.ndarray:
        return np.array(self.arrays[name].numpy(), np.float32)

    def write_state(self, name: str, value: np.ndarray) -> None:
        from coreai.runtime import NDArray

        self.arrays[name] = NDArray(np.ascontiguousarray(value, np.float32))


def state_shapes(function: Any, asset: Path) -> dict[str, tuple[int, ...]]:
    """cache name -> shape of a converted stateful step's states (named as the caches at conversion:
    `Entrypoint.state_names`); StepFailedError naming the asset when a cache has no state."""
    desc = function.desc
    missing = [cache for cache in STATE_NAMES if cache not in desc.state_names]
    if missing:
        raise StepFailedError(f"{asset}: no state for {', '.join(missing)} (its states: "
                              f"{', '.join(desc.state_names) or 'none'})")
    return {cache: tuple(int(d) for d in desc.state_descriptor(cache).shape) for cache in STATE_NAMES}


class CoreAIStateStreamStep(StateCarrying, CoreAIStreamStep):
    """`stream --cache-states --against coreai`: the step converted from `StatefulStreamStepWrapper` into one asset
    whose first-chunk and next-chunk functions share its weights, its two float caches in Core AI states named as the
    caches (fp32: nothing rounded between chunks, unlike coremltools' fp16 states)."""

    artifact = "aimodel-states-multifunction"
    carries = CARRIES
    multifunction = True

    def _traceable(self, encoder: Any, drop: int, feats: Any, frames: int, ch: Any, tm: Any,
                   chl: Any) -> tuple[Any, tuple[str, ...], tuple[Any, ...]]:
        return stateful_traceable(encoder, drop, feats, frames, ch, tm, chl)

    def _load(self, path: Path) -> None:
        super()._load(path)
        self.makers, self.predict = {}, {}
        shapes = {}
        for phase in PHASES:
            function = self.functions[phase]
            shapes[phase] = state_shapes(function, path / MULTIFUNCTION)
            self.makers[phase] = lambda shape=shapes[phase]: CoreAIState(shape)
            self.predict[phase] = (lambda feeds, state, function=function:
                                   self.executor.call(function, feeds, state.arrays))
        self._start(shapes["first"] == shapes["next"])

    def close(self) -> None:
        self.pools, self.predict, self.makers = {}, {}, {}  # the state arrays and the calls holding the functions
        super().close()
