"""The simulated Mac the stand-in bridge answers for: macOS version, compute devices, SDK, and test knobs.

`MACHINE` is one mutable object the bridge reads on every call; `install` resets it and a test changes its fields
(a runner without a Neural Engine, macOS 14.0, a load refused, drift on one compute unit). The op placement rule of
compute plans lives here (`plan_rule`): it is the stand-in's own simple model of Core ML's partitioner (fp32 and
LSTM ops stay off the Neural Engine, const ops on the CPU), good for exercising callers, never a claim about what
Core ML does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_UNIT_DEVICES = {"CPU_ONLY": ("CPU",), "CPU_AND_GPU": ("CPU", "GPU"), "CPU_AND_NE": ("CPU", "NE"),
                 "ALL": ("CPU", "GPU", "NE")}
#: op types the stand-in keeps off the Neural Engine whatever their dtype
NE_UNSUPPORTED = frozenset({"lstm", "gather", "range_1d", "read_state", "write_state", "coreml_update_state"})


@dataclass
class Machine:
    """What the stand-in reports and how it behaves. `drift`: compute units -> (op output name, delta added to it)
    so a drift search has something to find; `refuse(spec, units)`: a reason to refuse a load, or None."""

    macos: str = "15.5"
    all_devices: tuple[str, ...] = ("CPU", "GPU", "NE")
    available_devices: tuple[str, ...] = ("CPU", "GPU", "NE")
    ne_cores: int = 16
    sdk26: bool = False
    refuse: Callable[[Any, str], str | None] = field(default=lambda spec, units: None)
    drift: dict[str, tuple[str, float]] = field(default_factory=dict)
    loads: list[tuple[str, str]] = field(default_factory=list)
    new_states: int = 0  # `Model::newState` calls (MLModel.make_state)

    @property
    def version(self) -> tuple[int, int]:
        parts = [int(p) for p in self.macos.split(".")[:2]]
        return parts[0], parts[1] if len(parts) > 1 else 0

    def reset(self, **changes: Any) -> None:
        fresh = Machine(**changes)
        self.__dict__.update(fresh.__dict__)

    def plan_rule(self, units: str, op_type: str, dtype: str) -> tuple[str, tuple[str, ...]]:
        """(preferred, supported) devices of one op on `units`: the units' devices this Mac makes available; the
        Neural Engine only for fp16 ops it is not kept off; the GPU before the CPU; const ops on the CPU."""
        usable = [d for d in _UNIT_DEVICES[units] if d in self.available_devices]
        if op_type == "const":
            return "CPU", ("CPU",)
        supported = tuple(d for d in usable if d != "NE" or (dtype == "float16" and op_type not in NE_UNSUPPORTED))
        preferred = "NE" if "NE" in supported else "GPU" if "GPU" in supported else "CPU"
        return preferred, supported or ("CPU",)

    def run(self, program: Any, feeds: dict[str, np.ndarray], units: str) -> dict[str, np.ndarray]:
        """The program's outputs from the MIL interpreter; with `drift` for these units, one op's output shifted
        by a delta (everything downstream of it follows)."""
        if units not in self.drift:
            return dict(program.run(feeds))
        from rnnt_tui.core.mil.trace import TraceOptions

        name, delta = self.drift[units]
        program.run(feeds, TraceOptions(keep=lambda op, op_type: True))
        found = program.last_trace.by_output().get(name) if program.last_trace is not None else None
        kept = found[0].tensors.get(name) if found else None
        if kept is None:
            return dict(program.run(feeds))
        shifted = (np.asarray(kept, np.float64) + delta).astype(np.asarray(kept).dtype)
        return dict(program.run_plan(program.plan, feeds, values={name: shifted}))


MACHINE = Machine()
