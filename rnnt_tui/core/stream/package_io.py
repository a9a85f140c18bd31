"""What a user's streaming step (`stream --step PKG [--map FILE]`) declares, and the role of each tensor.

A step is an ONNX model (`--against onnx`; NeMo's own export with `cache_support`), Core ML packages (`--against
mil|coreml`) or Core AI assets (`--against coreai`), caches as explicit inputs and outputs. `read_io` reads only the
declared inputs and outputs (name, shape with -1 where dynamic, numpy dtype) - with onnx, coremltools or
coreai-core, nothing loaded to run - and `package_roles` gives every tensor a role: the step's inputs (audio_signal:
features [1,F,T], length, cache_last_channel, cache_last_time, cache_last_channel_len) and outputs (encoded,
encoded_length and the three next caches). Names the tool knows - its own, NeMo's ONNX export's (`audio_signal`,
`length`, `outputs`, `encoded_lengths`, `cache_last_channel_next`, `cache_last_channel_next_len`, ...) - are
mapped by name (`ALIASES`); for any other name the user says the role in a JSON or YAML file of name -> role
(`--map`). A name with no role, or a file of the wrong kind for the candidate, is refused in one line naming it
(BadInputError: exit 2) before any model is restored - never a guess presented as fact. Running is
`core.stream.package_step`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnt_tui.core.errors import BadInputError
from rnnt_tui.core.stream.steps import PHASES

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
#: the candidates a --step runs under, and what they take
KINDS = {"onnx": "an ONNX model (.onnx)", "mil": "Core ML packages (.mlpackage)",
         "coreml": "Core ML packages (.mlpackage)", "coreai": "Core AI assets (.aimodel)"}
#: a file's suffix -> (what it is, the candidates that run it)
_SUFFIXES = {".onnx": ("an ONNX model", "onnx"), ".aimodel": ("a Core AI asset", "coreai"),
             ".mlpackage": ("a Core ML package", "mil or coreml"), ".mlmodel": ("a Core ML model", "mil or coreml"),
             ".mlmodelc": ("a compiled Core ML model", "mil or coreml")}


@dataclass(frozen=True)
class Declared:
    """One declared input or output: name, shape (-1 where dynamic or flexible), numpy dtype name."""

    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class StepIO:
    """A step file's declared inputs and outputs (`spec_version`: a Core ML package's, for loading it)."""

    path: Path
    inputs: tuple[Declared, ...]
    outputs: tuple[Declared, ...]
    spec_version: int | None = None

    def input(self, name: str) -> Declared:
        return next(t for t in self.inputs if t.name == name)


def _onnx_io(path: Path) -> StepIO:
    import onnx  # the declared graph I/O only; onnxruntime loads it to run
    from onnx.helper import tensor_dtype_to_np_dtype

    from rnnt_tui.core.archive import check_file

    check_file(path, "ONNX model")  # an empty file parses as an empty model: it would be "no input has the role"
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf and file errors alike: not a readable model
        raise BadInputError(path, f"not a readable ONNX model ({type(exc).__name__})") from None
    initializers = {t.name for t in model.graph.initializer}

    def declared(value: Any) -> Declared:
        tensor = value.type.tensor_type
        dims = tuple(int(d.dim_value) if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
        try:
            dtype = tensor_dtype_to_np_dtype(tensor.elem_type).name
        except (KeyError, ValueError):
            dtype = "unknown"
        return Declared(value.name, dims, dtype)

    return StepIO(path, tuple(declared(v) for v in model.graph.input if v.name not in initializers),
                  tuple(declared(v) for v in model.graph.output))


def _coreml_io(path: Path) -> StepIO:
    from rnnt_tui.core.coreml.spec import read_spec

    spec = read_spec(path)
    if spec.functions:  # never run one of them for both phases unasked
        raise BadInputError(path, f"a multifunction package (functions {', '.join(spec.functions)}): --step takes a "
                                  "single-function package per phase (the tool's own multifunction step is "
                                  "--cache-states)")

    def declared(t: Any) -> Declared:
        flexible = {i for i, (lo, hi) in enumerate(t.ranges or ()) if lo != hi}
        return Declared(t.name, tuple(-1 if i in flexible else d for i, d in enumerate(t.shape)), t.dtype)

    return StepIO(path, tuple(map(declared, spec.inputs)), tuple(map(declared, spec.outputs)), spec.spec_version)


def _coreai_io(path: Path) -> StepIO:
    from rnnt_tui.core.coreai.assets import read_asset

    functions = read_asset(path).functions
    function = functions.get("main") or (next(iter(functions.values())) if len(functions) == 1 else None)
    if function is None:
        raise BadInputError(path, f"its program has functions {', '.join(functions)} and none is main: a streaming "
                                  "step is one function")
    return StepIO(path, tuple(Declared(t.name, t.shape, t.dtype) for t in function.inputs),
                  tuple(Declared(t.name, t.shape, t.dtype) for t in function.outputs))


def read_io(path: Path, engine: str) -> StepIO:
    """The declared I/O of one step file for candidate `engine`; BadInputError naming a file of another kind."""
    what, runs = _SUFFIXES.get(path.suffix, (None, None))
    if what is not None and engine not in str(runs).split(" or "):
        raise BadInputError(path, f"this is {what}; --step takes {KINDS[engine]} with --against {engine} "
                                  f"(run it with --against {runs})")
    if engine == "onnx":
        if path.is_dir() or path.suffix != ".onnx":
            raise BadInputError(path, "not an ONNX model: --step with --against onnx takes an .onnx file")
        return _onnx_io(path)
    if engine == "coreai":
        return _coreai_io(path)
    return _coreml_io(path)


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
                  ) -> tuple[dict[str, Path], dict[str, StepIO], dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """(phase -> file, phase -> declared I/O, phase -> input role -> name, phase -> output role -> name); reads only
    the files' declared I/O, so a step whose names cannot be mapped is refused before any model is restored."""
    if engine not in KINDS:
        raise BadInputError(packages[0], f"--step runs with --against {', '.join(KINDS)}")
    if len(packages) not in (1, 2):
        raise BadInputError(None, "--step: give one package (every chunk) or two (the first chunk, then the rest)")
    paths = dict(zip(PHASES, packages if len(packages) == 2 else packages * 2, strict=True))
    given = read_role_map(role_map) if role_map is not None else {}
    specs = {p: read_io(path, engine) for p, path in paths.items()}
    inputs = {p: _roles(paths[p], [t.name for t in s.inputs], INPUT_ROLES, "inputs", given) for p, s in specs.items()}
    outputs = {p: _roles(paths[p], [t.name for t in s.outputs], OUTPUT_ROLES, "outputs", given)
               for p, s in specs.items()}
    return paths, specs, inputs, outputs
