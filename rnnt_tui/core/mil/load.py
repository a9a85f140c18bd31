"""Read a saved Core ML ML program (.mlpackage / ML-program .mlmodel): its spec and one function (`main`, or the
named / default function of a multifunction package: `core.coreml.spec.function_of`).

What runs is exactly the bytes a user ships (spec + weight.bin): the function is read straight from the
protobuf (`load_proto`, fast) or, for what that reader leaves out (compressed weights, control flow), rebuilt by
coremltools' own milproto loader. Every way a file can be unusable becomes one `BadInputError(path, problem)`;
nothing is written next to the package.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnt_tui.core.errors import BadInputError

COMPILED = "a compiled model cannot be read back; give the .mlpackage"


@dataclass(frozen=True)
class LoadedProgram:
    """The MIL Program of a package, with its spec (I/O descriptions, metadata) and weights directory."""

    path: Path
    function: Any  # the function: a load_proto.ProtoFunction, or a coremltools MIL Function
    spec: Any  # coremltools.proto.Model_pb2.Model
    weights_dir: Path | None
    load_ms: float = 0.0  # reading the program and its weights
    program: Any = None  # the coremltools MIL Program, when the full loader read it
    function_name: str = "main"
    description: Any = None  # the function's I/O description (`input`, `output`, `state`); the spec's own for main


def _weight_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(path.glob("Data/com.apple.CoreML/weights/*.bin"))
    return []


def load_program(path: Path | str, function: str | None = None) -> LoadedProgram:
    """Load `path`'s function `function` (main, or a multifunction package's default, when None) into a MIL
    Program; BadInputError names the file and the problem when it cannot be used."""
    from rnnt_tui.core.coreml.spec import function_of, load_coremltools
    from rnnt_tui.core.quiet import quiet

    path = Path(path).expanduser()
    if not path.exists():
        raise BadInputError(path, "no such Core ML package")
    if path.suffix == ".mlmodelc":
        raise BadInputError(path, COMPILED)
    if path.suffix not in (".mlpackage", ".mlmodel"):
        raise BadInputError(path, "not a Core ML package (expected a .mlpackage or .mlmodel)")
    ct, _ = load_coremltools()
    try:
        with quiet():
            model = ct.models.MLModel(str(path), skip_model_load=True)
            spec = model.get_spec()
    except Exception as exc:  # protobuf, manifest and file errors alike mean "not a readable package"
        raise BadInputError(path, f"not a readable Core ML package ({type(exc).__name__}: {exc})") from exc
    kind = spec.WhichOneof("Type")
    if kind != "mlProgram":
        raise BadInputError(path, f"a {kind or 'empty'} model, not an ML program: the MIL interpreter runs only "
                                  "ML programs (convert with convert_to='mlprogram')")
    name, description = function_of(spec, path, function)
    weights_dir = Path(model.weights_dir) if getattr(model, "weights_dir", None) else None
    from coremltools.converters.mil.frontend.milproto.load import load  # coremltools: heavy, only here

    from rnnt_tui.core.mil.load_proto import read_function

    start = time.perf_counter()
    program = None
    try:
        with quiet():
            read = read_function(spec, str(weights_dir) if weights_dir else "", name)
            if read is None:  # compressed weights, nested blocks, ...: coremltools' full loader
                program = load(model_spec=spec, specification_version=spec.specificationVersion,
                               file_weights_dir=str(weights_dir) if weights_dir else "")
                read = program.functions[name]
    except Exception as exc:  # a truncated weight.bin or a malformed program surface as many exception types
        weights = _weight_files(path)
        detail = f"{type(exc).__name__}: {exc}".strip()
        if weights and any(w.stat().st_size == 0 for w in weights):
            raise BadInputError(path, f"weight file {weights[0].name} is empty ({detail})") from exc
        if not weights and path.is_dir() and "weight" in detail.lower():
            raise BadInputError(path, f"weight.bin is missing ({detail})") from exc
        raise BadInputError(path, f"the ML program cannot be read (missing or truncated weight.bin, or a "
                                  f"malformed program: {detail[:300]})") from exc
    return LoadedProgram(path=path, function=read, spec=spec, weights_dir=weights_dir,
                         load_ms=(time.perf_counter() - start) * 1000, program=program, function_name=name,
                         description=description)
