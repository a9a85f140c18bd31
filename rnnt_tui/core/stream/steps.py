"""Candidate streaming encoder steps: the converted step, caches as explicit inputs and outputs.

Each step takes one chunk as NeMo's buffer cut it (features [1,F,T], length) and the caches in NeMo's layer-first
layout ([L,1,T,D], [L,1,D,K-1], [1]) and returns the encoder output [1,D,T], its length and the next caches in
the same layout, so the comparison never sees a runtime's own layout. Two fixed programs per context: the first
chunk (drop_extra_pre_encoded 0, NeMo's first-chunk rule) and the rest (the streaming_cfg's drop).

- `OnnxStreamStep`: NeMo's own ONNX export with `cache_support` (`model.set_export_config`, then the encoder's
  `export`); the export's caches are batch-first, transposed at this boundary.
- `MilStreamStep`: `torch.jit.trace` of a wrapper around `encoder.cache_aware_stream_step` and `ct.convert`
  to an fp32 ML program with fixed first/next chunk shapes (a shorter last chunk is zero-padded, its true
  length fed), executed by the tool's MIL interpreter - "Core ML program, MIL interpreter", never Core ML.
- `CoreMLStreamStep`: the same two packages (the same cache entry), predicted by Core ML itself through
  `core.coreml.load` (compiled once, kept in the cache); off macOS they are converted, then loading raises the
  reason Core ML cannot run here (RuntimeUnavailableError: exit 3), as the offline comparison does.
The Core AI step is `core.stream.coreai_step`; the Core ML steps with the caches in Core ML states
(`--cache-states`) are `core.stream.state_step` (they change `_traceable` / `_convert_options`). All are built on
a deep copy of the model (export and tracing change flags) and kept in the artifact cache.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from rnnt_tui.core.cache import ArtifactCache, make_key
from rnnt_tui.core.checkpoint import LoadedModel, copy_model
from rnnt_tui.core.errors import CancelledError, StepFailedError
from rnnt_tui.core.names import RUNTIME_LABELS
from rnnt_tui.core.pipeline.events import ProgressCallback
from rnnt_tui.core.quiet import quiet
from rnnt_tui.core.stream.reference import set_context
from rnnt_tui.versions import package_version

Caches = dict[str, np.ndarray]
StepOutput = tuple[np.ndarray, int, Caches]
PHASES = ("first", "next")


def pre_encode(cfg: Any, phase: str) -> tuple[int, int]:
    """(chunk frames, pre-encode cache frames) of a phase's chunk."""
    pick = 0 if phase == "first" else 1
    chunk = cfg.chunk_size[pick] if isinstance(cfg.chunk_size, list) else cfg.chunk_size
    pre = cfg.pre_encode_cache_size[pick] if isinstance(cfg.pre_encode_cache_size, list) else cfg.pre_encode_cache_size
    return int(chunk), int(pre)


def drop_for(cfg: Any, phase: str) -> int:
    return 0 if phase == "first" else int(cfg.drop_extra_pre_encoded)


