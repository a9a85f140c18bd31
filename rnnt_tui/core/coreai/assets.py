"""A `.aimodel` asset as the tool reads it: checked file by file, its functions' signatures, and rnnt-tui's own
metadata; a bad one is one `BadInputError` naming the folder and the problem.

An asset is a folder: `metadata.json` (producer, creation date, `creatorDefinedMetadata`), `main.mlirb` (the
program as MLIR bytecode) and `main.hash` (the SHA-256 of the bytecode, 32 raw bytes). `read_asset` checks, in
this order and before anything is loaded: the folder exists and is a folder named `*.aimodel` (a Core ML package
or compiled model is named as such), the metadata is JSON from a Core AI producer, the bytecode is there and not
empty, its hash matches (a truncated or tampered program is refused before Apple's runtime sees it), and only
then asks coreai-core for the functions and their inputs / outputs / states. Nothing is ever written into the
asset. Pure-Python checks first, so the light install refuses bad files the same way.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnt_tui.core.errors import BadInputError

SUFFIX = ".aimodel"
METADATA = "metadata.json"
BYTECODE = "main.mlirb"
HASH = "main.hash"
META_PREFIX = "rnnt_tui."
_CORE_ML = {".mlpackage": "a Core ML package", ".mlmodelc": "a compiled Core ML model",
            ".mlmodel": "a Core ML model"}
_DTYPES = {"Float32": "float32", "Float16": "float16", "BFloat16": "bfloat16", "Int32": "int32", "Int64": "int64",
           "Int16": "int16", "Int8": "int8", "UInt8": "uint8", "UInt32": "uint32", "Bool": "bool"}
_TYPE = re.compile(r"NDArray \((\w+),\s*(.*)\)")


@dataclass(frozen=True)
class TensorSpec:
    """One input, output or state of a function: name, dtype (numpy's name) and shape (-1 where flexible)."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    @classmethod
    def parse(cls, name: str, text: str) -> TensorSpec:
        """From coreai's summary text, e.g. `NDArray (Float32, 1 × 64 × ?)`."""
        match = _TYPE.fullmatch(text.strip())
        if match is None:
            return cls(name, "unknown", ())
        dims = [d.strip() for d in match.group(2).split("×") if d.strip()]
        return cls(name, _DTYPES.get(match.group(1), match.group(1).lower()),
                   tuple(int(d) if d.isdigit() else -1 for d in dims))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    states: tuple[TensorSpec, ...] = ()

    def input(self, name: str) -> TensorSpec:
        return next(t for t in self.inputs if t.name == name)

    def output(self, name: str) -> TensorSpec:
        return next(t for t in self.outputs if t.name == name)

    def signature(self) -> str:
        def show(tensors: tuple[TensorSpec, ...]) -> str:
            return ", ".join(f"{t.name} {t.dtype}[{'x'.join('?' if d < 0 else str(d) for d in t.shape)}]"
                             for t in tensors)
        return f"{self.name}({show(self.inputs)}) -> {show(self.outputs)}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "inputs": [t.to_json() for t in self.inputs],
                "outputs": [t.to_json() for t in self.outputs], "states": [t.to_json() for t in self.states]}


@dataclass(frozen=True)
class AssetInfo:
    """A checked asset: where it is, its functions, its producer and rnnt-tui's metadata (empty for others')."""

    path: Path
    functions: dict[str, FunctionSpec]
    producer: str
    ours: dict[str, Any] = field(default_factory=dict)

    @property
    def component(self) -> str | None:
        value = self.ours.get("component")
        return str(value) if value else None

    def meta(self, key: str, default: Any = None) -> Any:
        return self.ours.get(key, default)


def _check_files(path: Path) -> dict[str, Any]:
    """The pure-Python checks; returns the parsed metadata.json."""
    if not path.exists():
        raise BadInputError(path, "no such Core AI asset")
    kind = _CORE_ML.get(path.suffix)
    if kind is not None:
        raise BadInputError(path, f"this is {kind}, not a Core AI asset (.aimodel); use --against coreml or mil "
                                  "for Core ML packages")
    if not path.is_dir() or path.suffix != SUFFIX:
        raise BadInputError(path, "not a Core AI asset: an asset is a folder named *.aimodel")
    meta_path = path / METADATA
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise BadInputError(path, f"not a Core AI asset: it has no {METADATA}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BadInputError(path, f"its {METADATA} is not readable JSON ({type(exc).__name__}: {exc}); the asset is "
                                  "damaged") from None
    if not isinstance(meta, dict) or "assetVersion" not in meta:
        raise BadInputError(path, f"its {METADATA} is not Core AI asset metadata (no assetVersion)")
    code, digest = path / BYTECODE, path / HASH
    if not code.is_file():
        raise BadInputError(path, f"the asset has no program ({BYTECODE} is missing)")
    data = code.read_bytes()
    if not data:
        raise BadInputError(path, f"its program {BYTECODE} is empty (truncated)")
    if not digest.is_file():
        raise BadInputError(path, f"the asset has no {HASH}; its program cannot be checked")
    expected = digest.read_bytes()
    if hashlib.sha256(data).digest() != expected:
        raise BadInputError(path, f"its program {BYTECODE} does not match {HASH} (truncated or modified after it "
                                  "was saved)")
    return meta


def read_asset(path: Path | str) -> AssetInfo:
    """Check `path` and read its functions (coreai-core parses the bytecode); BadInputError when it is unusable."""
    path = Path(path).expanduser()
    meta = _check_files(path)
    custom = meta.get("creatorDefinedMetadata") or {}
    ours = {k[len(META_PREFIX):]: v for k, v in custom.items() if isinstance(k, str) and k.startswith(META_PREFIX)}
    try:
        from coreai.authoring.asset import AIModelAsset

        summary = AIModelAsset.load(path).summary(include_statistics=False)
        if summary is None:
            raise BadInputError(path, f"coreai-core finds no program in it ({BYTECODE})")
        functions = {}
        states: Any = getattr(summary, "function_states", lambda _name: [])  # in the runtime, not its stubs
        for name in summary.function_names:
            functions[name] = FunctionSpec(
                name, tuple(TensorSpec.parse(n, t) for n, t in summary.function_inputs(name)),
                tuple(TensorSpec.parse(n, t) for n, t in summary.function_outputs(name)),
                tuple(TensorSpec.parse(n, t) for n, t in states(name)))
    except BadInputError:
        raise
    except ImportError:
        raise
    except Exception as exc:  # noqa: BLE001 - coreai-core's reason is the finding
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInputError(path, f"coreai-core cannot read its program: {text}") from None
    if not functions:
        raise BadInputError(path, "its program has no functions")
    return AssetInfo(path=path, functions=functions, producer=str(meta.get("producer", "")), ours=ours)


def refuse_for_core_ml(folder: Path | str) -> None:
    """Raise when `--packages` for a Core ML runtime points at Core AI assets instead (an `.aimodel`, or a folder
    with assets and no Core ML package): one line naming it and what to use."""
    root = Path(folder).expanduser()
    if root.suffix == SUFFIX:
        raise BadInputError(root, "this is a Core AI asset (.aimodel), not a Core ML package; use --against coreai")
    if not root.is_dir():
        return
    names = [p.suffix for p in root.iterdir()]
    assets = sorted(p.name for p in root.iterdir() if p.suffix == SUFFIX)
    if assets and not any(s in _CORE_ML for s in names):
        raise BadInputError(root, f"holds Core AI assets ({', '.join(assets)}), not Core ML packages; use --against "
                                  "coreai for them")
