"""The MIL runtime: the same Core ML packages, executed by the tool's MIL interpreter (`core.mil`) on any OS.

It shares everything about the packages with the Core ML runtime (`PackageRuntime`: conversion or `--packages`,
inventory, feeds, padding, crops, decoder state, the joint's tiles, decision heads) and differs only in what runs
a program: `MilProgram.run` instead of Core ML's `predict`, and `MilProgram.make_state` instead of `make_state`
for a stateful decoder. So every binding path runs on Linux too. Its numbers
are the program's arithmetic as the interpreter evaluates it, op by op in the dtypes the program declares: it is
labelled "Core ML program, MIL interpreter", never "Core ML", because it is not Core ML - no Neural Engine or GPU
arithmetic, no op fusion, no compute units (they do not apply: `describe` says so). Inputs are fed in the exact
dtypes the package declares and outputs come back in the program's own dtypes (float16 where it computes them).
A compiled `.mlmodelc` cannot be read back, and a neural-network `.mlmodel` is not an ML program: both are one
clear `BadInputError` naming the file. Packages whose specs and program facts a bundle recorded are loaded by the
first step that calls them (`loads_on_first_call`), so opening a bundle imports neither coremltools nor torch.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from typing import Any, ClassVar

from rnnt_tui.core.runtimes.base import Availability, Progress, no_progress
from rnnt_tui.core.runtimes.package_inventory import ProgramFacts
from rnnt_tui.core.runtimes.package_runtime import PackageRuntime

LABEL = "Core ML program, MIL interpreter"
COMPUTE_UNITS_NOTE = ("compute units do not apply: the MIL interpreter evaluates the program on this CPU with "
                      "numpy, not on Core ML's CPU, GPU or Neural Engine")


class MilRuntime(PackageRuntime):
    """Core ML packages run by the MIL interpreter; honours every RuntimeOptions field except compute_units."""

    name: ClassVar[str] = "mil"
    label: ClassVar[str] = LABEL
    engine: ClassVar[str] = "the MIL interpreter"
    reads_compiled: ClassVar[bool] = False
    loads_on_first_call: ClassVar[bool] = True  # a load imports coremltools and plans every op: not before Ready

    @classmethod
    def availability(cls) -> Availability:
        if importlib.util.find_spec("coremltools") is None:
            return Availability(ok=False, reason="the MIL interpreter needs coremltools: pip install coremltools")
        return Availability(ok=True)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "compute_units": None, "compute_units_note": COMPUTE_UNITS_NOTE,
                "executes": "the tool's MIL interpreter (numpy), op by op in the program's dtypes"}

    def load_for(self, step: str, progress: Progress = no_progress, cancel: threading.Event | None = None) -> None:
        if "coremltools" not in sys.modules and self.deferred.pending_for(step):  # said: it takes seconds, once
            from rnnt_tui.core.coreml.spec import load_coremltools

            progress(f"{self.label}: importing coremltools to read the programs (once; takes a few seconds)", None)
            load_coremltools()
        super().load_for(step, progress, cancel)

    def _load(self, component: str, cancel: threading.Event | None) -> tuple[float, bool | None, str]:
        from rnnt_tui.core.coreml.spec import load_coremltools
        from rnnt_tui.core.mil.program import MilProgram

        load_coremltools()  # imported once per process: not this program's load time
        start = time.perf_counter()
        self.models[component] = MilProgram.load(self.packages[component].path)
        return (time.perf_counter() - start) * 1000, None, "loaded into the MIL interpreter (execution plan built)"

    def _execute(self, component: str, feed: dict[str, Any], state: Any = None) -> dict[str, Any]:
        result: dict[str, Any] = self.models[component].run(feed, state=state)
        return result

    def _new_state(self, component: str) -> Any:
        """The interpreter's counterpart of `MLModel.make_state()` (`MilProgram.make_state`)."""
        return self.models[component].make_state()

    def _program_facts(self, component: str) -> tuple[ProgramFacts | None, str | None]:
        program = self.models.get(component)
        if program is None:
            return super()._program_facts(component)
        return ProgramFacts(str(program.precision), tuple(program.weight_compression)), None