class StreamStep(ABC):
    """A candidate's streaming encoder step for one att context.

    `frames`: phase -> the fixed chunk length (feature frames) of a fixed-shape program (empty: any length); a
    shorter chunk is zero-padded by `padded` and its true length fed."""

    name: str
    #: the kind of artifact in the cache (steps that share packages share it)
    artifact: str = ""
    #: libraries whose versions key the cached artifact
    libraries: tuple[str, ...] = ("nemo_toolkit", "torch", "onnx", "coremltools")
    #: where the step keeps the encoder's caches between chunks (said in the report)
    carries: str = "explicit inputs and outputs"

    def __init__(self, loaded: LoadedModel, context: list[int], use_cache: bool = True) -> None:
        self.loaded = loaded
        self.context = list(context)
        self.use_cache = use_cache
        self.notes: list[str] = []
        self.prepare_ms = 0.0
        self.cached = False
        self.frames: dict[str, int] = {}
        self.path: Path | None = None  # the folder of programs (the cache entry it was built into), once prepared
        self._scratch: Path | None = None  # without the user's cache: this step's own folder, removed by `close`

    @property
    def label(self) -> str:
        return RUNTIME_LABELS[self.name]

    @classmethod
    def from_folder(cls, path: Path, context: list[int]) -> StreamStep:
        """The step on programs already built into `path` (a recorded bundle's copy): no model, no NeMo."""
        step = cls.__new__(cls)
        step.loaded, step.context, step.use_cache = None, list(context), False  # type: ignore[assignment]
        step.notes, step.prepare_ms, step.cached, step.path = [f"recorded: {path}"], 0.0, True, path
        step.frames, step._scratch = {}, None
        step._load(path)
        return step

    def _cache(self) -> ArtifactCache:
        """The user's artifact cache; without it (`use_cache` False, a recorded bundle's step) this step's scratch
        folder, made once and removed by `close`, so nothing is left in the temp dir."""
        if self.use_cache:
            return ArtifactCache()
        if self._scratch is None:
            import tempfile

            self._scratch = Path(tempfile.mkdtemp(prefix="rnnt-tui-stream-"))
        return ArtifactCache(self._scratch)

    def _key(self, **extra: Any) -> str:
        versions = {lib: package_version(lib) for lib in self.libraries}
        return make_key(kind=f"stream-step-{self.artifact or self.name}", sha256=self.loaded.sha256,
                        context=self.context, versions=versions, **extra)

    def _clone(self) -> Any:
        """A deep copy in eval mode at this step's context (export and tracing flip flags on what they touch)."""
        with quiet():
            clone = copy_model(self.loaded.model)
        clone.eval()
        set_context(clone, self.context)
        return clone

    def prepare(self, progress: ProgressCallback, cancel: threading.Event | None = None) -> None:
        start = time.perf_counter()
        entry, self.cached = self._cache().get_or_build(self._key(), self._build, cancel)
        if cancel is not None and cancel.is_set():
            raise CancelledError("cancelled while preparing the streaming step")
        progress(f"{self.label}: loading the streaming step", 0.9)
        self._load(entry.path)
        self.path = entry.path
        self.prepare_ms = (time.perf_counter() - start) * 1000
        self.notes.append(f"{'cache hit' if self.cached else 'built'} in {self.prepare_ms:.0f} ms: {entry.path}")

    def padded(self, features: np.ndarray, first: bool) -> np.ndarray:
        """`features` zero-padded to the phase's fixed chunk (as it is when the program takes any length)."""
        phase = "first" if first else "next"
        frames = self.frames.get(phase)
        if frames is None:
            return features
        if features.shape[2] > frames:
            raise StepFailedError(f"a chunk of {features.shape[2]} frames exceeds the {phase} program's {frames}")
        out = np.zeros((1, features.shape[1], frames), np.float32)
        out[:, :, : features.shape[2]] = features
        return out

    @abstractmethod
    def _build(self, out: Path) -> dict[str, Any]:
        """Write the first and next programs into `out`."""

    @abstractmethod
    def _load(self, path: Path) -> None:
        """Open the programs written by `_build`."""

    @abstractmethod
    def __call__(self, features: np.ndarray, length: int, caches: Caches, first: bool) -> StepOutput:
        """One chunk through the candidate's step."""

    def close(self) -> None:
        """Release what `_load` opened (a subclass first, then this), and remove the scratch folder `_cache` made
        without the user's cache (the step's programs or their lowered forms, once nothing holds them)."""
        if self._scratch is not None:
            import shutil

            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


