"""Element-wise MIL ops as numpy kernels: binary arithmetic and comparisons, unary maths, activations, select, cast.

Semantics follow coremltools' op definitions (`mil/ops/defs/iOS15/elementwise_*.py`, `activation.py`): numpy
broadcasting, `log`/`rsqrt`/`inverse` with their `epsilon`, `real_div` as true division then the declared dtype.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rnnt_tui.core.mil.kernels_base import Args, OpMeta, as_str, f32, kernel, named_dtype

_BINARY: dict[str, Any] = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "real_div": np.true_divide,
    "floor_div": np.floor_divide, "mod": np.mod, "pow": np.power, "maximum": np.maximum, "minimum": np.minimum,
    "equal": np.equal, "not_equal": np.not_equal, "less": np.less, "less_equal": np.less_equal,
    "greater": np.greater, "greater_equal": np.greater_equal, "logical_and": np.logical_and,
    "logical_or": np.logical_or, "logical_xor": np.logical_xor,
}


def _binary(a: Args, m: OpMeta) -> Any:
    x, y = f32(a["x"]), f32(a["y"])
    if m.type == "floor_div" and (x.dtype.kind == "f" or y.dtype.kind == "f"):
        return np.floor(np.true_divide(x, y))
    if m.type == "pow" and x.dtype.kind in "iu" and y.dtype.kind in "iu":
        return np.power(x.astype(np.float64), y).astype(x.dtype)
    return _BINARY[m.type](x, y)


kernel(*_BINARY)(_binary)


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to ~1.2e-7 absolute (Numerical Recipes' erfc Chebyshev fit); numpy has none and scipy is optional."""
    z = np.abs(x).astype(np.float64)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = (-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277)))))))))
    r = 1.0 - t * np.exp(poly)
    return np.where(x >= 0, r, -r).astype(x.dtype if x.dtype.kind == "f" else np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out = np.negative(x)
    np.exp(out, out=out)
    out += 1
    np.reciprocal(out, out=out)
    return out


_UNARY: dict[str, Any] = {
    "abs": np.abs, "acos": np.arccos, "asin": np.arcsin, "atan": np.arctan, "atanh": np.arctanh,
    "ceil": np.ceil, "cos": np.cos, "cosh": np.cosh, "exp": np.exp, "exp2": np.exp2, "floor": np.floor,
    "logical_not": np.logical_not, "round": np.round, "sign": np.sign, "sin": np.sin, "sinh": np.sinh,
    "sqrt": np.sqrt, "square": np.square, "tan": np.tan, "tanh": np.tanh, "erf": _erf, "sigmoid": _sigmoid,
}


@kernel(*_UNARY)
def _unary(a: Args, m: OpMeta) -> Any:
    return _UNARY[m.type](f32(a["x"]))


@kernel("identity")
def _identity(a: Args, m: OpMeta) -> Any:
    return a["x"]


@kernel("log")
def _log(a: Args, m: OpMeta) -> Any:
    eps = a.get("epsilon")
    x = f32(a["x"])
    return np.log(x + (f32(eps) if eps is not None else np.float32(1e-45)))


@kernel("rsqrt")
def _rsqrt(a: Args, m: OpMeta) -> Any:
    eps = a.get("epsilon")
    return 1.0 / np.sqrt(f32(a["x"]) + (f32(eps) if eps is not None else np.float32(1e-12)))


@kernel("inverse")
def _inverse(a: Args, m: OpMeta) -> Any:
    eps = a.get("epsilon")
    return 1.0 / (f32(a["x"]) + (f32(eps) if eps is not None else np.float32(1e-4)))


@kernel("clip")
def _clip(a: Args, m: OpMeta) -> Any:
    return np.minimum(np.maximum(f32(a["x"]), f32(a["alpha"])), f32(a["beta"]))


@kernel("threshold")
def _threshold(a: Args, m: OpMeta) -> Any:
    return np.maximum(f32(a["x"]), f32(a["alpha"]))


@kernel("cast")
def _cast(a: Args, m: OpMeta) -> Any:
    return np.asarray(a["x"]).astype(named_dtype(as_str(a["dtype"])))


@kernel("select")
def _select(a: Args, m: OpMeta) -> Any:
    return np.where(np.asarray(a["cond"]).astype(bool), f32(a["a"]), f32(a["b"]))


# -- activations ------------------------------------------------------------------------------------------
@kernel("relu")
def _relu(a: Args, m: OpMeta) -> Any:
    return np.maximum(f32(a["x"]), 0)


@kernel("relu6")
def _relu6(a: Args, m: OpMeta) -> Any:
    return np.clip(f32(a["x"]), 0, 6)


@kernel("silu")
def _silu(a: Args, m: OpMeta) -> Any:
    x = f32(a["x"])
    out = _sigmoid(x)
    out *= x
    return out


@kernel("gelu")
def _gelu(a: Args, m: OpMeta) -> Any:
    x = f32(a["x"])
    mode = as_str(a.get("mode"), "EXACT")
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    if mode == "SIGMOID_APPROXIMATION":
        return x * _sigmoid(1.702 * x)
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


@kernel("softplus")
def _softplus(a: Args, m: OpMeta) -> Any:
    return np.logaddexp(f32(a["x"]), 0)


@kernel("softsign")
def _softsign(a: Args, m: OpMeta) -> Any:
    x = f32(a["x"])
    return x / (1 + np.abs(x))


@kernel("elu")
def _elu(a: Args, m: OpMeta) -> Any:
    x = f32(a["x"])
    return np.where(x > 0, x, f32(a.get("alpha", 1.0)) * (np.exp(x) - 1))


@kernel("leaky_relu")
def _leaky_relu(a: Args, m: OpMeta) -> Any:
    x = f32(a["x"])
    return np.where(x >= 0, x, f32(a.get("alpha", 0.01)) * x)


@kernel("prelu")
def _prelu(a: Args, m: OpMeta) -> Any:
    x = f32(a["x"])
    alpha = f32(a["alpha"]).reshape((1, -1) + (1,) * (x.ndim - 2))
    return np.where(x >= 0, x, alpha * x)


@kernel("clamped_relu")
def _clamped_relu(a: Args, m: OpMeta) -> Any:
    x = f32(a["x"])
    return np.minimum(np.where(x >= 0, x, f32(a["alpha"]) * x), f32(a["beta"]))


@kernel("hard_sigmoid", "sigmoid_hard")
def _hard_sigmoid(a: Args, m: OpMeta) -> Any:
    return np.clip(f32(a.get("alpha", 0.2)) * f32(a["x"]) + f32(a.get("beta", 0.5)), 0, 1)


@kernel("linear_activation")
def _linear_activation(a: Args, m: OpMeta) -> Any:
    return f32(a["alpha"]) * f32(a["x"]) + f32(a.get("beta", 0.0))


@kernel("scaled_tanh")
def _scaled_tanh(a: Args, m: OpMeta) -> Any:
    return f32(a.get("alpha", 1.0)) * np.tanh(f32(a.get("beta", 1.0)) * f32(a["x"]))
