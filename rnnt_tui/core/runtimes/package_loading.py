"""Programs a package runtime loads on their first call instead of in `prepare`: which ones, and loading them.

A package runtime given what a bundle recorded of its packages (`package_inventory.KnownPackages`: declared specs
and program facts) knows everything a session needs before any program is loaded: names, shapes, dtypes,
tolerances, the inventory. So a runtime whose load is slow and needs coremltools (the MIL interpreter: the
protobuf read back and every op planned) leaves each load to the first step that calls the package:
`DeferredLoads.load_for(step)` loads what that step calls, with the step's progress, before the step runs; a call
that reaches a package still deferred outside a session's steps (a sweep, a stream) loads it there. The time it
took goes into the package's `PrepareReport` when it happens, so the step's timings show it as an eager load did.

Must not: import coremltools or any engine (the runtime's own `_load` does that).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from rnnt_tui.core.components import DECODER, ENCODER, JOINT, PREPROCESSOR
from rnnt_tui.core.coreml.matching import JOINT_DECISION, JOINT_DECISION_STEP, MEL_ENCODER
from rnnt_tui.core.errors import CancelledError
from rnnt_tui.core.runtimes.base import PrepareReport, Progress, no_progress

#: the packages each step calls (a step not named here - the decode - may call any of them)
STEP_PACKAGES: dict[str, tuple[str, ...]] = {
    PREPROCESSOR: (PREPROCESSOR, MEL_ENCODER), ENCODER: (ENCODER, MEL_ENCODER), DECODER: (DECODER,),
    JOINT: (JOINT, JOINT_DECISION, JOINT_DECISION_STEP)}
#: what a deferred package's prepare report says until it is loaded
ON_FIRST_CALL = "loaded on its first call"

#: a runtime's loader: (package key, cancel) -> (load ms, whether a load cache served it or None, how)
Loader = Callable[[str, threading.Event | None], tuple[float, bool | None, str]]


class DeferredLoads:
    """The packages of one prepared runtime whose programs are not loaded yet, with the prepare action each had."""

    def __init__(self, load: Loader, reports: dict[str, PrepareReport]) -> None:
        self._load = load
        self._reports = reports
        self._actions: dict[str, str] = {}
        self._errors: dict[str, Exception] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._actions

    def add(self, key: str, action: str) -> str:
        """Leave `key`'s load to its first call; returns the prepare action to report until then."""
        self._actions[key] = action
        return f"{action}; {ON_FIRST_CALL}"

    def clear(self) -> None:
        self._actions.clear()
        self._errors.clear()

    def load(self, key: str, cancel: threading.Event | None = None) -> None:
        """Load `key` now if it is deferred; what the load raised is raised again to every later call."""
        if key not in self._actions:
            return
        if key in self._errors:
            raise self._errors[key]
        try:
            load_ms, cached, how = self._load(key, cancel)
        except CancelledError:
            raise
        except Exception as exc:
            self._errors[key] = exc
            raise
        report = self._reports[key]
        report.action, report.load_ms = f"{self._actions.pop(key)}; {how}", load_ms
        report.cached = report.cached and (cached is None or cached)

    def pending_for(self, step: str) -> list[str]:
        """The deferred packages `step` calls (a load that failed is not tried again)."""
        wanted = STEP_PACKAGES.get(step, tuple(self._actions))
        return [k for k in wanted if k in self._actions and k not in self._errors]

    def load_for(self, step: str, label: str, progress: Progress = no_progress,
                 cancel: threading.Event | None = None) -> None:
        """Load the deferred packages `step` calls, saying so through `progress`. A load that fails is left to the
        call that needs the package, which raises it inside the step: the step reports the candidate failing and
        keeps the reference's outputs, as a failing call does."""
        keys = self.pending_for(step)
        for index, key in enumerate(keys):
            if cancel is not None and cancel.is_set():
                raise CancelledError(f"cancelled before loading the {key} package")
            progress(f"{label}: loading the {key} (its first call)", index / len(keys))
            try:
                self.load(key, cancel)
            except CancelledError:
                raise
            except Exception:  # noqa: BLE001 - raised again by the call that needs the package (see above)
                pass