class OnnxStreamStep(StreamStep):
    name = "onnx"

    def _build(self, out: Path) -> dict[str, Any]:
        clone = self._clone()
        with quiet():
            clone.set_export_config({"cache_support": "True"})
            for phase in PHASES:
                clone.encoder.streaming_cfg.drop_extra_pre_encoded = drop_for(self.loaded.model.encoder.streaming_cfg,
                                                                            phase)
                clone.encoder.export(str(out / f"encoder-{phase}.onnx"), onnx_opset_version=17)
        return {"exporter": "NeMo encoder.export with cache_support", "context": self.context}

    def _load(self, path: Path) -> None:
        import onnxruntime as ort

        from rnnt_tui.core import threads

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        # the project's thread count (`core.threads`), as the offline ONNX runtime: ONNX Runtime's default (a
        # spinning thread per core) takes a core from everything else on a shared machine
        opts.intra_op_num_threads = threads.onnxruntime_threads()
        opts.inter_op_num_threads = 1
        self.sessions = {p: ort.InferenceSession(str(path / f"encoder-{p}.onnx"), sess_options=opts,
                                                 providers=["CPUExecutionProvider"]) for p in PHASES}
        self.feeds_of = {p: {i.name: i.type for i in s.get_inputs()} for p, s in self.sessions.items()}

    def __call__(self, features: np.ndarray, length: int, caches: Caches, first: bool) -> StepOutput:
        phase = "first" if first else "next"
        feeds = {"audio_signal": features.astype(np.float32, copy=False), "length": np.array([length], np.int64),
                 "cache_last_channel": np.ascontiguousarray(caches["cache_last_channel"].transpose(1, 0, 2, 3)),
                 "cache_last_time": np.ascontiguousarray(caches["cache_last_time"].transpose(1, 0, 2, 3)),
                 "cache_last_channel_len": caches["cache_last_channel_len"].astype(np.int64, copy=False)}
        out = self.sessions[phase].run(None, feeds)
        return (np.asarray(out[0], np.float32), int(out[1][0]),
                {"cache_last_channel": np.ascontiguousarray(out[2].transpose(1, 0, 2, 3)),
                 "cache_last_time": np.ascontiguousarray(out[3].transpose(1, 0, 2, 3)),
                 "cache_last_channel_len": np.asarray(out[4], np.int64)})


class MilStreamStep(StreamStep):
    name = "mil"
    artifact = "mlpackage"
    predict: dict[str, Any]  # phase -> the call of its loaded program

    def _build(self, out: Path) -> dict[str, Any]:
        import torch

        from rnnt_tui.core.coreml.spec import load_coremltools

        ct, _ = load_coremltools()
        clone = self._clone()
        cfg = clone.encoder.streaming_cfg
        ch, tm, chl = clone.encoder.get_initial_cache_state(batch_size=1)
        shapes: dict[str, Any] = {}
        for phase in PHASES:
            chunk, pre = pre_encode(cfg, phase)
            frames = chunk + pre
            feats = torch.zeros(1, int(clone.encoder._feat_in), frames)
            wrapper, names, example = self._traceable(clone.encoder, drop_for(cfg, phase), feats, frames, ch, tm, chl)
            with quiet(), torch.no_grad():
                traced = torch.jit.trace(wrapper.eval(), example, check_trace=False)
                inputs = [ct.TensorType(name=n, shape=tuple(t.shape), dtype=np.int32 if t.dtype == torch.int32
                                        else np.float32)
                          for n, t in zip(names, example, strict=True)]
                outputs = [ct.TensorType(name=n) for n in wrapper.OUTPUTS]
                mlmodel = ct.convert(traced, convert_to="mlprogram", inputs=inputs, outputs=outputs,
                                     compute_precision=ct.precision.FLOAT32, skip_model_load=True,
                                     **self._convert_options(ct, ch, tm))
                mlmodel.save(str(phase_package(out, phase)))
            shapes[phase] = frames
        return {"converter": "torch.jit.trace + ct.convert (fp32)", "frames": shapes, "context": self.context}

    def _traceable(self, encoder: Any, drop: int, feats: Any, frames: int, ch: Any, tm: Any,
                   chl: Any) -> tuple[Any, tuple[str, ...], tuple[Any, ...]]:
        """(module to trace, its input names, an example input) of one phase: caches as inputs and outputs."""
        return explicit_traceable(encoder, drop, feats, frames, ch, tm, chl)

    def _convert_options(self, ct: Any, ch: Any, tm: Any) -> dict[str, Any]:
        """`ct.convert` options beyond the shared ones (the deployment target; states where the step has them)."""
        return {"minimum_deployment_target": ct.target.iOS17}

    def _load(self, path: Path) -> None:
        from rnnt_tui.core.coreml.spec import read_spec
        from rnnt_tui.core.mil.program import MilProgram

        self.predict = {}
        for phase in PHASES:
            package = phase_package(path, phase)
            self.frames[phase] = int(read_spec(package).input("features").shape[2])
            self.predict[phase] = MilProgram.load(package).run

    def __call__(self, features: np.ndarray, length: int, caches: Caches, first: bool) -> StepOutput:
        out = self.predict["first" if first else "next"]({
            "features": self.padded(features, first), "length": np.array([length], np.int32),
            "cache_last_channel": caches["cache_last_channel"].astype(np.float32),
            "cache_last_time": caches["cache_last_time"].astype(np.float32),
            "cache_last_channel_len": caches["cache_last_channel_len"].astype(np.int32)})
        return step_output(out)


