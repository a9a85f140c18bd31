"""Read what a Core ML package declares, on any OS: inputs and outputs (names, default shapes, flexible ranges,
dtypes), metadata, model type and spec version.

`.mlpackage`/`.mlmodel` are read through coremltools' protobuf spec (output shapes the description leaves open are
taken from the ML program's own types), `.mlmodelc` through the `metadata.json` Core ML's compiler writes. A spec
read once can be kept as JSON and read back without coremltools (`PackageSpec.to_json` / `from_json`: a bundle
records its packages' specs so a replay opens without importing it).
A multifunction package (`ct.utils.save_multifunction`, macOS 15+: e.g. a streaming encoder's first-chunk and
next-chunk functions sharing weights and states) declares each function's I/O apart: `function_of` picks one (the
package's default when none is named), for this reader and the MIL interpreter's loader alike.
`shape_warnings` flags declared shapes that bite at run time. Which package plays which component is
`core.coreml.matching`'s job; this module never guesses roles.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnt_tui.core.errors import BadInputError
from rnnt_tui.core.quiet import gc_frozen, quiet

META_PREFIX = "rnnt_tui."
PACKAGE_SUFFIXES = (".mlpackage", ".mlmodelc", ".mlmodel")
SPEC_VERSION_TARGETS = {4: "macOS10_15", 5: "macOS11", 6: "macOS12", 7: "macOS13", 8: "macOS14", 9: "macOS15",
                        10: "macOS26"}
_ARRAY_DTYPES = {65568: "float32", 65552: "float16", 65600: "float64", 131104: "int32", 131080: "int8"}
_JSON_DTYPES = {"float32": "float32", "float16": "float16", "double": "float64", "int32": "int32", "int8": "int8"}
_MIL_DTYPES = {10: "float16", 11: "float32", 12: "float64", 21: "int8", 23: "int32", 24: "int64", 1: "bool"}

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

    def fit_bounds(self, axis: int, shape: tuple[int, ...]) -> tuple[int, int]:
        """(lower, upper) of `axis` for a value of `shape`: `bounds`, except for enumerated shapes, where it is the
        smallest enumerated size on `axis` that holds `shape[axis]` among the shapes that agree with `shape` on
        every other axis (lower == upper: the value is padded to it), or the largest one when none holds it (the
        caller then refuses the value, naming that bound)."""
        if not self.enumerated:
            return self.bounds(axis)
        sizes = sorted({s[axis] for s in self.enumerated if len(s) == len(shape)
                        and all(a == b for i, (a, b) in enumerate(zip(s, shape, strict=True)) if i != axis)})
        if not sizes:
            return self.bounds(axis)
        size = next((n for n in sizes if n >= shape[axis]), sizes[-1])
        return size, size

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                "ranges": [list(r) for r in self.ranges] if self.ranges else None,
                "enumerated": [list(s) for s in self.enumerated] if self.enumerated else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TensorSpec:
        """The inverse of `to_json`."""
        ranges, enumerated = data.get("ranges"), data.get("enumerated")
        return cls(str(data["name"]), tuple(int(d) for d in data["shape"]), str(data["dtype"]),
                   tuple((int(lo), int(hi)) for lo, hi in ranges) if ranges else None,
                   tuple(tuple(int(d) for d in s) for s in enumerated) if enumerated else None)


@dataclass(frozen=True)
class PackageSpec:
    """What a package declares: I/O, metadata, model type and the OS it needs."""

    path: Path
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    metadata: dict[str, str] = field(default_factory=dict)
    spec_version: int | None = None
    model_type: str = "mlProgram"
    #: Core ML states (`ct.StateType`, `description.state`, macOS 15+): the buffers a stateful model reads and
    #: updates in place across predictions (always float16 in coremltools 9.0)
    states: tuple[TensorSpec, ...] = ()
    #: a multifunction package's functions (empty: one `main`) and which one this spec describes
    functions: tuple[str, ...] = ()
    function: str = "main"

    @property
    def deployment_target(self) -> str | None:
        return SPEC_VERSION_TARGETS.get(self.spec_version or 0)

    def input(self, name: str) -> TensorSpec:
        return next(t for t in self.inputs if t.name == name)

    def output(self, name: str) -> TensorSpec:
        return next(t for t in self.outputs if t.name == name)

    def state(self, name: str) -> TensorSpec:
        return next(t for t in self.states if t.name == name)

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.states)

    def ours(self, key: str) -> str | None:
        """Our own metadata entry `rnnt_tui.<key>`, if the package has it."""
        return self.metadata.get(META_PREFIX + key)

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "model_type": self.model_type, "spec_version": self.spec_version,
                "deployment_target": self.deployment_target, "states": [t.to_json() for t in self.states],
                "functions": list(self.functions), "function": self.function,
                "inputs": [t.to_json() for t in self.inputs],
                "outputs": [t.to_json() for t in self.outputs], "metadata": dict(self.metadata)}

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path) -> PackageSpec:
        """The inverse of `to_json`, for the package now at `path` (what a bundle recorded of its packages: reading
        it back needs no coremltools)."""
        version = data.get("spec_version")
        return cls(path=path, inputs=tuple(TensorSpec.from_json(t) for t in data["inputs"]),
                   outputs=tuple(TensorSpec.from_json(t) for t in data["outputs"]),
                   metadata={str(k): str(v) for k, v in (data.get("metadata") or {}).items()},
                   spec_version=None if version is None else int(version),
                   model_type=str(data.get("model_type", "mlProgram")),
                   states=tuple(TensorSpec.from_json(t) for t in data.get("states") or ()),
                   functions=tuple(str(f) for f in data.get("functions") or ()),
                   function=str(data.get("function") or "main"))


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


def _state_spec(feature: Any) -> TensorSpec:
    """A `description.state` entry: the multi-array its `stateType` wraps (fixed shape)."""
    arr = feature.type.stateType.arrayType
    return TensorSpec(feature.name, tuple(int(d) for d in arr.shape), _ARRAY_DTYPES.get(int(arr.dataType), "unknown"))


def function_of(spec: Any, path: Path, name: str | None = None) -> tuple[str, Any]:
    """(function name, its description: `input`, `output`, `state`) of `spec`: the named function of a
    multifunction package (its default when `name` is None), or `main` and the spec's own description.
    BadInputError naming `path` and the functions it has when there is no such function."""
    described = {f.name: f for f in spec.description.functions}
    if not described:
        if name not in (None, "main"):
            raise BadInputError(path, f"has no function {name!r} (it has one function, main)")
        return "main", spec.description
    chosen = name or spec.description.defaultFunctionName or next(iter(described))
    if chosen not in described:
        raise BadInputError(path, f"has no function {chosen!r} (its functions: {', '.join(described)})")
    return chosen, described[chosen]


def _mil_types(spec: Any, name: str = "main") -> dict[str, tuple[tuple[int, ...], str]]:
    """Shapes (-1 = unknown) and dtypes of the ML program's function `name`'s inputs and outputs."""
    out: dict[str, tuple[tuple[int, ...], str]] = {}
    if spec.WhichOneof("Type") != "mlProgram" or name not in spec.mlProgram.functions:
        return out
    function = spec.mlProgram.functions[name]
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


def read_spec(path: Path | str, function: str | None = None) -> PackageSpec:
    """Read a `.mlpackage`, `.mlmodel` or `.mlmodelc`'s declared I/O and metadata (works on any OS); of a
    multifunction package, `function`'s (its default function's when None)."""
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
    name, described = function_of(spec, path, function)
    mil = _mil_types(spec, name)
    return PackageSpec(path=path, inputs=tuple(_array_spec(f, mil) for f in described.input),
                       outputs=tuple(_array_spec(f, mil) for f in described.output),
                       metadata=dict(spec.description.metadata.userDefined),
                       spec_version=int(spec.specificationVersion), model_type=str(spec.WhichOneof("Type")),
                       states=tuple(_state_spec(f) for f in described.state),
                       functions=tuple(f.name for f in spec.description.functions), function=name)


def shape_warnings(spec: PackageSpec) -> list[str]:
    """Warnings about declared input shapes: a flexible input whose default shape has a 1 on a flexible axis
    (Core ML specialises for the default shape at load; a caller that feeds the default gets one step)."""
    out = []
    for t in spec.inputs:
        if t.ranges and t.shape and any(lo != hi and size == 1 for (lo, hi), size in zip(t.ranges, t.shape,
                                                                                          strict=False)):
            bounds = ", ".join(str(lo) if lo == hi else f"{lo}..{'∞' if hi == -1 else hi}" for lo, hi in t.ranges)
            out.append(f"{spec.path.name}: input {t.name} is flexible ([{bounds}]) but its default shape is "
                       f"{list(t.shape)}: Core ML specialises the model for the default shape when it loads, and a "
                       "caller that feeds the default gets a single step")
    return out
