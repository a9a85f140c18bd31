"""Third-party streaming encoder packages (`stream --step PKG [--step PKG] [--map FILE]`), caches as explicit
inputs and outputs, run by the MIL interpreter (`--against mil`) or Core ML (`--against coreml`, macOS).

Every input and output of a package gets a role: the step's inputs (audio_signal: features [1,F,T], length,
cache_last_channel, cache_last_time, cache_last_channel_len) and outputs (encoded, encoded_length and the three
next caches). Names the tool knows - its own, NeMo's ONNX export's - are mapped by name (`ALIASES`); for any other
name the user says the role in a JSON or YAML file of name -> role (`--map`). A name with no role is refused in one
line naming it (BadInputError: exit 2) before anything runs - never a guess presented as fact. Layouts are read
from the declared shapes against the restored model's: layer-first caches ([L,1,...], NeMo's) or batch-first
([1,L,...], NeMo's ONNX export), encoder output [1,D,T] or [1,T,D]; anything else is refused naming the tensor.

One package runs every chunk (the first included: a note says NeMo's first chunk has its own drop rule); two run
the first chunk and the rest. A chunk shorter than a fixed package's input is zero-padded, its true length fed.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from rnnt_tui.core.errors import BadInputError
from rnnt_tui.core.pipeline.events import ProgressCallback
from rnnt_tui.core.stream.steps import PHASES, Caches, StepOutput, StreamStep

INPUT_ROLES = ("audio_signal", "length", "cache_last_channel", "cache_last_time", "cache_last_channel_len")
OUTPUT_ROLES = ("encoded", "encoded_length", "cache_last_channel_next", "cache_last_time_next",
                "cache_last_channel_len_next")
#: role -> the names it is known by (the tool's own step, NeMo's ONNX export with cache_support, NeMo's arguments)
ALIASES: dict[str, tuple[str, ...]] = {
    "audio_signal": ("audio_signal", "features", "processed_signal"),
    "length": ("length", "features_length", "processed_signal_length"),
    "cache_last_channel": ("cache_last_channel",), "cache_last_time": ("cache_last_time",),
    "cache_last_channel_len": ("cache_last_channel_len",),
    "encoded": ("encoded", "outputs"), "encoded_length": ("encoded_length", "encoded_lengths"),
    "cache_last_channel_next": ("cache_last_channel_next",), "cache_last_time_next": ("cache_last_time_next",),
    "cache_last_channel_len_next": ("cache_last_channel_len_next", "cache_last_channel_next_len")}
_FLOAT = {"float16": np.float16, "float32": np.float32, "float64": np.float64}


def read_role_map(path: Path) -> dict[str, str]:
    """A `--map` file: a JSON or YAML mapping of tensor name -> role; BadInputError naming the file otherwise."""
    import yaml  # JSON is YAML too

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BadInputError(path, f"not a readable JSON or YAML name -> role map ({type(exc).__name__})") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise BadInputError(path, "a --map file is one mapping of tensor name -> role (strings)")
    unknown = sorted(set(data.values()) - set(INPUT_ROLES) - set(OUTPUT_ROLES))
    if unknown:
        raise BadInputError(path, f"unknown role(s) {', '.join(unknown)}; roles are {', '.join(INPUT_ROLES)} "
                                  f"(inputs) and {', '.join(OUTPUT_ROLES)} (outputs)")
    return dict(data)


def _roles(path: Path, names: list[str], roles: tuple[str, ...], side: str, given: dict[str, str]) -> dict[str, str]:
    """role -> the package's tensor name for one side (inputs or outputs)."""
    found: dict[str, str] = {}
    unmapped: list[str] = []
    for name in names:
        role = given.get(name) or next((r for r in roles if name in ALIASES[r]), None)
        if role is None:
            unmapped.append(name)
        elif role not in roles:
            raise BadInputError(path, f"{side[:-1]} {name!r} is mapped to {role!r}, which is not an {side[:-1]} role "
                                      f"({', '.join(roles)})")
        elif role in found:
            raise BadInputError(path, f"{side} {found[role]!r} and {name!r} both have the role {role}")
        else:
            found[role] = name
    if unmapped:
        raise BadInputError(path, f"cannot tell the role of {side} {', '.join(map(repr, unmapped))}: give --map FILE "
                                  f"(name -> role; {side} roles: {', '.join(roles)})")
    missing = [r for r in roles if r not in found]
    if missing:
        raise BadInputError(path, f"no {side[:-1]} has the role {', '.join(missing)} (name it in --map FILE)")
    return found