class CoreMLStreamStep(MilStreamStep):
    """The step's Core ML packages predicted by Core ML (macOS; the Core ML test stand-in elsewhere in tests)."""

    name = "coreml"

    def _load(self, path: Path) -> None:
        self.loader, models = open_coreml_phases(self, path)
        self.predict = {phase: model.predict for phase, model in models.items()}

    def close(self) -> None:
        self.predict = {}
        loader = getattr(self, "loader", None)
        if loader is not None:
            loader.close()
        StreamStep.close(self)  # not super(): CoreMLStateStreamStep borrows this function without the class


def explicit_traceable(encoder: Any, drop: int, feats: Any, frames: int, ch: Any, tm: Any,
                       chl: Any) -> tuple[Any, tuple[str, ...], tuple[Any, ...]]:
    """(module, input names, example input) of one phase with the caches as inputs and outputs
    (`StreamStepWrapper`), for the Core ML and Core AI converters."""
    import torch

    from rnnt_tui.core.stream.wrapper import StreamStepWrapper

    example = (feats, torch.tensor([frames], dtype=torch.int32), ch, tm, chl.to(torch.int32))
    return StreamStepWrapper(encoder, drop), StreamStepWrapper.INPUTS, example


def step_output(out: dict[str, Any]) -> StepOutput:
    """A converted step's named outputs (`StreamStepWrapper.OUTPUTS`) as (encoded, length, caches)."""
    return (np.asarray(out["encoded"], np.float32), int(np.asarray(out["encoded_length"]).reshape(-1)[0]),
            {"cache_last_channel": np.asarray(out["cache_last_channel_next"], np.float32),
             "cache_last_time": np.asarray(out["cache_last_time_next"], np.float32),
             "cache_last_channel_len": np.asarray(out["cache_last_channel_len_next"], np.int64).reshape(-1)})


def phase_package(path: Path, phase: str) -> Path:
    """The package of one phase's program in a step's folder (the explicit-cache layout)."""
    return path / f"encoder-{phase}.mlpackage"


def per_phase_programs(path: Path) -> dict[str, tuple[Path, str | None]]:
    """phase -> (its own package, no function name): a step's folder with a package per phase."""
    return {phase: (phase_package(path, phase), None) for phase in PHASES}


def open_coreml_phases(step: MilStreamStep, path: Path, programs: dict[str, tuple[Path, str | None]] | None = None
                       ) -> tuple[Any, dict[str, Any]]:
    """Each phase's program in `path` opened by Core ML for `step` (each phase's frames and how it was loaded noted
    on the step): the loader (closed with the step) and phase -> the opened MLModel. `programs`: phase -> (package,
    function of a multifunction package), default a package per phase. Shared by the explicit-cache and stateful
    steps."""
    from rnnt_tui.core.coreml.load import CoreMLLoader
    from rnnt_tui.core.coreml.spec import read_spec
    from rnnt_tui.core.names import DEFAULT_COMPUTE_UNITS

    loader = CoreMLLoader(step.use_cache)
    models: dict[str, Any] = {}
    for phase, (package, function) in (programs or per_phase_programs(path)).items():
        spec = read_spec(package, function)
        opened = loader.load(package, DEFAULT_COMPUTE_UNITS, None, spec.spec_version, function)
        step.frames[phase] = int(spec.input("features").shape[2])
        models[phase] = opened.model
        step.notes.append(f"{phase} chunk{f' (function {function})' if function else ''}: {opened.how}")
    return loader, models
