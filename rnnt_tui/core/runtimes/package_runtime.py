"""What every runtime that runs Core ML packages shares: the packages, their inventory, and the binding to them.

`prepare` converts the restored model (`core.coreml.convert`, cached) or takes the packages in
`options.packages_dir` (`core.coreml.matching`: ours, or the common Parakeet exporter's layout with its decision
heads and fused mel+encoder), lists every package with what it is used for or why it is skipped (`inventory`),
loads each used one through the subclass (`_load`), and reads each program's real compute precision and weight
compression with the MIL reader (`program_facts`, any OS) to pick tolerances from them and warn where the
package's metadata or the `--precision` flag says otherwise. Given what was read of the packages before (`known`:
a bundle records it), it reads neither specs nor programs, and a runtime that `loads_on_first_call` leaves each
program to the first step that calls it (`load_for`, `package_loading`).

`bind` casts inputs to the dtypes the package declares (as the engine accepts them: `FEED_DTYPES`), zero-pads a
fixed time axis or refuses a clip longer than the package allows (naming the bound), all before the timed call,
which gets a fresh shallow copy of the feed so an engine that rewrites the caller's dict cannot make one call
dearer than another. Outputs come back under the contract's names, cropped to the unpadded length; padding is
reported in `bind_notes`. The joint and the decision heads are called in tiles that fit their shapes (`tiles`):
a per-step package once per cell, a full-window U=1 package once per decoder step (its U axis is not a time
axis), a flexible one once. Decoder steps carry h/c between calls: as inputs and outputs, or, for a stateful
decoder (`ct.StateType`, macOS 15+), in the engine's state object, made once per decode and rolled back when a
caller steps from an earlier state (`package_state`). Subclasses say only what loads and executes a
program: `CoreMLRuntime` (Core ML's `predict`, macOS) and `MilRuntime` (the MIL interpreter, any OS).
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from rnnt_tui.core.components import DECODER, ENCODER, JOINT, PREPROCESSOR
from rnnt_tui.core.coreml.matching import HEADS, JOINT_DECISION, JOINT_DECISION_STEP, MEL_ENCODER, PackageInfo
from rnnt_tui.core.errors import BadInputError, CancelledError, StepFailedError
from rnnt_tui.core.runtimes.base import (
    BoundCall,
    FunctionCall,
    PrepareReport,
    Progress,
    Runtime,
    RuntimeOptions,
    no_progress,
)
from rnnt_tui.core.runtimes.package_inventory import (
    KnownPackages,
    PackageEntry,
    ProgramFacts,
    collect_packages,
    precision_warning,
    tiles,
)
from rnnt_tui.core.runtimes.package_loading import DeferredLoads
from rnnt_tui.core.runtimes.package_state import DecoderState, StateCarrier, bound_step
from rnnt_tui.core.tolerances import FP16, FP32, Tolerance

#: the time axis of each input with one, in the contract's layout
_TIME_AXES: dict[str, dict[str, int]] = {
    PREPROCESSOR: {"audio_signal": 1}, ENCODER: {"features": 2}, DECODER: {}, MEL_ENCODER: {"audio_signal": 1},
    **{k: {"encoded": 2, "decoder_output": 2} for k in (JOINT, JOINT_DECISION, JOINT_DECISION_STEP)}}
_TILED = (JOINT, JOINT_DECISION, JOINT_DECISION_STEP)
_RENAMED_OUTPUTS = {"h_out": "h", "c_out": "c"}
_UNITS = {"audio_signal": "samples", "features": "feature frames", "encoded": "encoder frames"}


class PackageCall(FunctionCall):
    """A bound package call, with what binding did to the inputs (padding) in `notes`."""

    def __init__(self, call: Callable[[], Any], convert: Callable[[Any], dict[str, np.ndarray]],
                 notes: list[str]) -> None:
        super().__init__(call, convert)
        self.notes = notes


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
        """Package-named inputs in the engine's dtypes, and (original, padded) time sizes of the padded inputs."""
        feed: dict[str, Any] = {name: np.full((1,), value, np.int32) for name, value in info.feeds.items()}
        padded: dict[str, tuple[int, int]] = {}
        for contract, tensor in info.inputs.items():
            spec = info.spec.input(tensor)
            value = np.asarray(inputs[contract])
            btd = info.layouts.get(contract) == "BTD"
            if btd:
                value = value.transpose(0, 2, 1)
            if contract in _TIME_AXES[component]:
                axis = 1 if btd else _TIME_AXES[component][contract]
                value, original = self._fit(component, contract, value, axis, spec.fit_bounds(axis, value.shape),
                                            info)
                if original is not None:
                    padded[contract] = (original, value.shape[axis])
            feed[tensor] = np.ascontiguousarray(value, dtype=self.FEED_DTYPES.get(spec.dtype, np.float32))
        return feed, padded

    def _fit(self, component: str, contract: str, value: np.ndarray, axis: int, bounds: tuple[int, int],
             info: PackageInfo) -> tuple[np.ndarray, int | None]:
        """Check `value`'s time axis against the package's bounds and zero-pad up to the lower bound (a fixed
        window, or the smallest enumerated shape that holds the clip); returns (value, original size if padded)."""
        n, (low, high) = value.shape[axis], bounds
        if high != -1 and n > high:
            bound = info.spec.ours("max_frames")
            hint = f" (converted with max_frames={bound} encoder frames)" if bound else " (its fixed window)"
            fix = "convert with a larger max_frames" if bound else "re-export it with a longer window"
            raise BadInputError(None, f"the clip is too long for the {self.label} {component}: its {contract} has "
                                      f"{n} steps on the time axis but {info.path.name} accepts at most {high}{hint}; "
                                      f"use a shorter clip or {fix}")
        if n < low:
            pad = [(0, 0)] * value.ndim
            pad[axis] = (0, low - n)
            return np.pad(value, pad), n
        return value, None

    def _crops(self, component: str, inputs: dict[str, np.ndarray],
               padded: dict[str, tuple[int, int]]) -> dict[str, dict[int, int]]:
        """Output contract name -> {axis: size} that undoes the padding of fixed-shape inputs."""
        from rnnt_tui.core.coreml.convert import expected_frames

        if component in (PREPROCESSOR, MEL_ENCODER) and "audio_signal" in padded:
            frames = expected_frames(self.loaded, PREPROCESSOR, padded["audio_signal"][0])
            if component == PREPROCESSOR:
                return {"features": {2: frames}}
            return {"encoded": {2: expected_frames(self.loaded, ENCODER, frames)}}
        if component == ENCODER and "features" in padded:
            return {"encoded": {2: expected_frames(self.loaded, ENCODER, padded["features"][0])}}
        return {}

    def _outputs(self, info: PackageInfo, raw: dict[str, Any], crops: dict[str, dict[int, int]]) -> dict[str, Any]:
        out: dict[str, np.ndarray] = {}
        for contract, tensor in info.outputs.items():
            value = self._as_declared(info, tensor, np.asarray(raw[tensor]))
            if info.layouts.get(contract) == "BTD":
                value = value.transpose(0, 2, 1)
            for axis, size in crops.get(contract, {}).items():
                value = value[tuple(slice(0, size) if a == axis else slice(None) for a in range(value.ndim))]
            if contract == "decoder_output" and value.ndim == 3 and value.shape[1] == 1 and value.shape[2] > 1:
                value = value.reshape(1, -1, 1)  # a [1,1,H] step output in the contract's [1,H,1]
            out[_RENAMED_OUTPUTS.get(contract, contract)] = value
        return out

    def _pad_notes(self, info: PackageInfo, padded: dict[str, tuple[int, int]]) -> list[str]:
        return [f"{contract} padded from {n:,} to {size:,} {_UNITS.get(contract, 'steps')} with zeros to fill "
                f"{info.path.name}'s fixed window (outside the timed call, which computes the whole window); "
                "outputs cropped to the clip" for contract, (n, size) in padded.items()]

    def bind(self, component: str, inputs: dict[str, np.ndarray]) -> BoundCall:
        """Bind a component or a head (`mel_encoder`: audio in; decision heads: encoded and decoder_output in)."""
        info, _ = self._model(component)
        if component in _TILED:
            return self._bind_tiled(component, info, inputs)
        if info.states:
            return self._bind_stateful(component, info, inputs)
        feed, padded = self._feed(component, info, inputs)
        crops = self._crops(component, inputs, padded)
        notes = self._pad_notes(info, padded)
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
        if component in _TILED:
            enc, dec = np.asarray(inputs["encoded"]), np.asarray(inputs["decoder_output"])
            t0, t1, _ = tiles(enc.shape[2], info.spec.input(info.inputs["encoded"]).bounds(
                1 if info.layouts.get("encoded") == "BTD" else 2))[0]
            u0, u1, _ = tiles(dec.shape[2], info.spec.input(info.inputs["decoder_output"]).bounds(2))[0]
            inputs = {"encoded": enc[:, :, t0:t1], "decoder_output": dec[:, :, u0:u1]}
        return self._feed(component, info, inputs)[0]

    def _bind_tiled(self, component: str, info: PackageInfo, inputs: dict[str, np.ndarray]) -> BoundCall:
        enc, dec = np.asarray(inputs["encoded"]), np.asarray(inputs["decoder_output"])
        frames, steps = enc.shape[2], dec.shape[2]
        t_tiles = tiles(frames, info.spec.input(info.inputs["encoded"]).bounds(
            1 if info.layouts.get("encoded") == "BTD" else 2))
        u_tiles = tiles(steps, info.spec.input(info.inputs["decoder_output"]).bounds(2))
        cells = [(t, u, self._feed(component, info, {"encoded": enc[:, :, t[0]:t[1]],
                                                     "decoder_output": dec[:, :, u[0]:u[1]]})[0])
                 for t in t_tiles for u in u_tiles]
        notes = []
        if len(cells) > 1:
            notes.append(f"{info.path.name} called {len(cells)} times: {len(t_tiles)} x {len(u_tiles)} tiles of "
                         f"T x U = {frames} x {steps}")
        if any(t[2] > t[1] - t[0] for t in t_tiles):
            notes.append(f"encoded padded to {t_tiles[0][2]} frames per call to fill {info.path.name}'s fixed "
                         "window (outside the timed call); outputs cropped")
        self.bind_notes[component] = notes

        def call() -> list[dict[str, Any]]:
            return [self._execute(component, dict(feed)) for _, _, feed in cells]

        def convert(raw: list[dict[str, Any]]) -> dict[str, np.ndarray]:
            out: dict[str, np.ndarray] = {}
            for (t0, t1, tp), (u0, u1, up), result in zip([c[0] for c in cells], [c[1] for c in cells], raw,
                                                          strict=True):
                for contract, tensor in info.outputs.items():
                    value = self._as_declared(info, tensor, np.asarray(result[tensor])).reshape(tp, up, -1)
                    if contract not in out:
                        out[contract] = np.zeros((frames, steps, value.shape[-1]), dtype=value.dtype)
                    out[contract][t0:t1, u0:u1] = value[: t1 - t0, : u1 - u0]
            return {k: v[None] if k in ("logits", "top_k_ids", "top_k_logits") else v[None, ..., 0]
                    for k, v in out.items()}

        return PackageCall(call, convert, notes)

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