def package_roles(packages: tuple[Path, ...], role_map: Path | None, engine: str
                  ) -> tuple[dict[str, Path], dict[str, Any], dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """(phase -> package, phase -> spec, phase -> input role -> name, phase -> output role -> name); reads only the
    packages' declared I/O, so a package whose names cannot be mapped is refused before any model is restored."""
    from rnnt_tui.core.coreml.spec import read_spec

    if engine not in ("mil", "coreml"):
        raise BadInputError(packages[0], "--step takes Core ML packages, run with --against mil or coreml")
    if len(packages) not in (1, 2):
        raise BadInputError(None, "--step: give one package (every chunk) or two (the first chunk, then the rest)")
    paths = dict(zip(PHASES, packages if len(packages) == 2 else packages * 2, strict=True))
    given = read_role_map(role_map) if role_map is not None else {}
    specs = {p: read_spec(path) for p, path in paths.items()}
    inputs = {p: _roles(paths[p], [t.name for t in s.inputs], INPUT_ROLES, "inputs", given) for p, s in specs.items()}
    outputs = {p: _roles(paths[p], [t.name for t in s.outputs], OUTPUT_ROLES, "outputs", given)
               for p, s in specs.items()}
    return paths, specs, inputs, outputs


class PackageStreamStep(StreamStep):
    """A user's streaming step packages (not built here: nothing is cached, nothing converted)."""

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

    def _layouts(self, phase: str) -> bool:
        """Whether the caches are batch-first; checks every declared shape against the model's."""
        encoder = self.loaded.model.encoder
        ch, tm, _ = (t.shape for t in encoder.get_initial_cache_state(batch_size=1))
        spec, path = self.specs[phase], self.paths[phase]
        layouts = set()
        for role, shape in (("cache_last_channel", tuple(ch)), ("cache_last_time", tuple(tm))):
            declared = spec.input(self.inputs[phase][role]).shape
            batch_first = (shape[1], shape[0], *shape[2:])
            if declared == shape:
                layouts.add(False)
            elif declared == batch_first:
                layouts.add(True)
            else:
                raise BadInputError(path, f"{self.inputs[phase][role]} ({role}) is declared {list(declared)}; this "
                                          f"model's is {list(shape)} (or batch-first {list(batch_first)})")
        features = spec.input(self.inputs[phase]["audio_signal"]).shape
        if len(features) != 3 or features[1] != int(encoder._feat_in):
            raise BadInputError(path, f"{self.inputs[phase]['audio_signal']} (audio_signal) is declared "
                                      f"{list(features)}; the model's features are [1, {encoder._feat_in}, T]")
        if len(layouts) != 1:
            raise BadInputError(path, "its two caches have different layouts (one batch-first, one layer-first)")
        self.frames[phase] = int(features[2])
        return layouts.pop()

    def prepare(self, progress: ProgressCallback, cancel: threading.Event | None = None) -> None:
        import time

        start = time.perf_counter()
        progress(f"{self.label}: loading the streaming step packages", 0.9)
        self.predict: dict[str, Any] = {}
        if self.name == "mil":
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

    def _build(self, out: Path) -> dict[str, Any]:
        raise NotImplementedError("a user's packages are not built")

    def _load(self, path: Path) -> None:
        raise NotImplementedError("a user's packages are loaded by prepare")

    def _cast(self, phase: str, role: str, value: np.ndarray) -> np.ndarray:
        declared = self.specs[phase].input(self.inputs[phase][role]).dtype
        dtype = _FLOAT.get(declared, np.int32) if self.name == "mil" or declared != "float16" else np.float32
        return np.ascontiguousarray(value, dtype=dtype)

    def __call__(self, features: np.ndarray, length: int, caches: Caches, first: bool) -> StepOutput:
        phase = "first" if first else "next"
        swap = self.batch_first[phase]
        names_in, names_out = self.inputs[phase], self.outputs[phase]

        def cache(value: np.ndarray) -> np.ndarray:
            return value.transpose(1, 0, *range(2, value.ndim)) if swap else value

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
