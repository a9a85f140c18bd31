"""Third-party streaming encoder steps (`stream --step PKG [--step PKG] [--map FILE]`), caches as explicit inputs
and outputs, run by the candidate's own runtime: an ONNX model by ONNX Runtime (`--against onnx`; NeMo's own export
with `cache_support` maps by name), Core ML packages by the MIL interpreter (`--against mil`) or Core ML
(`--against coreml`, macOS), Core AI assets by Apple's Core AI runtime (`--against coreai`).

Roles come from `core.stream.package_io` (names the tool knows, or the user's `--map`; refused before the model is
restored otherwise). Layouts are read here from the declared shapes against the restored model's (-1, a dynamic
axis, matches any size): layer-first caches ([L,1,...], NeMo's) or batch-first ([1,L,...], NeMo's ONNX export),
encoder output [1,D,T] or [1,T,D]; anything else, or declared shapes that fit both cache layouts, is refused naming
the tensor. Inputs are fed in the dtypes declared (int64 lengths for NeMo's ONNX export, int32 for Core ML).

One package runs every chunk (the first included: a note says NeMo's first chunk has its own drop rule); two run
the first chunk and the rest. A chunk shorter than a fixed package's input is zero-padded, its true length fed; a
dynamic time axis takes the chunk as it is.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from rnnt_tui.core.errors import BadInputError, RuntimeUnavailableError
from rnnt_tui.core.pipeline.events import ProgressCallback
from rnnt_tui.core.stream.package_io import package_roles
from rnnt_tui.core.stream.steps import PHASES, Caches, StepOutput, StreamStep

_DTYPES = {"float16": np.float16, "float32": np.float32, "float64": np.float64, "int32": np.int32,
           "int64": np.int64}


def _fits(declared: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    return len(declared) == len(shape) and all(d in (-1, s) for d, s in zip(declared, shape, strict=True))


class PackageStreamStep(StreamStep):
    """A user's streaming step files (not built here: nothing converted; only Core AI's lowering is cached)."""

    def __init__(self, loaded: Any, context: list[int], packages: tuple[Path, ...], role_map: Path | None,
                 engine: str) -> None:
        super().__init__(loaded, context, use_cache=True)
        self.name = engine
        self.paths, self.specs, self.inputs, self.outputs = package_roles(packages, role_map, engine)
        if len(packages) == 1:
            self.notes.append(f"one package for every chunk ({packages[0].name}): NeMo's first chunk has its own "
                              "drop_extra_pre_encoded (0), which a single program may not follow")
        self.notes += [f"{p} chunk: {self.paths[p].name}, roles " + ", ".join(
            f"{n}={r}" for r, n in {**self.inputs[p], **self.outputs[p]}.items()) for p in PHASES]
        self.batch_first = {p: self._layouts(p) for p in PHASES}

    @property
    def label(self) -> str:
        if self.name == "coreai":
            from rnnt_tui.core.coreai.platform import label_text

            return label_text()
        return super().label

    def _layouts(self, phase: str) -> bool:
        """Whether the caches are batch-first; checks every declared shape against the model's."""
        encoder = self.loaded.model.encoder
        ch, tm, _ = (t.shape for t in encoder.get_initial_cache_state(batch_size=1))
        spec, path = self.specs[phase], self.paths[phase]
        layouts: set[bool] = set()
        for role, shape in (("cache_last_channel", tuple(ch)), ("cache_last_time", tuple(tm))):
            declared = spec.input(self.inputs[phase][role]).shape
            batch_first = (shape[1], shape[0], *shape[2:])
            fits = {layout for layout, s in ((False, shape), (True, batch_first)) if _fits(declared, s)}
            if not fits:
                raise BadInputError(path, f"{self.inputs[phase][role]} ({role}) is declared {list(declared)}; this "
                                          f"model's is {list(shape)} (or batch-first {list(batch_first)})")
            if len(fits) == 2 and shape != batch_first:
                raise BadInputError(path, f"{self.inputs[phase][role]} ({role}) is declared {list(declared)}: "
                                          f"layer-first {list(shape)} and batch-first {list(batch_first)} both fit, "
                                          "so its layout cannot be told")
            layouts |= fits if len(fits) == 1 else set()
        features = spec.input(self.inputs[phase]["audio_signal"]).shape
        if len(features) != 3 or features[1] not in (-1, int(encoder._feat_in)):
            raise BadInputError(path, f"{self.inputs[phase]['audio_signal']} (audio_signal) is declared "
                                      f"{list(features)}; the model's features are [1, {encoder._feat_in}, T]")
        if len(layouts) > 1:
            raise BadInputError(path, "its two caches have different layouts (one batch-first, one layer-first)")
        if features[2] > 0:
            self.frames[phase] = int(features[2])
        return layouts.pop() if layouts else False

    def prepare(self, progress: ProgressCallback, cancel: threading.Event | None = None) -> None:
        import time

        start = time.perf_counter()
        progress(f"{self.label}: loading the streaming step packages", 0.9)
        self.predict: dict[str, Any] = {}
        if self.name == "onnx":
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            for phase in PHASES:
                session = ort.InferenceSession(str(self.paths[phase]), sess_options=opts,
                                               providers=["CPUExecutionProvider"])
                names = [o.name for o in session.get_outputs()]
                self.predict[phase] = (lambda s, n: lambda feed: dict(zip(n, s.run(n, feed), strict=True)))(
                    session, names)
        elif self.name == "coreai":
            self._open_coreai()
        elif self.name == "mil":
            from rnnt_tui.core.mil.program import MilProgram

            for phase in PHASES:
                self.predict[phase] = MilProgram.load(self.paths[phase]).run
        else:
            from rnnt_tui.core.coreml.load import CoreMLLoader
            from rnnt_tui.core.names import DEFAULT_COMPUTE_UNITS

            self.loader = CoreMLLoader(True)
            for phase in PHASES:
                opened = self.loader.load(self.paths[phase], DEFAULT_COMPUTE_UNITS, cancel,
                                          self.specs[phase].spec_version)
                self.predict[phase] = opened.model.predict
        self.prepare_ms = (time.perf_counter() - start) * 1000

    def _open_coreai(self) -> None:
        """Both assets opened by Apple's Core AI runtime, their lowered programs kept in the artifact cache."""
        from rnnt_tui.core.cache import ArtifactCache
        from rnnt_tui.core.coreai.execute import Executor
        from rnnt_tui.core.coreai.platform import coreai_problem, where_it_runs

        problem = coreai_problem(need_converter=False)
        if problem is not None:
            raise RuntimeUnavailableError(problem)
        self.executor: Any = Executor()
        opened: dict[Path, Any] = {}
        for phase in PHASES:
            path = self.paths[phase]
            if path not in opened:
                model, ms, cached, _ = self.executor.open(path, ArtifactCache())
                opened[path] = self.executor.function(model)
                self.notes.append(f"{path.name} loaded by {where_it_runs()} in {ms:.0f} ms "
                                  f"({'lowered program from the cache' if cached else 'lowered now'})")
            self.predict[phase] = (lambda f: lambda feed: self.executor.call(f, feed))(opened[path])

    def _build(self, out: Path) -> dict[str, Any]:
        raise NotImplementedError("a user's packages are not built")

    def _load(self, path: Path) -> None:
        raise NotImplementedError("a user's packages are loaded by prepare")

    def _cast(self, phase: str, role: str, value: np.ndarray) -> np.ndarray:
        declared = self.specs[phase].input(self.inputs[phase][role]).dtype
        dtype = _DTYPES.get(declared, np.float32 if value.dtype.kind == "f" else np.int32)
        if self.name == "coreml" and declared == "float16":
            dtype = np.float32  # Core ML takes fp32 for an fp16 input and converts it itself
        return np.ascontiguousarray(value, dtype=dtype)

    def __call__(self, features: np.ndarray, length: int, caches: Caches, first: bool) -> StepOutput:
        phase = "first" if first else "next"
        swap = self.batch_first[phase]
        names_in, names_out = self.inputs[phase], self.outputs[phase]

        def cache(value: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(value.transpose(1, 0, *range(2, value.ndim))) if swap else value

        feed = {names_in["audio_signal"]: self._cast(phase, "audio_signal", self.padded(features, first)),
                names_in["length"]: self._cast(phase, "length", np.array([length])),
                names_in["cache_last_channel_len"]: self._cast(phase, "cache_last_channel_len",
                                                               caches["cache_last_channel_len"])}
        for role in ("cache_last_channel", "cache_last_time"):
            feed[names_in[role]] = self._cast(phase, role, cache(caches[role]))
        out = self.predict[phase](feed)
        encoded = np.asarray(out[names_out["encoded"]], np.float32)
        d_model = caches["cache_last_channel"].shape[-1]
        if encoded.shape[1] != d_model and encoded.shape[2] == d_model:
            encoded = encoded.transpose(0, 2, 1)  # [1,T,D] -> [1,D,T]
        return (encoded, int(np.asarray(out[names_out["encoded_length"]]).reshape(-1)[0]),
                {"cache_last_channel": cache(np.asarray(out[names_out["cache_last_channel_next"]], np.float32)),
                 "cache_last_time": cache(np.asarray(out[names_out["cache_last_time_next"]], np.float32)),
                 "cache_last_channel_len": np.asarray(out[names_out["cache_last_channel_len_next"]],
                                                      np.int64).reshape(-1)})

    def close(self) -> None:
        self.predict = {}
        loader = getattr(self, "loader", None)
        if loader is not None:
            loader.close()
        executor = getattr(self, "executor", None)
        if executor is not None:
            executor.close()
        self.executor = None
        super().close()
