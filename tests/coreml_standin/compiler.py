"""The stand-in's "compiler": what `[MLModel compileModelAtURL:error:]` does for the bridge, played in a folder.

Core ML compiles a `.mlpackage` / `.mlmodel` into a `.mlmodelc` folder (`model.mil`, `coremldata.bin`,
`metadata.json`, weights); coremltools 9.0 reaches it through `_MLModelProxy.compileModel`
(coremlpython/CoreMLPython.mm, `Model::compileModel`) and, for a package handed to the proxy's constructor, compiles
it into a temporary folder deleted with the model (`Model::Model`, `m_deleteCompiledModelOnExit`).

The stand-in's `.mlmodelc` is NOT a Core ML compiled model: it keeps a copy of the source package (the MIL
interpreter reads only packages), a `model.mil` listing the program's ops (its digest is kept in `coremldata.bin`,
so a damaged `model.mil` is refused at load as Core ML refuses a damaged program), and a `metadata.json` in the
layout Core ML's compiler writes (the fields rnnt-tui's `core.coreml.spec.read_spec` reads).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

MARKER = b"rnnt-tui TEST STAND-IN for Core ML's compiler: not a Core ML compiled model\n"
SOURCE = "standin-source"
_DTYPES = {65568: "Float32", 65552: "Float16", 65600: "Double", 131104: "Int32", 131080: "Int8"}


class CompileError(RuntimeError):
    """Raised where Core ML's compiler would fail (the bridge turns it into RuntimeError with the NSError text)."""


def _load_spec(path: Path) -> Any:
    from coremltools.models.utils import load_spec

    return load_spec(str(path))


def program_text(spec: Any) -> str:
    """A listing of the program (ML program: op types and outputs; neural network: layers) for `model.mil`."""
    lines = [f"program(stand-in, spec {spec.specificationVersion}, {spec.WhichOneof('Type')})"]
    if spec.WhichOneof("Type") == "mlProgram":
        for name, function in spec.mlProgram.functions.items():
            lines.append(f"func {name}<{function.opset}>")
            for op in function.block_specializations[function.opset].operations:
                lines.append(f"  {op.type} -> {', '.join(o.name for o in op.outputs)}")
    elif spec.WhichOneof("Type") == "neuralNetwork":
        lines += [f"  {layer.WhichOneof('layer')} {layer.name}" for layer in spec.neuralNetwork.layers]
    return "\n".join(lines) + "\n"


def _schema(feature: Any) -> dict[str, Any]:
    arr = feature.type.multiArrayType
    row: dict[str, Any] = {"name": feature.name, "type": "MultiArray",
                           "dataType": _DTYPES.get(int(arr.dataType), "Float32"),
                           "shape": json.dumps([int(d) for d in arr.shape])}
    flex = arr.WhichOneof("ShapeFlexibility")
    if flex == "shapeRange":
        row["shapeRange"] = json.dumps([[int(r.lowerBound), int(r.upperBound)] for r in arr.shapeRange.sizeRanges])
    elif flex == "enumeratedShapes":
        row["enumeratedShapes"] = json.dumps([[int(d) for d in s.shape] for s in arr.enumeratedShapes.shapes])
    return row


def compile_to(source: Path, destination: Path) -> Path:
    """Compile `source` (.mlpackage / .mlmodel) into `destination` (.mlmodelc); CompileError where Core ML's
    compiler would fail (unreadable spec)."""
    try:
        spec = _load_spec(source)
    except Exception as exc:  # protobuf / file errors: Core ML's compiler refuses the model
        raise CompileError(f'{{NSLocalizedDescription = "Error reading protobuf spec. validator error: {exc}";}}') \
            from exc
    destination.mkdir(parents=True)
    copied = destination / (SOURCE + source.suffix)
    if source.is_dir():
        shutil.copytree(source, copied)
    else:
        shutil.copy2(source, copied)
    text = program_text(spec)
    (destination / "model.mil").write_text(text)
    digest = hashlib.sha256(text.encode()).hexdigest()
    (destination / "coremldata.bin").write_bytes(MARKER + json.dumps({"model.mil": digest}).encode())
    meta = [{"specificationVersion": int(spec.specificationVersion),
             "modelType": {"name": f"MLModelType_{spec.WhichOneof('Type')}"},
             "inputSchema": [_schema(f) for f in spec.description.input],
             "outputSchema": [_schema(f) for f in spec.description.output],
             "userDefinedMetadata": dict(spec.description.metadata.userDefined),
             "generatedBy": "rnnt-tui test stand-in (not Core ML)"}]
    (destination / "metadata.json").write_text(json.dumps(meta))
    return destination


def compile_to_temp(source: Path) -> Path:
    """`[MLModel compileModelAtURL:]`: a fresh temporary `.mlmodelc` (the caller owns and removes it)."""
    folder = Path(tempfile.mkdtemp(prefix="standin-compiled-"))
    return compile_to(source, folder / f"{source.stem}.mlmodelc")


def open_compiled(compiled: Path) -> tuple[Path, Any]:
    """(the source package inside `compiled`, its spec); RuntimeError in Core ML's words when it is damaged."""
    marker = compiled / "coremldata.bin"
    if not compiled.is_dir() or not marker.exists():
        raise RuntimeError(f'{{NSLocalizedDescription = "Unable to load model: {compiled}. Compile the model with '
                           'Xcode or `MLModel.compileModelAtURL:`.";}}')
    data = marker.read_bytes()
    if not data.startswith(MARKER):
        raise RuntimeError(f'{{NSLocalizedDescription = "{compiled.name} was compiled by Core ML, not by the test '
                           'stand-in: the stand-in cannot run it";}}')
    digest = json.loads(data[len(MARKER):]).get("model.mil")
    program = compiled / "model.mil"
    if not program.exists() or hashlib.sha256(program.read_bytes()).hexdigest() != digest:
        raise RuntimeError('{NSLocalizedDescription = "Failed to parse the model specification. Error: Unable to '
                           'parse ML Program: model.mil is damaged (test stand-in)";}')
    source = next(compiled.glob(SOURCE + ".*"))
    return source, _load_spec(source)


def remove(compiled: Path) -> None:
    shutil.rmtree(compiled.parent if compiled.parent.name.startswith("standin-compiled-") else compiled, True)
