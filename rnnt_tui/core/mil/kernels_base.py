"""The kernel registry: how a MIL op type maps to a numpy function, and the dtype rules every kernel shares.

A kernel is `fn(args, meta) -> array | tuple of arrays`: `args` maps the op's input names to numpy values
(constants already resolved, variadic inputs as lists), `meta` says what the program declares about the op.
A kernel may have a `prepare(args) -> args` run once at plan time on the constant inputs (transpose a weight,
upcast an fp16 table), so the per-call work is arithmetic only. Kernels compute floats in fp32 (fp16 inputs are
widened before the call); the plan rounds each output to the dtype the program declares.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Args = dict[str, Any]
Result = Any  # np.ndarray or a tuple of them


@dataclass(frozen=True)
class OpMeta:
    """What the program says about one op: its type and name, and its outputs' declared dtypes and ranks."""

    type: str
    name: str
    out_dtypes: tuple[np.dtype[Any] | None, ...]
    out_ranks: tuple[int | None, ...]
    opset: str = ""


KernelFn = Callable[[Args, OpMeta], Result]
PrepareFn = Callable[[Args, OpMeta], Args]


@dataclass(frozen=True)
class Kernel:
    fn: KernelFn
    prepare: PrepareFn | None = None


KERNELS: dict[str, Kernel] = {}


def kernel(*names: str, prepare: PrepareFn | None = None) -> Callable[[KernelFn], KernelFn]:
    """Register `fn` as the kernel of each MIL op type in `names`."""
    def register(fn: KernelFn) -> KernelFn:
        for name in names:
            KERNELS[name] = Kernel(fn, prepare)
        return fn
    return register


# int16/uint16 appear in fp16 programs only as casts of shapes and indices (coremltools' add_int16_cast pass);
# Core ML does not overflow there (coremltools#2222), so they are held as int32 here.
_WIDEN = {np.dtype(np.int16): np.dtype(np.int32), np.dtype(np.uint16): np.dtype(np.int32)}

_NAMED = {"fp16": np.float16, "fp32": np.float32, "fp64": np.float64, "int8": np.int8, "uint8": np.uint8,
          "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32, "int64": np.int64,
          "bool": np.bool_, "int4": np.int8, "uint4": np.uint8, "uint1": np.uint8, "uint2": np.uint8,
          "uint3": np.uint8, "uint6": np.uint8}


def held_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The dtype the interpreter holds a value of declared `dtype` in (int16/uint16 widened, see above)."""
    return _WIDEN.get(dtype, dtype)


def named_dtype(name: str) -> np.dtype[Any]:
    """numpy dtype of a MIL dtype string (`cast`'s `dtype` input): 'fp16', 'int32', 'bool', ..."""
    try:
        return held_dtype(np.dtype(_NAMED[name]))
    except KeyError:
        raise ValueError(f"unknown MIL dtype {name!r}") from None


def mil_dtype(var: Any) -> np.dtype[Any] | None:
    """numpy dtype a MIL Var is declared with (None for lists, tuples, dicts and strings, which hold no array; a
    state reads as its tensor). A tensor or scalar whose type has no numpy dtype is an error naming the var:
    skipping it would leave its value as the kernel made it (an fp16 output never rounded to fp16)."""
    if hasattr(var, "np_dtype"):  # load_proto.ProtoVar: read from the protobuf
        return var.np_dtype  # type: ignore[no-any-return]
    from coremltools.converters.mil.mil import types  # coremltools: only once a program is loaded

    sym_type = var.sym_type
    if any(kind(sym_type) for kind in (types.is_list, types.is_tuple, types.is_dict)):
        return None
    scalar = var.dtype
    if scalar is None or types.is_str(scalar) or not (types.is_scalar(scalar) or types.is_tensor(sym_type)):
        return None
    try:
        return np.dtype(types.nptype_from_builtin(scalar))
    except (TypeError, KeyError, ValueError) as exc:
        raise ValueError(f"MIL var {getattr(var, 'name', var)!r}: its type {scalar} has no numpy dtype, so its "
                         f"values could not be held in their declared precision") from exc


def rank_of(var: Any) -> int | None:
    try:
        return int(var.rank)
    except Exception:  # noqa: BLE001 - a list or an unknown-rank tensor
        return None


def f32(x: Any) -> np.ndarray:
    """`x` as a float array for computing: fp16 widened to fp32, other floats as they are."""
    arr = np.asarray(x)
    return arr.astype(np.float32) if arr.dtype == np.float16 else arr


def axes_tuple(value: Any, rank: int) -> tuple[int, ...]:
    return tuple(int(a) % rank if rank else 0 for a in np.atleast_1d(np.asarray(value)).ravel())


def as_bool(value: Any, default: bool = False) -> bool:
    return default if value is None else bool(np.asarray(value).item())


def as_str(value: Any, default: str = "") -> str:
    if value is None:
        return default
    if isinstance(value, np.ndarray):
        value = value.item() if value.size == 1 else value
    return str(value)
