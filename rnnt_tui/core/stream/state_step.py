"""Streaming steps with the encoder's two float caches in Core ML states (`stream --cache-states`, macOS 15+).

The same conversion as `MilStreamStep` (fixed first-chunk and next-chunk programs) but traced from
`StatefulStreamStepWrapper`: cache_last_channel and cache_last_time are registered buffers updated in place, which
coremltools 9.0 converts to `ct.StateType` states (iOS18 / macOS 15 deployment target; coremltools accepts
float16 states only, so the caches are rounded to fp16 between chunks while the program computes in fp32).
cache_last_channel_len stays an explicit input and output. Each step returns the caches read back from the state
(`read_state`), so the comparison sees the same layout as with explicit caches.

The two programs are merged into one multifunction package (`ct.utils.save_multifunction`, `MULTIFUNCTION`) with
functions `first` and `next`: their weights are stored once, and both functions declare the same states, so one
state made by either serves the whole clip, as an app ships it (`MLModel(..., function_name=...)` per function,
one `make_state()`). Packages recorded before that (two stateful packages, `encoder-first.mlpackage` and
`encoder-next.mlpackage`) still replay: two programs cannot share a state, so their caches move once per clip from
the first-chunk program's state to the next-chunk one's (read back, then written).

Carrying: the package's states form a pool of two engine states (`make_state`: the MIL interpreter's
`ProgramState` or Core ML's `MLState`, both with `read_state` / `write_state`; one pool per program for the older
layout). A call whose caches are the ones a state produced last is run on that state as it is - the free-running
feed carries its caches in the state, nothing written. Other caches (the reference's, for the teacher-forced feed;
a clip's start caches) are written into the least recently used state (`write_state`), so the free-running state
is never overwritten. `carried`, `written` and `handovers` count what happened.

- `MilStateStreamStep`: run by the tool's MIL interpreter ("Core ML program, MIL interpreter", never Core ML).
- `CoreMLStateStreamStep`: the same package predicted by Core ML (`MLModel.make_state`, `predict(..., state=)`,
  coremltools 9.0's MLState API); off macOS converted, then refused as `CoreMLStreamStep` is.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from rnnt_tui.core.stream.steps import (
    PHASES,
    Caches,
    CoreMLStreamStep,
    MilStreamStep,
    StepOutput,
    StreamStep,
    open_coreml_phases,
    per_phase_programs,
    phase_package,
)

#: the caches held in states (cache_last_channel_len stays an input and output)
STATE_NAMES = ("cache_last_channel", "cache_last_time")
#: the one package of both phases, a function each (named as the phases)
MULTIFUNCTION = "encoder-stream.mlpackage"
CARRIES = ("Core ML states (ct.StateType, fp16, macOS 15+) for cache_last_channel and cache_last_time, in one "
           "multifunction package whose first-chunk and next-chunk functions share its weights and one state: the "
           "free-running feed carries its caches in that state from the first chunk to the last, the "
           "teacher-forced feed writes the reference's caches into a second state each chunk (write_state); "
           "cache_last_channel_len is an explicit input and output")
CARRIES_TWO_PACKAGES = ("Core ML states (ct.StateType, fp16, macOS 15+) for cache_last_channel and "
                        "cache_last_time, in two packages recorded before the multifunction one: the free-running "
                        "feed carries them in the state from chunk to chunk (moved once from the first-chunk "
                        "program's state to the next-chunk one's), the teacher-forced feed writes the reference's "
                        "caches into a state each chunk (write_state); cache_last_channel_len is an explicit input "
                        "and output")


def phase_programs(path: Path) -> dict[str, tuple[Path, str | None]]:
    """phase -> (package, function) of the stateful programs in `path`: the multifunction package's functions, or
    (recorded before it) a package per phase."""
    if (path / MULTIFUNCTION).exists():
        return {phase: (path / MULTIFUNCTION, phase) for phase in PHASES}
    return per_phase_programs(path)


def merge_phases(ct: Any, out: Path) -> None:
    """Merge the per-phase packages in `out` into `MULTIFUNCTION` (a function per phase, weights deduplicated by
    coremltools), then remove them."""
    descriptor = ct.utils.MultiFunctionDescriptor()
    for phase in PHASES:
        descriptor.add_function(str(phase_package(out, phase)), src_function_name="main",
                                target_function_name=phase)
    descriptor.default_function_name = PHASES[0]
    ct.utils.save_multifunction(descriptor, str(out / MULTIFUNCTION))
    for phase in PHASES:
        shutil.rmtree(phase_package(out, phase))


class _Slot:
    """One engine state and the caches it holds now (the dict the step returned from it last)."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self.holds: Caches | None = None
        self.used = 0


class _StatePool:
    """The states of one phase's program, made on first use."""

    def __init__(self, make: Any, size: int = 2) -> None:
        self.make, self.size = make, size
        self.slots: list[_Slot] = []

    def holding(self, caches: Caches) -> _Slot | None:
        return next((s for s in self.slots if s.holds is caches), None)

    def least_recent(self) -> _Slot:
        if len(self.slots) < self.size:
            self.slots.append(_Slot(self.make()))
            return self.slots[-1]
        return min(self.slots, key=lambda s: s.used)


