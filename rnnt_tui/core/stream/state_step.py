"""Streaming steps with the encoder's two float caches in Core ML states (`stream --cache-states`, macOS 15+).

The same conversion as `MilStreamStep` (two fixed programs, first and next chunk) but traced from
`StatefulStreamStepWrapper`: cache_last_channel and cache_last_time are registered buffers updated in place, which
coremltools 9.0 converts to `ct.StateType` states (iOS18 / macOS 15 deployment target; coremltools accepts
float16 states only, so the caches are rounded to fp16 between chunks while the program computes in fp32).
cache_last_channel_len stays an explicit input and output. Each step returns the caches read back from the state
(`read_state`), so the comparison sees the same layout as with explicit caches.

Carrying: each phase's program has a pool of two engine states (`make_state`: the MIL interpreter's
`ProgramState` or Core ML's `MLState`, both with `read_state` / `write_state`). A call whose caches are the ones a
state of that program produced last is run on that state as it is - the free-running feed carries its caches in
the state, nothing written. Other caches (the reference's, for the teacher-forced feed; a clip's start caches) are
written into the least recently used state of the pool (`write_state`), so the free-running state is never
overwritten. Two programs cannot share a state: the caches move once per clip from the first-chunk program's state
to the next-chunk one's (read back, then written). `carried`, `written` and `handovers` count what happened.

- `MilStateStreamStep`: run by the tool's MIL interpreter ("Core ML program, MIL interpreter", never Core ML).
- `CoreMLStateStreamStep`: the same packages predicted by Core ML (`MLModel.make_state`, `predict(..., state=)`,
  coremltools 9.0's MLState API); off macOS converted, then refused as `CoreMLStreamStep` is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnt_tui.core.stream.steps import (
    PHASES,
    Caches,
    CoreMLStreamStep,
    MilStreamStep,
    StepOutput,
    open_coreml_phases,
)

#: the caches held in states (cache_last_channel_len stays an input and output)
STATE_NAMES = ("cache_last_channel", "cache_last_time")
CARRIES = ("Core ML states (ct.StateType, fp16, macOS 15+) for cache_last_channel and cache_last_time: the "
           "free-running feed carries them in the state from chunk to chunk (moved once from the first-chunk "
           "program's state to the next-chunk one's), the teacher-forced feed writes the reference's caches into a "
           "state each chunk (write_state); cache_last_channel_len is an explicit input and output")


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


class MilStateStreamStep(MilStreamStep):
    artifact = "mlpackage-states"
    carries = CARRIES
    #: phase -> its program's `make_state` and `predict(feeds, state)`
    makers: dict[str, Any]

    def _traceable(self, encoder: Any, drop: int, feats: Any, frames: int, ch: Any, tm: Any,
                   chl: Any) -> tuple[Any, tuple[str, ...], tuple[Any, ...]]:
        import torch

        from rnnt_tui.core.stream.wrapper import StatefulStreamStepWrapper

        example = (feats, torch.tensor([frames], dtype=torch.int32), chl.to(torch.int32))
        return StatefulStreamStepWrapper(encoder, drop, ch, tm), StatefulStreamStepWrapper.INPUTS, example

    def _convert_options(self, ct: Any, ch: Any, tm: Any) -> dict[str, Any]:
        states = [ct.StateType(wrapped_type=ct.TensorType(shape=tuple(t.shape), dtype=np.float16), name=name)
                  for name, t in zip(STATE_NAMES, (ch, tm), strict=True)]
        return {"minimum_deployment_target": ct.target.macOS15, "states": states}

    def _load(self, path: Any) -> None:
        from rnnt_tui.core.coreml.spec import read_spec
        from rnnt_tui.core.mil.program import MilProgram

        self.predict, self.makers = {}, {}
        for phase in PHASES:
            package = path / f"encoder-{phase}.mlpackage"
            self.frames[phase] = int(read_spec(package).input("features").shape[2])
            program = MilProgram.load(package)
            self.makers[phase] = program.make_state
            self.predict[phase] = lambda feeds, state, run=program.run: run(feeds, state=state)
        self._start()

    def _start(self) -> None:
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
            if any(other.holding(caches) is not None for other in self.pools.values()):
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


class CoreMLStateStreamStep(MilStateStreamStep):
    """The stateful packages predicted by Core ML (macOS 15; the Core ML test stand-in elsewhere in tests)."""

    name = "coreml"
    close = CoreMLStreamStep.close

    def _load(self, path: Any) -> None:
        self.loader, models = open_coreml_phases(self, path)
        self.makers = {phase: model.make_state for phase, model in models.items()}
        self.predict = {phase: (lambda feeds, state, model=model: model.predict(feeds, state=state))
                        for phase, model in models.items()}
        self._start()
