"""The runtime seam: what every runtime (reference or candidate) implements.

A runtime says whether it can run here (and why not, in one sentence), prepares each component (export /
convert / load, each reported with its timing and whether the cache served it), binds a component to inputs
(so the timed region holds only the call), and offers the two step functions greedy decoding needs.
Adding a runtime means adding a subclass; the comparison code does not change.

Optional capabilities are declared here once, with the defaults a plain runtime has, and overridden by the runtimes
that have them (the package runtimes: program tolerances, bind notes, heads, a decision-head decode, packages,
inventory, warnings, programs loaded by the step that first calls them; Core ML: compiled paths). The steps read
them as attributes, never probe for them.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from rnnt_tui.core.options import RuntimeOptions
from rnnt_tui.core.progress import Progress, no_progress

if TYPE_CHECKING:
    from pathlib import Path

    from rnnt_tui.core.checkpoint import LoadedModel
    from rnnt_tui.core.tolerances import Tolerance

__all__ = ["Availability", "BoundCall", "FunctionCall", "PrepareReport", "Progress", "Runtime", "RuntimeOptions",
           "no_progress"]

@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""


@dataclass
class PrepareReport:
    """How a component was made ready on a runtime."""

    component: str
    action: str
    prepare_ms: float
    load_ms: float | None = None
    cached: bool = False
    artifact: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"component": self.component, "action": self.action, "prepare_ms": round(self.prepare_ms, 3),
                "load_ms": None if self.load_ms is None else round(self.load_ms, 3), "cached": self.cached,
                "artifact": self.artifact, "notes": list(self.notes)}


class BoundCall(ABC):
    """A component bound to inputs already in the runtime's native form."""

    @abstractmethod
    def __call__(self) -> Any:
        """Run the component once (this is what gets timed)."""

    @abstractmethod
    def outputs(self, raw: Any) -> dict[str, np.ndarray]:
        """Convert one call's raw result to the named numpy outputs of the component contract."""


class FunctionCall(BoundCall):
    """A BoundCall from two plain functions."""

    def __init__(self, call: Callable[[], Any], convert: Callable[[Any], dict[str, np.ndarray]]) -> None:
        self._call = call
        self._convert = convert

    def __call__(self) -> Any:
        return self._call()

    def outputs(self, raw: Any) -> dict[str, np.ndarray]:
        return self._convert(raw)


@dataclass(frozen=True)
class TimeCapacity:
    """The most a component's call takes on its time axis: `size` in the contract input's units (samples of
    audio_signal, frames of features), `fixed` when that is the only size it takes (a fixed window, padded up to),
    `path` the file that declares it."""

    size: int
    fixed: bool
    path: Path


class Runtime(ABC):
    """One way of running the model's components."""

    name: ClassVar[str]
    label: ClassVar[str]
    #: the components this runtime can run on its own (others are fed the reference's outputs)
    components: ClassVar[tuple[str, ...]]

    def __init__(self, loaded: LoadedModel, options: RuntimeOptions | None = None) -> None:
        from rnnt_tui.core import threads

        threads.apply()  # the process's chosen thread count, before anything is timed (core.threads says why)
        self.loaded = loaded
        self.options = options or RuntimeOptions()
        self.reports: dict[str, PrepareReport] = {}
        #: per component, what binding it did to the inputs (a fixed window padded, tiles, ...)
        self.bind_notes: dict[str, list[str]] = {}
        #: what the user should know about the candidate's files (shapes, provenance), one line each
        self.warnings: list[str] = []
        #: every file the runtime looked at, with what it was used for or why it was skipped (`.line()`, `.to_json()`)
        self.inventory: list[Any] = []
        #: the model files it runs, by component or head (package runtimes: `PackageInfo`)
        self.packages: dict[str, Any] = {}
        #: compiled models by component (Core ML), for compute plans and load timings
        self.compiled_paths: dict[str, Path] = {}

    # -- optional capabilities (the defaults of a runtime without them) ------------------------------
    def tolerances(self) -> dict[str, Tolerance] | None:
        """The tolerances its programs' real compute precision calls for; None: the settings' own."""
        return None

    @property
    def heads(self) -> tuple[str, ...]:
        """Extra bindable heads beyond `components` (fused mel+encoder, joint-decision heads)."""
        return ()

    def time_capacity(self, component: str) -> TimeCapacity | None:
        """The most one call of `component` (or head) takes on its input's time axis, as its files declare it;
        None: any length (or nothing loaded for it)."""
        return None

    @property
    def decodes_through_decision(self) -> bool:
        """True when its greedy decode takes each step's decision from a decision head (`decide_step`)."""
        return False

    def decide_step(self, frame: np.ndarray, decoder_output: Any) -> tuple[int, int, float]:
        """(token, duration bin, probability) of one cell, from a decision head."""
        raise NotImplementedError(f"{self.label} has no decision head")

    def package_feed(self, component: str, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
        """The package-named feed of one call of `component` (package runtimes)."""
        raise NotImplementedError(f"{self.label} runs no packages")

    def load_for(self, step: str, progress: Progress = no_progress,  # noqa: B027 - optional hook
                 cancel: threading.Event | None = None) -> None:
        """Load what `step` calls that prepare left for its first call (package runtimes given a bundle's record of
        their packages); runtimes that load everything in prepare have nothing to do."""

    @classmethod
    @abstractmethod
    def availability(cls) -> Availability:
        """Whether this runtime can run components here; if not, why in one sentence."""

    def describe(self) -> dict[str, Any]:
        """Name, label, versions and options, for reports."""
        return {"name": self.name, "label": self.label}

    @abstractmethod
    def prepare(self, progress: Progress = no_progress,
                cancel: threading.Event | None = None) -> list[PrepareReport]:
        """Export/convert/load every supported component; fills and returns `self.reports`."""

    @abstractmethod
    def bind(self, component: str, inputs: dict[str, np.ndarray]) -> BoundCall:
        """Bind `component` to contract-named numpy inputs."""

    def run(self, component: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Bind and call once; outputs as numpy."""
        bound = self.bind(component, inputs)
        return bound.outputs(bound())

    # -- greedy decoding steps -------------------------------------------------------------------
    @abstractmethod
    def initial_state(self) -> Any:
        """The prediction net's state before any token."""

    @abstractmethod
    def decoder_step(self, token: int, state: Any) -> tuple[Any, Any]:
        """Feed one token (blank = start); return (decoder output handle, next state)."""

    @abstractmethod
    def joint_step(self, frame: np.ndarray, decoder_output: Any) -> np.ndarray:
        """Joint of one encoder frame [1,D,1] with one decoder output; returns the logits row [C] as numpy."""

    def close(self) -> None:  # noqa: B027 - optional hook, most runtimes hold nothing to release
        """Release sessions and models."""