class StateCarrying(StreamStep):
    """A streaming step whose two float caches live in engine states between calls - anything read and written by
    cache name (`read_state` / `write_state`: Core ML's `MLState`, the MIL interpreter's `ProgramState`, Core AI's
    state arrays) - carried as the module docstring says. A subclass fills `makers` (phase -> a zeroed state) and
    `predict` (phase -> predict(feeds, state) -> outputs named as `StatefulStreamStepWrapper.OUTPUTS`), then calls
    `_start`."""

    makers: dict[str, Any]
    predict: dict[str, Any]

    def _start(self, shared: bool) -> None:
        """One pool of states for both phases when their functions share a state (a pool per program when not)."""
        self.shared = shared
        if shared:
            pool = _StatePool(self.makers[PHASES[0]])
            self.pools = {phase: pool for phase in PHASES}
        else:
            self.pools = {phase: _StatePool(self.makers[phase]) for phase in PHASES}
        self.clock, self.carried, self.written, self.handovers = 0, 0, 0, 0

    def __call__(self, features: np.ndarray, length: int, caches: Caches, first: bool) -> StepOutput:
        phase = "first" if first else "next"
        pool = self.pools[phase]
        slot = pool.holding(caches)
        if slot is not None:
            self.carried += 1
        else:
            slot = pool.least_recent()
            if any(other.holding(caches) is not None for other in self.pools.values() if other is not pool):
                self.handovers += 1
            else:
                self.written += 1
            for name in STATE_NAMES:
                slot.state.write_state(name, np.ascontiguousarray(caches[name], dtype=np.float32))
        out = self.predict[phase]({"features": self.padded(features, first), "length": np.array([length], np.int32),
                                   "cache_last_channel_len": caches["cache_last_channel_len"].astype(np.int32)},
                                  slot.state)
        self.clock += 1
        slot.used = self.clock
        held: Caches = {name: np.asarray(slot.state.read_state(name), np.float32) for name in STATE_NAMES}
        held["cache_last_channel_len"] = np.asarray(out["cache_last_channel_len_next"], np.int64).reshape(-1)
        slot.holds = held
        return np.asarray(out["encoded"], np.float32), int(np.asarray(out["encoded_length"]).reshape(-1)[0]), held


class MilStateStreamStep(StateCarrying, MilStreamStep):
    artifact = "mlpackage-states-multifunction"
    carries = CARRIES

    def _build(self, out: Path) -> dict[str, Any]:
        from rnnt_tui.core.coreml.spec import load_coremltools
        from rnnt_tui.core.quiet import quiet

        meta = super()._build(out)
        with quiet():
            merge_phases(load_coremltools()[0], out)
        return {**meta, "package": MULTIFUNCTION, "functions": list(PHASES)}

    def _traceable(self, encoder: Any, drop: int, feats: Any, frames: int, ch: Any, tm: Any,
                   chl: Any) -> tuple[Any, tuple[str, ...], tuple[Any, ...]]:
        return stateful_traceable(encoder, drop, feats, frames, ch, tm, chl)

    def _convert_options(self, ct: Any, ch: Any, tm: Any) -> dict[str, Any]:
        states = [ct.StateType(wrapped_type=ct.TensorType(shape=tuple(t.shape), dtype=np.float16), name=name)
                  for name, t in zip(STATE_NAMES, (ch, tm), strict=True)]
        return {"minimum_deployment_target": ct.target.macOS15, "states": states}

    def _load(self, path: Path) -> None:
        from rnnt_tui.core.coreml.spec import read_spec
        from rnnt_tui.core.mil.program import MilProgram

        self.predict, self.makers = {}, {}
        programs = phase_programs(path)
        for phase, (package, function) in programs.items():
            self.frames[phase] = int(read_spec(package, function).input("features").shape[2])
            program = MilProgram.load(package, function)
            self.makers[phase] = program.make_state
            self.predict[phase] = lambda feeds, state, run=program.run: run(feeds, state=state)
        self._start_programs(programs)

    def _start_programs(self, programs: dict[str, tuple[Path, str | None]]) -> None:
        """`_start`, one state shared when both phases are functions of one package."""
        shared = len({package for package, _ in programs.values()}) == 1
        self.carries = CARRIES if shared else CARRIES_TWO_PACKAGES
        self._start(shared)


def stateful_traceable(encoder: Any, drop: int, feats: Any, frames: int, ch: Any, tm: Any,
                       chl: Any) -> tuple[Any, tuple[str, ...], tuple[Any, ...]]:
    """(module, input names, example input) of one phase with the two float caches in registered buffers
    (`StatefulStreamStepWrapper`): what the Core ML and Core AI converters turn into states."""
    import torch

    from rnnt_tui.core.stream.wrapper import StatefulStreamStepWrapper

    example = (feats, torch.tensor([frames], dtype=torch.int32), chl.to(torch.int32))
    return StatefulStreamStepWrapper(encoder, drop, ch, tm), StatefulStreamStepWrapper.INPUTS, example


class CoreMLStateStreamStep(MilStateStreamStep):
    """The stateful package predicted by Core ML (macOS 15; the Core ML test stand-in elsewhere in tests): each
    function opened as its own MLModel (`function_name`), one `make_state()` for both."""

    name = "coreml"
    close = CoreMLStreamStep.close

    def _load(self, path: Path) -> None:
        programs = phase_programs(path)
        self.loader, models = open_coreml_phases(self, path, programs)
        self.makers = {phase: model.make_state for phase, model in models.items()}
        self.predict = {phase: (lambda feeds, state, model=model: model.predict(feeds, state=state))
                        for phase, model in models.items()}
        self._start_programs(programs)
