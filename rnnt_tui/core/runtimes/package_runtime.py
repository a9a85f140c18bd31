"""What every runtime that runs Core ML packages shares: the packages, their inventory, and the binding to them.

`prepare` converts the restored model (`core.coreml.convert`, cached) or takes the packages in
`options.packages_dir` (`core.coreml.matching`: ours, or the common Parakeet exporter's layout with its decision
heads and fused mel+encoder), lists every package with what it is used for or why it is skipped (`inventory`),
loads each used one through the subclass (`_load`), and reads each program's real compute precision and weight
compression with the MIL reader (`program_facts`, any OS) to pick tolerances from them and warn where the
package's metadata or the `--precision` flag says otherwise. Given what was read of the packages before (`known`:
a bundle records it), it reads neither specs nor programs, and a runtime that `loads_on_first_call` leaves each
program to the first step that calls it (`load_for`, `package_loading`).

`bind` makes a call that runs one package on inputs fitted before the timed call (`package_binding`: named and
cast as the engine accepts them, `FEED_DTYPES`; a fixed time axis zero-padded, a clip longer than the package
allows refused naming the bound); the timed call gets a fresh shallow copy of the feed so an engine that rewrites
the caller's dict cannot make one call dearer than another. Outputs come back under the contract's names, cropped
to the unpadded length; padding is reported in `bind_notes`. The joint and the decision heads are called in tiles
that fit their shapes: a per-step package once per cell, a full-window U=1 package once per decoder step (its U
axis is not a time axis), a flexible one once. Decoder steps carry h/c between calls: as inputs and outputs, or,
for a stateful decoder (`ct.StateType`, macOS 15+), in the engine's state object, made once per decode and rolled
back when a caller steps from an earlier state (`package_state`).

This class orchestrates; the rules live beside it, one purpose a module: which packages and what each is
(`package_inventory`), inputs and outputs in the contract's terms (`package_binding`), a stateful decoder's state
(`package_state`). Subclasses say only what loads and executes a program: `CoreMLRuntime` (Core ML's `predict`,
macOS) and `MilRuntime` (the MIL interpreter, any OS).
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np

from rnnt_tui.core.components import DECODER, ENCODER, JOINT, PREPROCESSOR
from rnnt_tui.core.coreml.matching import HEADS, JOINT_DECISION, JOINT_DECISION_STEP, PackageInfo
from rnnt_tui.core.errors import CancelledError, StepFailedError
from rnnt_tui.core.runtimes.base import (
    BoundCall,
    PrepareReport,
    Progress,
    Runtime,
    RuntimeOptions,
    TimeCapacity,
    no_progress,
)
from rnnt_tui.core.runtimes.package_binding import (
    TILED,
    PackageCall,
    contract_outputs,
    joint_tiles,
    output_crops,
    package_feed,
    pad_notes,
    tile_inputs,
    tiled_notes,
    tiled_outputs,
    time_capacity,
)
from rnnt_tui.core.runtimes.package_inventory import (
    KnownPackages,
    PackageEntry,
    ProgramFacts,
    collect_packages,
    precision_warning,
)
from rnnt_tui.core.runtimes.package_loading import DeferredLoads
from rnnt_tui.core.runtimes.package_state import DecoderState, StateCarrier, bound_step
from rnnt_tui.core.tolerances import FP16, FP32, Tolerance


class PackageRuntime(Runtime):
    """Core ML packages bound to the component contract; subclasses load and execute the programs."""

    components: ClassVar[tuple[str, ...]] = (PREPROCESSOR, ENCODER, DECODER, JOINT)
    #: declared package dtype -> the numpy dtype the engine is fed
    FEED_DTYPES: ClassVar[dict[str, Any]] = {"float16": np.float16, "float32": np.float32, "float64": np.float64,
                                             "int32": np.int32, "int8": np.int8}
    #: what executes the programs, for messages
    engine: ClassVar[str] = "the runtime"
    #: whether the engine can run a compiled `.mlmodelc` (else a package of the same kind is preferred)
    reads_compiled: ClassVar[bool] = True
    #: whether a program whose facts are `known` is loaded by the first step that calls it rather than in prepare
    loads_on_first_call: ClassVar[bool] = False

    packages: dict[str, PackageInfo]
    models: dict[str, Any]

    def __init__(self, loaded: Any, options: RuntimeOptions | None = None, known: KnownPackages | None = None) -> None:
        """`known`: what was read of the packages in `options.packages_dir` before (a bundle's record of its own)."""
        super().__init__(loaded, options)
        self.known = known
        self._reset()
        if self.options.packages_dir:  # Core AI assets given to a Core ML runtime: the user's mistake, exit 2
            from rnnt_tui.core.coreai.assets import refuse_for_core_ml

            refuse_for_core_ml(self.options.packages_dir)

    def _reset(self) -> None:
        self.packages, self.models, self.reports = {}, {}, {}
        self.skipped: dict[str, PackageInfo] = {}
        self.inventory: list[PackageEntry] = []
        self.programs: dict[str, ProgramFacts] = {}
        self.warnings: list[str] = []
        self.bind_notes: dict[str, list[str]] = {}
        #: engine state objects made for a stateful decoder (one per decode and one per bound call)
        self.states_made = 0
        #: the packages whose program the first step that calls it loads
        self.deferred = DeferredLoads(self._load, self.reports)

    # -- what subclasses provide ------------------------------------------------------------------
    def _problem(self) -> str | None:
        """Why programs cannot execute here (prepare still converts and reads them), or None."""
        return None

    def _check_runnable(self) -> None:
        """Raise the reason programs cannot execute here, if there is one."""

    @abstractmethod
    def _load(self, component: str, cancel: threading.Event | None) -> tuple[float, bool | None, str]:
        """Load `self.packages[component]` into `self.models`; returns (load ms, whether a load cache served it —
        None when loading has no cache, as in the MIL interpreter —, how)."""

    @abstractmethod
    def _execute(self, component: str, feed: dict[str, Any], state: Any = None) -> dict[str, Any]:
        """One call of a loaded package on `feed` (a fresh dict: the engine may change it); a stateful package
        reads and updates `state` (`_new_state`'s object) in place."""

    @abstractmethod
    def _new_state(self, component: str) -> Any:
        """A fresh state object of a loaded stateful package, with `read_state(name)` / `write_state(name, v)`."""

    def _carrier(self, component: str, info: PackageInfo) -> StateCarrier:
        self.states_made += 1
        return StateCarrier(self._new_state(component), info, self.FEED_DTYPES)

    def _program_facts(self, component: str) -> tuple[ProgramFacts | None, str | None]:
        """The program's compute precision and weight compression (or why they cannot be read)."""
        from rnnt_tui.core.runtimes.package_inventory import read_program_facts

        known = self.known.program(self.packages[component].path) if self.known is not None else None
        return (known, None) if known is not None else read_program_facts(self.packages[component].path)

    def _as_declared(self, info: PackageInfo, tensor: str, value: np.ndarray) -> np.ndarray:
        """An output as the engine returned it (Core ML overrides this: it widens fp16 outputs)."""
        return value

    # -- prepare ----------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        from rnnt_tui.versions import package_version

        return {"name": self.name, "label": self.label, "coremltools": package_version("coremltools"),
                "precision": self.options.precision, "program_precision": self.compute_precision(),
                "minimum_deployment_target": self.options.minimum_deployment_target,
                "max_frames": self.options.max_frames, "packages_dir": self.options.packages_dir,
                "packages": {c: str(i.path) for c, i in self.packages.items()},
                "inventory": [e.to_json() for e in self.inventory], "warnings": list(self.warnings),
                "decodes_through": "decision head" if self.decodes_through_decision else "joint"}

    def prepare(self, progress: Progress = no_progress,
                cancel: threading.Event | None = None) -> list[PrepareReport]:
        self._reset()
        every = type(self).components
        if self.known is not None and self.known.note:
            progress(self.known.note, None)
        collected = collect_packages(self.loaded, self.options, every, progress, cancel, self.reads_compiled,
                                     self.known)
        self.packages, self.skipped, self.warnings = collected.used, collected.skipped, list(collected.warnings)
        # the components this instance can run: a folder without a preprocessor makes it reference-only
        self.components = tuple(c for c in every if c in self.packages)  # type: ignore[misc]
        problem = self._problem()
        for component in every:
            if component not in self.packages:
                self.reports[component] = PrepareReport(
                    component=component, action=f"no package in {self.options.packages_dir}",
                    prepare_ms=collected.elapsed_ms,
                    notes=[f"no Core ML package for the {component}; the reference's output is used instead"])
        for index, (key, info) in enumerate(self.packages.items()):
            action, prep_ms, was_cached, notes = collected.actions[key]
            load_ms: float | None = None
            deferred = self.loads_on_first_call and self.known is not None and self.known.program(info.path)
            if problem is None and deferred:
                action = self.deferred.add(key, action)
            elif problem is None:
                if cancel is not None and cancel.is_set():
                    raise CancelledError(f"cancelled before loading the {key} package")
                progress(f"{self.label}: loading the {key}", index / max(len(self.packages), 1))
                load_ms, load_cached, how = self._load(key, cancel)
                # cached = the conversion came from the cache, and so did the compiled model where loading has one
                was_cached = was_cached and (load_cached is None or load_cached)
                action = f"{action}; {how}"
            else:
                notes = [*notes, problem]
            facts, why_not = self._program_facts(key)
            if facts is not None:
                self.programs[key] = facts
                warning = precision_warning(info, facts, collected.declared(info), collected.declared_by(info))
                if warning:
                    self.warnings.append(warning)
                    notes = [*notes, warning]
            elif why_not:
                notes = [*notes, f"program precision not read: {why_not}"]
            self.reports[key] = PrepareReport(component=key, action=action, prepare_ms=prep_ms, load_ms=load_ms,
                                              cached=was_cached, artifact=str(info.path), notes=notes)
        self.inventory = collected.inventory(self.programs, self.decodes_through_decision)
        return [self.reports[c] for c in (*every, *HEADS) if c in self.reports]

    # -- precision -------------------------------------------------------------------------------
    def compute_precision(self) -> dict[str, str]:
        """Package -> the precision its program computes in ("fp32", "fp16" or "mixed"), where it was read."""
        return {k: f.precision for k, f in self.programs.items()}

    def tolerance_precision(self, component: str) -> str:
        """"fp16" when `component`'s program computes any of its float ops in fp16, else "fp32" (the flag, when
        the program could not be read)."""
        precision = self.programs[component].precision if component in self.programs else self.options.precision
        return "fp32" if precision == "fp32" else "fp16"

    def tolerances(self) -> dict[str, Tolerance]:
        """Default tolerances per component, from each program's real compute precision."""
        return {c: (FP16 if self.tolerance_precision(c) == "fp16" else FP32)[c] for c in type(self).components}

    # -- binding ----------------------------------------------------------------------------------
    def _has(self, component: str) -> bool:
        """Whether `component` is loaded or left to its first call."""
        return component in self.models or component in self.deferred

    def load_for(self, step: str, progress: Progress = no_progress, cancel: threading.Event | None = None) -> None:
        self.deferred.load_for(step, self.label, progress, cancel)

    def _model(self, component: str) -> tuple[PackageInfo, Any]:
        self.deferred.load(component)
        if component in self.models:
            return self.packages[component], self.models[component]
        self._check_runnable()
        raise StepFailedError(f"no {self.label} {component} is loaded (prepare() first, or the package is missing)")

    def _feed(self, component: str, info: PackageInfo,
              inputs: dict[str, np.ndarray]) -> tuple[dict[str, Any], dict[str, tuple[int, int]]]:
        """Package-named inputs in this engine's dtypes, and (original, padded) time sizes of the padded inputs."""
        return package_feed(component, info, inputs, self.FEED_DTYPES, self.label)

    def _outputs(self, info: PackageInfo, raw: dict[str, Any], crops: dict[str, dict[int, int]]) -> dict[str, Any]:
        return contract_outputs(info, raw, crops, self._as_declared)

    def bind(self, component: str, inputs: dict[str, np.ndarray]) -> BoundCall:
        """Bind a component or a head (`mel_encoder`: audio in; decision heads: encoded and decoder_output in)."""
        info, _ = self._model(component)
        if component in TILED:
            return self._bind_tiled(component, info, inputs)
        if info.states:
            return self._bind_stateful(component, info, inputs)
        feed, padded = self._feed(component, info, inputs)
        crops = output_crops(self.loaded, component, padded)
        notes = pad_notes(info, padded)
        self.bind_notes[component] = notes
        return PackageCall(lambda: self._execute(component, dict(feed)), lambda raw: self._outputs(info, raw, crops),
                           notes)

    def _bind_stateful(self, component: str, info: PackageInfo, inputs: dict[str, np.ndarray]) -> BoundCall:
        """A stateful decoder bound like a stateless one (`package_state.bound_step`), in a state object of its own
        made here, outside the timed call."""
        feed, _ = self._feed(component, info, inputs)
        carrier = self._carrier(component, info)
        call, convert = bound_step(carrier, inputs["h"], inputs["c"],
                                   lambda engine: self._execute(component, dict(feed), engine),
                                   lambda raw: self._outputs(info, raw, {}))
        notes = [f"{info.path.name} is stateful: h and c are written into its Core ML states "
                 f"({', '.join(carrier.names.values())}) before each call and read back after it, inside the timed "
                 "call"]
        self.bind_notes[component] = notes
        return PackageCall(call, convert, notes)

    def package_feed(self, component: str, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
        """The package-named feed of one call of `component` (for tiled joints and heads, the first tile): what a
        drift search hands Core ML's comparator."""
        info, _ = self._model(component)
        if component in TILED:
            t_tiles, u_tiles = joint_tiles(info, np.shape(inputs["encoded"])[2], np.shape(inputs["decoder_output"])[2])
            inputs = tile_inputs(inputs, t_tiles[0], u_tiles[0])
        return self._feed(component, info, inputs)[0]

    def _bind_tiled(self, component: str, info: PackageInfo, inputs: dict[str, np.ndarray]) -> BoundCall:
        """A joint or decision head over the T x U grid in the tiles its shapes accept (`package_binding`), every
        tile's feed made here, outside the timed call."""
        frames, steps = np.shape(inputs["encoded"])[2], np.shape(inputs["decoder_output"])[2]
        t_tiles, u_tiles = joint_tiles(info, frames, steps)
        cells = [(t, u) for t in t_tiles for u in u_tiles]
        feeds = [self._feed(component, info, tile_inputs(inputs, t, u))[0] for t, u in cells]
        notes = tiled_notes(info, t_tiles, u_tiles, frames, steps)
        self.bind_notes[component] = notes

        def call() -> list[dict[str, Any]]:
            return [self._execute(component, dict(feed)) for feed in feeds]

        return PackageCall(call, lambda raw: tiled_outputs(info, cells, raw, frames, steps, self._as_declared), notes)

    # -- greedy decoding steps --------------------------------------------------------------------
    def initial_state(self) -> Any:
        """The start state (zeros): (h, c) arrays, or for a stateful decoder a `DecoderState` in a state object
        made now - once per decode - holding zeros."""
        info, _ = self._model(DECODER)
        if info.states:
            return self._carrier(DECODER, info).start()
        specs = [info.spec.input(info.inputs[k]) for k in ("h", "c")]
        return tuple(np.zeros(s.shape, self.FEED_DTYPES.get(s.dtype, np.float32)) for s in specs)

    def decoder_step(self, token: int, state: Any) -> tuple[Any, Any]:
        if isinstance(state, DecoderState):  # a stateful decoder's decode: carried in its state object
            info, _ = self._model(DECODER)
            carrier = state.carrier
            carrier.enter(state)
            feed, _ = self._feed(DECODER, info, {"targets": np.array([[token]])})
            raw = self._execute(DECODER, feed, carrier.engine)
            return self._outputs(info, raw, {})["decoder_output"], carrier.advanced()
        out = self.run(DECODER, {"targets": np.array([[token]]), "h": state[0], "c": state[1]})
        return out["decoder_output"], (out["h"], out["c"])

    def joint_step(self, frame: np.ndarray, decoder_output: Any) -> np.ndarray:
        g = np.asarray(decoder_output, dtype=np.float32).reshape(1, -1, 1)
        return np.asarray(self.run(JOINT, {"encoded": np.asarray(frame), "decoder_output": g})["logits"]).reshape(-1)

    @property
    def heads(self) -> tuple[str, ...]:
        """The loaded heads (`mel_encoder`, `joint_decision`, `joint_decision_step`), each bindable like a component:
        `mel_encoder` takes audio_signal/length and gives encoded/encoded_length; a decision head takes
        encoded [1,D,T] and decoder_output [1,H,U] and gives token_id, token_prob, duration [1,T,U] (and top_k_ids,
        top_k_logits [1,T,U,K] when it has them), for `core.decision.compare_decisions`."""
        return tuple(h for h in HEADS if self._has(h))

    def time_capacity(self, component: str) -> TimeCapacity | None:
        info = self.packages.get(component)
        if info is None:
            return None
        found = time_capacity(component, info)
        return None if found is None else TimeCapacity(found[0], found[1], info.path)

    @property
    def decodes_through_decision(self) -> bool:
        """True when greedy decoding asks a decision head (`decide_step`): a single-step head is what apps built
        on such packages decode with; a full-window head only when there is no logits joint."""
        return self._has(JOINT_DECISION_STEP) or (not self._has(JOINT) and self._has(JOINT_DECISION))

    def decide_step(self, frame: np.ndarray, decoder_output: Any) -> tuple[int, int, float]:
        """(token id, duration bin, token probability) from the decision head for one frame and one step."""
        head = JOINT_DECISION_STEP if self._has(JOINT_DECISION_STEP) else JOINT_DECISION
        g = np.asarray(decoder_output, dtype=np.float32).reshape(1, -1, 1)
        out = self.run(head, {"encoded": np.asarray(frame), "decoder_output": g})
        duration = int(np.asarray(out["duration"]).reshape(-1)[0]) if "duration" in out else 0
        prob = float(np.asarray(out["token_prob"]).reshape(-1)[0]) if "token_prob" in out else float("nan")
        return int(np.asarray(out["token_id"]).reshape(-1)[0]), duration, prob

    def close(self) -> None:
        self.models = {}
        self.deferred.clear()
