"""Read Core ML packages on any OS, and match a folder of them to the transducer's components.

`read_spec` gives a package's inputs and outputs (names, default shapes, flexible ranges, dtypes) and metadata
without Core ML itself: `.mlpackage`/`.mlmodel` through coremltools' protobuf spec (output shapes the description
leaves open are taken from the ML program's own types), `.mlmodelc` through the `metadata.json` Core ML's compiler
writes. `match_packages` decides which package is which component: our own packages say so in their metadata
(`rnnt_tui.component`); others are recognised from their I/O, with our tensor names and the common parakeet-export
names (encoder `mel`/`audio_signal` + length → `encoder`/`encoder_length`; decoder `targets`, `target_length`,
`h_in`, `c_in` → `decoder`, `h_out`, `c_out`; per-step joint `encoder_step` [1,D,1] + `decoder_step` [1,H,1] →
`logits`). "Joint decision" packages (token id / probability / duration outputs) and fused packages are
recognised and reported as not comparable. A small JSON/YAML mapping file may override everything:

    encoder: Encoder.mlmodelc            # component: file
    decoder:                             # or component: {file, inputs, outputs, per_step, layouts}
      file: Decoder.mlpackage
      inputs: {targets: token, h: h_in, c: c_in}          # contract name: package tensor name
      outputs: {decoder_output: decoder, h: h_out, c: c_out}
    ignore: [JointDecision.mlpackage]
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rnnt_tui.core.components import COMPONENTS, DECODER, ENCODER, JOINT, PREPROCESSOR
from rnnt_tui.core.errors import BadInputError
from rnnt_tui.core.quiet import gc_frozen, quiet

META_PREFIX = "rnnt_tui."
PACKAGE_SUFFIXES = (".mlpackage", ".mlmodelc", ".mlmodel")
SPEC_VERSION_TARGETS = {4: "macOS10_15", 5: "macOS11", 6: "macOS12", 7: "macOS13", 8: "macOS14", 9: "macOS15",
                        10: "macOS26"}
_ARRAY_DTYPES = {65568: "float32", 65552: "float16", 65600: "float64", 131104: "int32", 131080: "int8"}
_JSON_DTYPES = {"float32": "float32", "float16": "float16", "double": "float64", "int32": "int32", "int8": "int8"}
_MIL_DTYPES = {10: "float16", 11: "float32", 12: "float64", 21: "int8", 23: "int32", 24: "int64", 1: "bool"}

#: tensor-name aliases per (component, contract name); ours first, then common export conventions
ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    PREPROCESSOR: {"audio_signal": ("audio_signal", "audio", "input_signal", "waveform", "signal"),
                   "length": ("length", "audio_length", "input_length", "audio_signal_length", "lengths"),
                   "features": ("features", "mel", "processed_signal", "mel_spectrogram", "melspectrogram"),
                   "features_length": ("features_length", "mel_length", "processed_length",
                                       "processed_signal_length")},
    ENCODER: {"features": ("features", "mel", "audio_signal", "processed_signal", "input_features"),
              "features_length": ("features_length", "length", "mel_length", "lengths", "processed_signal_length"),
              "encoded": ("encoded", "encoder", "encoder_output", "encoder_outputs", "outputs"),
              "encoded_length": ("encoded_length", "encoder_length", "encoded_lengths", "encoder_lengths")},
    DECODER: {"targets": ("targets", "token", "tokens", "target", "y", "input_ids"),
              "h": ("h", "h_in", "hidden", "state_h", "input_states_1"),
              "c": ("c", "c_in", "cell", "state_c", "input_states_2"),
              "decoder_output": ("decoder_output", "decoder", "decoder_out", "outputs", "decoder_outputs"),
              "h_out": ("h_out", "hidden_out", "state_h_out", "output_states_1"),
              "c_out": ("c_out", "cell_out", "state_c_out", "output_states_2")},
    JOINT: {"encoded": ("encoded", "encoder", "encoder_outputs", "encoder_output", "encoder_step", "f"),
            "decoder_output": ("decoder_output", "decoder", "decoder_outputs", "decoder_step", "g"),
            "logits": ("logits", "joint_output", "outputs", "output")},
}
#: contract names, in order, that each component's package takes and gives (decoder states come back as h_out/c_out)
PACKAGE_INPUTS = {PREPROCESSOR: ("audio_signal", "length"), ENCODER: ("features", "features_length"),
                  DECODER: ("targets", "h", "c"), JOINT: ("encoded", "decoder_output")}
PACKAGE_OUTPUTS = {PREPROCESSOR: ("features", "features_length"), ENCODER: ("encoded", "encoded_length"),
                   DECODER: ("decoder_output", "h_out", "c_out"), JOINT: ("logits",)}
DECISION_OUTPUTS = frozenset({"token_id", "token_ids", "token_prob", "duration", "durations", "top_k_ids",
                              "top_k_logits"})
_LENGTH_FEEDS = ("target_length", "target_lengths")

_ct_module: Any = None
_ct_chatter = ""


def load_coremltools() -> tuple[Any, str]:
    """Import coremltools once, keeping its import warnings off the screen; returns (module, what it printed)."""
    global _ct_module, _ct_chatter
    if _ct_module is None:
        with quiet() as q, gc_frozen():
            import coremltools

            if "torch" in sys.modules:  # the torch frontend ct.convert imports on first use
                import coremltools.converters.mil.frontend.torch

        _ct_module, _ct_chatter = coremltools, q.text.strip()
    return _ct_module, _ct_chatter


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: default shape (-1 where unknown), per-axis ranges when flexible, dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    ranges: tuple[tuple[int, int], ...] | None = None  # (lower, upper), upper -1 = unbounded
    enumerated: tuple[tuple[int, ...], ...] | None = None

    @property
    def rank(self) -> int:
        return len(self.ranges) if self.ranges else len(self.shape)

    @property
    def flexible(self) -> bool:
        return bool(self.enumerated) or any(lo != hi for lo, hi in self.ranges or ())

    def bounds(self, axis: int) -> tuple[int, int]:
        """(lower, upper) of `axis`; a fixed axis gives (size, size), an unknown one (1, -1)."""
        if self.ranges:
            return self.ranges[axis]
        size = self.shape[axis] if axis < len(self.shape) else -1
        return (size, size) if size > 0 else (1, -1)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                "ranges": [list(r) for r in self.ranges] if self.ranges else None,
                "enumerated": [list(s) for s in self.enumerated] if self.enumerated else None}


@dataclass(frozen=True)
class PackageSpec:
    """What a package declares: I/O, metadata, model type and the OS it needs."""

    path: Path
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    metadata: dict[str, str] = field(default_factory=dict)
    spec_version: int | None = None
    model_type: str = "mlProgram"

    @property
    def deployment_target(self) -> str | None:
        return SPEC_VERSION_TARGETS.get(self.spec_version or 0)

    def input(self, name: str) -> TensorSpec:
        return next(t for t in self.inputs if t.name == name)

    def output(self, name: str) -> TensorSpec:
        return next(t for t in self.outputs if t.name == name)

    def ours(self, key: str) -> str | None:
        """Our own metadata entry `rnnt_tui.<key>`, if the package has it."""
        return self.metadata.get(META_PREFIX + key)

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "model_type": self.model_type, "spec_version": self.spec_version,
                "deployment_target": self.deployment_target, "inputs": [t.to_json() for t in self.inputs],
                "outputs": [t.to_json() for t in self.outputs], "metadata": dict(self.metadata)}


def _array_spec(feature: Any, mil_types: dict[str, tuple[tuple[int, ...], str]]) -> TensorSpec:
    arr = feature.type.multiArrayType
    shape = tuple(int(d) for d in arr.shape)
    dtype = _ARRAY_DTYPES.get(int(arr.dataType), "unknown")
    ranges = enumerated = None
    flex = arr.WhichOneof("ShapeFlexibility")
    if flex == "shapeRange":
        ranges = tuple((int(r.lowerBound), int(r.upperBound)) for r in arr.shapeRange.sizeRanges)
    elif flex == "enumeratedShapes":
        enumerated = tuple(tuple(int(d) for d in s.shape) for s in arr.enumeratedShapes.shapes)
    if feature.name in mil_types:
        mil_shape, mil_dtype = mil_types[feature.name]
        shape = shape or mil_shape
        dtype = mil_dtype if dtype == "unknown" else dtype
    return TensorSpec(feature.name, shape, dtype, ranges, enumerated)


def _mil_types(spec: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """Shapes (-1 = unknown) and dtypes of the ML program's function inputs and outputs."""
    out: dict[str, tuple[tuple[int, ...], str]] = {}
    if spec.WhichOneof("Type") != "mlProgram" or "main" not in spec.mlProgram.functions:
        return out
    function = spec.mlProgram.functions["main"]
    block = function.block_specializations[function.opset]

    def record(named: Any) -> None:
        tensor = named.type.tensorType
        dims = tuple(int(d.constant.size) if d.WhichOneof("dimension") == "constant" else -1
                     for d in tensor.dimensions)
        out[named.name] = (dims, _MIL_DTYPES.get(int(tensor.dataType), "unknown"))

    for named in function.inputs:
        record(named)
    wanted = set(block.outputs)
    for op in block.operations:
        for named in op.outputs:
            if named.name in wanted:
                record(named)
    return out


