"""Feature conversion of the test stand-in bridge: which Python values become Core ML features and how outputs
come back, written from coremltools 9.0's `coremlpython/CoreMLPythonUtils.mm` (`Utils::convertValueToObjC`,
`Utils::convertArrayValueToPython`, `Utils::handleError`) and `coremlpython/CoreMLPythonArray.mm`
(`PybindCompatibleArray dataTypeOf:`: int32, float32, float64, int8 only with the macOS 26 SDK), plus Core ML's own
shape check against the model description and the `@available(macOS N, *)` gates of `CoreMLPython.mm`.
Test-only: see `tests/coreml_standin/__init__.py`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .machine import MACHINE

#: Core ML's ArrayDataType values -> the numpy dtype the stand-in computes in
DECLARED = {65568: np.float32, 65552: np.float16, 65600: np.float64, 131104: np.int32, 131080: np.int8}


def ns_error(message: str) -> RuntimeError:
    """`Utils::handleError` (CoreMLPythonUtils.mm): RuntimeError with the NSError's userInfo formatted by %@."""
    return RuntimeError(f'{{\n    NSLocalizedDescription = "{message}";\n}}')


def needs(version: tuple[int, int], what: str) -> None:
    """The `@available(macOS N, *)` branches of CoreMLPython.mm: std::runtime_error on older systems."""
    if MACHINE.version < version:
        raise RuntimeError(f"{what} is only available on macOS >= {version[0]}.{version[1]}")


def to_feature(value: Any) -> Any:
    """`Utils::convertValueToObjC`: ints, floats, strings, dicts pass as scalars; lists and tuples become nil
    (`convertValueToSequence` is commented out); a buffer becomes an MLMultiArray only if
    `PybindCompatibleArray dataTypeOf:` accepts its dtype, else "value type not convertible" (after printing it)."""
    if isinstance(value, bool | int | np.integer | float | np.floating | str | bytes | dict):
        return value
    if isinstance(value, list | tuple):
        return None
    if isinstance(value, np.ndarray):
        kind, size = value.dtype.kind, value.dtype.itemsize
        if (kind == "i" and size == 4) or (kind == "f" and size in (4, 8)) or (
                kind == "i" and size == 1 and MACHINE.sdk26):
            return value
    print("Error: value type not convertible:")
    print(value)
    raise RuntimeError("value type not convertible")


def to_python(value: np.ndarray) -> np.ndarray:
    """`Utils::convertArrayValueToPython`: Float16 arrays are concatenated into Float32 ("py::array doesn't support
    fp16"); Int32, Float32, Float64 (and Int8 with the macOS 26 SDK) as they are."""
    value = np.asarray(value)
    if value.dtype == np.float16:
        return value.astype(np.float32)
    if value.dtype.kind == "b" or (value.dtype.kind in "iu" and value.dtype != np.int8):
        return value.astype(np.int32)
    return np.array(value)


def check_shape(name: str, shape: tuple[int, ...], feature: Any) -> None:
    """Core ML's own check of an input against the model description (fixed, ranged or enumerated shapes)."""
    arr = feature.type.multiArrayType
    declared = tuple(int(d) for d in arr.shape)
    flex = arr.WhichOneof("ShapeFlexibility")
    shown = " x ".join(map(str, shape))
    if flex == "shapeRange":
        ranges = [(int(r.lowerBound), int(r.upperBound)) for r in arr.shapeRange.sizeRanges]
        ok = len(ranges) == len(shape) and all(lo <= n and (hi < 0 or n <= hi)
                                               for n, (lo, hi) in zip(shape, ranges, strict=True))
    elif flex == "enumeratedShapes":
        ok = shape in [tuple(int(d) for d in s.shape) for s in arr.enumeratedShapes.shapes]
    else:
        ok = not declared or shape == declared
    if not ok:
        raise ns_error(f"MultiArray shape ({shown}) does not match the shape specified in the model description "
                        f"for input '{name}' (test stand-in)")