def _json_list(text: Any) -> list[Any]:
    try:
        value = text if isinstance(text, list) else json.loads(str(text))
    except ValueError:
        value = [int(n) for n in re.findall(r"-?\d+", str(text))]
    return value if isinstance(value, list) else []


def _schema_spec(row: dict[str, Any]) -> TensorSpec:
    shape = tuple(int(d) for d in _json_list(row.get("shape", "[]")))
    ranges = enumerated = None
    if row.get("shapeRange"):
        pairs = _json_list(row["shapeRange"])
        ranges = tuple((int(p[0]), int(p[1])) for p in pairs if isinstance(p, list) and len(p) == 2) or None
    if row.get("enumeratedShapes"):
        enumerated = tuple(tuple(int(d) for d in s) for s in _json_list(row["enumeratedShapes"])) or None
    dtype = _JSON_DTYPES.get(str(row.get("dataType", "")).lower(), "unknown")
    return TensorSpec(str(row.get("name", "")), shape, dtype, ranges, enumerated)


def read_spec(path: Path | str) -> PackageSpec:
    """Read a `.mlpackage`, `.mlmodel` or `.mlmodelc`'s declared I/O and metadata (works on any OS)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise BadInputError(path, "no such Core ML package")
    if path.suffix == ".mlmodelc":
        try:
            meta = json.loads((path / "metadata.json").read_text())[0]
        except (OSError, ValueError, IndexError, KeyError) as exc:
            raise BadInputError(path, f"compiled model without a readable metadata.json ({exc})") from exc
        return PackageSpec(path=path, inputs=tuple(_schema_spec(r) for r in meta.get("inputSchema", [])),
                           outputs=tuple(_schema_spec(r) for r in meta.get("outputSchema", [])),
                           metadata={str(k): str(v) for k, v in (meta.get("userDefinedMetadata") or {}).items()},
                           spec_version=meta.get("specificationVersion"),
                           model_type=str((meta.get("modelType") or {}).get("name", "")).replace("MLModelType_", ""))
    ct, _ = load_coremltools()
    try:
        with quiet():
            spec = ct.utils.load_spec(str(path))
    except Exception as exc:  # protobuf and file errors alike mean "not a readable package"
        raise BadInputError(path, f"not a readable Core ML package ({type(exc).__name__}: {exc})") from exc
    mil = _mil_types(spec)
    return PackageSpec(path=path, inputs=tuple(_array_spec(f, mil) for f in spec.description.input),
                       outputs=tuple(_array_spec(f, mil) for f in spec.description.output),
                       metadata=dict(spec.description.metadata.userDefined),
                       spec_version=int(spec.specificationVersion), model_type=str(spec.WhichOneof("Type")))


@dataclass(frozen=True)
class PackageInfo:
    """A package matched to a component: which of its tensors plays which contract role, and how to call it.

    `inputs`/`outputs` map contract names (PACKAGE_INPUTS / PACKAGE_OUTPUTS) to the package's tensor names;
    `feeds` are extra inputs fed a constant (a decoder's `target_length` = 1); `layouts` marks [1,T,D] tensors
    ("BTD") among ones the contract keeps [1,D,T]; `per_step` joints take one frame and one step per call.
    """

    component: str
    spec: PackageSpec
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    feeds: dict[str, int] = field(default_factory=dict)
    layouts: dict[str, str] = field(default_factory=dict)
    per_step: bool = False
    comparable: bool = True
    source: str = "names"
    reason: str = ""

    @property
    def path(self) -> Path:
        return self.spec.path


def _kind(spec: PackageSpec) -> tuple[str, str]:
    """(kind, why) from I/O names and ranks; kind is a component or a not-comparable kind."""
    ins = {t.name.lower(): t for t in spec.inputs}
    outs = {t.name.lower() for t in spec.outputs}
    has = lambda comp, key, pool: any(a in pool for a in ALIASES[comp][key])  # noqa: E731
    stateful = has(DECODER, "h", ins) and has(DECODER, "c", ins)
    joint_in = has(JOINT, "encoded", ins) and has(JOINT, "decoder_output", ins)
    if outs & DECISION_OUTPUTS and not has(JOINT, "logits", outs):
        return "joint_decision", "outputs token decisions (" + ", ".join(sorted(outs & DECISION_OUTPUTS)) + \
            "), not logits: its numbers cannot be compared with the reference joint's"
    if stateful:
        if joint_in or "encoder_step" in ins:
            return "decoder_joint", "fuses the prediction net and the joint: no per-component comparison"
        return DECODER, "takes h/c states"
    if joint_in and has(JOINT, "logits", outs):
        return JOINT, "takes encoder and decoder outputs, gives logits"
    audio = [t for t in spec.inputs if t.rank == 2 and t.dtype.startswith("float")]
    if audio and has(ENCODER, "encoded", outs) and not has(PREPROCESSOR, "features", outs):
        return "mel_encoder", "fuses preprocessor and encoder: no per-component comparison"
    if audio:
        return PREPROCESSOR, "takes a [1,S] waveform"
    if any(t.rank == 3 for t in spec.inputs) and has(ENCODER, "encoded", outs):
        return ENCODER, "takes [1,F,T] features, gives encoder output"
    return "unknown", "its inputs and outputs match no component"


def _resolve(kind: str, spec: PackageSpec, summary: Any, override: dict[str, Any]) -> PackageInfo:
    ins = {t.name.lower(): t.name for t in spec.inputs}
    outs = {t.name.lower(): t.name for t in spec.outputs}
    inputs = {k: next((ins[a] for a in ALIASES[kind][k] if a in ins), None) for k in PACKAGE_INPUTS[kind]}
    outputs = {k: next((outs[a] for a in ALIASES[kind][k] if a in outs), None) for k in PACKAGE_OUTPUTS[kind]}
    inputs.update(override.get("inputs") or {})
    outputs.update({f"{k}_out" if kind == DECODER and k in ("h", "c") else k: v
                    for k, v in (override.get("outputs") or {}).items()})  # decoder h/c come out as h_out/c_out
    feeds = {ins[n]: 1 for n in _LENGTH_FEEDS if n in ins and kind == DECODER}
    missing = [k for k, v in (*inputs.items(), *outputs.items()) if not v]
    info = PackageInfo(component=kind, spec=spec, inputs={k: v for k, v in inputs.items() if v},
                       outputs={k: v for k, v in outputs.items() if v}, feeds=feeds,
                       layouts=dict(override.get("layouts") or {}))
    if missing:
        return replace(info, comparable=False, reason=f"no tensor found for {', '.join(missing)}")
    d_model = getattr(getattr(summary, "encoder", None), "d_model", None)
    layouts = dict(info.layouts)
    tensors = [(ENCODER, "encoded", spec.output, outputs), (JOINT, "encoded", spec.input, inputs)]
    for comp, key, get, names in tensors:
        if kind == comp and key not in layouts and d_model:
            shape = get(str(names[key])).shape
            if len(shape) == 3 and shape[2] == d_model and shape[1] != d_model:
                layouts[key] = "BTD"
    per_step = bool(override.get("per_step", False))
    if kind == JOINT and "per_step" not in override:
        enc, dec = spec.input(str(inputs["encoded"])), spec.input(str(inputs["decoder_output"]))
        axis = 1 if layouts.get("encoded") == "BTD" else 2
        per_step = enc.rank == 3 and enc.bounds(axis) == (1, 1) and dec.rank == 3 and 1 in dec.shape
    n_mels = getattr(summary, "n_mels", None)
    if kind == ENCODER and n_mels and (shape := spec.input(str(inputs["features"])).shape) and len(shape) == 3 \
            and n_mels not in shape[1:]:
        return replace(info, layouts=layouts, comparable=False,
                       reason=f"features input {list(shape)} has no axis of the model's {n_mels} mel bins")
    return replace(info, layouts=layouts, per_step=per_step)


def package_info(path: Path | str, summary: Any = None, component: str | None = None) -> PackageInfo:
    """One package's PackageInfo: `component` if given, else from its metadata, else from its I/O."""
    spec = read_spec(path)
    kind, why = (component, "as asked") if component else \
        (str(spec.ours("component")), "rnnt-tui package metadata") if spec.ours("component") in COMPONENTS \
        else _kind(spec)
    if kind not in COMPONENTS:
        return PackageInfo(component=kind, spec=spec, comparable=False, reason=why)
    info = _resolve(kind, spec, summary, {})
    return info if info.reason else replace(info, reason=why)


def read_mapping(path: Path | str) -> dict[str, Any]:
    """Parse a JSON or YAML mapping file (see the module docstring)."""
    import yaml

    path = Path(path).expanduser()
    try:
        data = yaml.safe_load(path.read_text())  # JSON is YAML
    except (OSError, yaml.YAMLError) as exc:
        raise BadInputError(path, f"unreadable mapping file ({exc})") from exc
    if not isinstance(data, dict):
        raise BadInputError(path, "a mapping file holds a mapping of component to package")
    if isinstance(data.get("components"), dict):
        data = {**data["components"], "ignore": data.get("ignore") or []}
    unknown = [k for k in data if k not in (*COMPONENTS, "ignore")]
    if unknown:
        raise BadInputError(path, f"unknown component(s) {', '.join(map(str, unknown))}; use {', '.join(COMPONENTS)}")
    return {k: ({"file": v} if isinstance(v, str) else v) for k, v in data.items()}


def match_packages(folder: Path | str, summary: Any = None,
                   mapping_file: Path | str | None = None) -> dict[str, PackageInfo]:
    """Match the Core ML packages in `folder` to components.

    Returns component -> PackageInfo for every comparable component found, plus `"<kind>:<file name>"` entries
    (comparable False, with the reason) for packages that are not comparable, unrecognised, or duplicates.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise BadInputError(folder, "not a folder of Core ML packages")
    mapping = read_mapping(mapping_file) if mapping_file else {}
    ignored = {str(n) for n in mapping.get("ignore") or []}
    assigned = {str(v["file"]): k for k, v in mapping.items() if k != "ignore" and isinstance(v, dict)}
    for name in assigned:
        if not (folder / name).exists():
            raise BadInputError(folder / name, "named in the mapping file but not in the folder")
    result: dict[str, PackageInfo] = {}
    for path in sorted(p for p in folder.iterdir() if p.suffix in PACKAGE_SUFFIXES and p.name not in ignored):
        spec = read_spec(path)
        if path.name in assigned:
            kind, source, why = assigned[path.name], "mapping", "named in the mapping file"
        elif spec.ours("component") in COMPONENTS:
            kind, source, why = str(spec.ours("component")), "metadata", "rnnt-tui package metadata"
        else:
            kind, why = _kind(spec)
            source = "names"
        if kind not in COMPONENTS:
            result[f"{kind}:{path.name}"] = PackageInfo(component=kind, spec=spec, comparable=False,
                                                        source=source, reason=why)
            continue
        info = replace(_resolve(kind, spec, summary, mapping.get(kind, {})), source=source)
        if not info.comparable:
            result[f"{kind}:{path.name}"] = info
        elif kind in result and result[kind].source != "mapping" and source == "mapping":
            old = result.pop(kind)
            result[f"{kind}:{old.path.name}"] = replace(old, comparable=False, reason="superseded by the mapping")
            result[kind] = replace(info, reason=why)
        elif kind in result:
            result[f"{kind}:{path.name}"] = replace(info, comparable=False,
                                                    reason=f"another {kind} package ({result[kind].path.name}) "
                                                           "was matched first; pick one with a mapping file")
        else:
            result[kind] = replace(info, reason=why)
    return result
