"""Network MIL ops as numpy kernels: linear, matmul, einsum, normalisations, softmax, reductions, pooling.

These are the hot ops of a Conformer encoder and a joint; they run on numpy's BLAS with weights prepared once
at plan time. Convolutions live in `kernels_conv`, the
recurrent ops in `kernels_rnn`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnt_tui.core.mil.kernels_base import Args, OpMeta, as_bool, axes_tuple, f32, kernel


@kernel("linear")
def _linear(a: Args, m: OpMeta) -> Any:
    x = f32(a["x"])
    out = x @ f32(a["weight"]).T  # a transposed view: BLAS reads it as is (a transposed copy would cost seconds)
    bias = a.get("bias")
    if bias is not None:
        out += f32(bias)
    return out


@kernel("matmul")
def _matmul(a: Args, m: OpMeta) -> Any:
    x, y = f32(a["x"]), f32(a["y"])
    if as_bool(a.get("transpose_x")):
        x = np.swapaxes(x, -1, -2) if x.ndim > 1 else x
    if as_bool(a.get("transpose_y")):
        y = np.swapaxes(y, -1, -2) if y.ndim > 1 else y
    return np.matmul(x, y)


@kernel("einsum")
def _einsum(a: Args, m: OpMeta) -> Any:
    values = [f32(v) for v in a["values"]]
    return np.einsum(str(np.asarray(a["equation"]).item()), *values, optimize=True)


def _norm_axes(a: Args, x: np.ndarray) -> tuple[int, ...]:
    axes = a.get("axes")
    return tuple(range(x.ndim)) if axes is None else axes_tuple(axes, x.ndim)


@kernel("layer_norm")
def _layer_norm(a: Args, m: OpMeta) -> Any:
    x = f32(a["x"])
    axes = _norm_axes(a, x)
    eps = np.float32(np.asarray(a.get("epsilon", 1e-5)).item())
    mean = x.mean(axis=axes, keepdims=True)
    centred = x - mean
    var = np.square(centred).mean(axis=axes, keepdims=True)
    var += eps
    np.sqrt(var, out=var)
    centred /= var
    gamma, beta = a.get("gamma"), a.get("beta")
    shape = [x.shape[i] if i in axes else 1 for i in range(x.ndim)]
    if gamma is not None:
        centred *= f32(gamma).reshape(shape)
    if beta is not None:
        centred += f32(beta).reshape(shape)
    return centred


def _channel(v: Any, ndim: int) -> np.ndarray:
    return f32(v).reshape((1, -1) + (1,) * (ndim - 2))


@kernel("batch_norm")
def _batch_norm(a: Args, m: OpMeta) -> Any:
    x = f32(a["x"])
    eps = np.float32(np.asarray(a.get("epsilon", 1e-5)).item())
    scale = 1.0 / np.sqrt(f32(a["variance"]) + eps)
    if a.get("gamma") is not None:
        scale = scale * f32(a["gamma"])
    shift = -f32(a["mean"]) * scale
    if a.get("beta") is not None:
        shift = shift + f32(a["beta"])
    return x * _channel(scale, x.ndim) + _channel(shift, x.ndim)


@kernel("instance_norm")
def _instance_norm(a: Args, m: OpMeta) -> Any:
    x = f32(a["x"])
    eps = np.float32(np.asarray(a.get("epsilon", 1e-5)).item())
    axes = tuple(range(2, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    out = (x - mean) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    if a.get("gamma") is not None:
        out = out * _channel(a["gamma"], x.ndim)
    if a.get("beta") is not None:
        out = out + _channel(a["beta"], x.ndim)
    return out


@kernel("l2_norm")
def _l2_norm(a: Args, m: OpMeta) -> Any:
    x = f32(a["x"])
    eps = np.float32(np.asarray(a.get("epsilon", 1e-6)).item())
    axes = a.get("axes")
    ax = tuple(range(1, x.ndim)) if axes is None else axes_tuple(axes, x.ndim)
    return x / np.sqrt(np.maximum(np.sum(x * x, axis=ax, keepdims=True), eps))


@kernel("softmax")
def _softmax(a: Args, m: OpMeta) -> Any:
    x = f32(a["x"])
    axis = int(np.asarray(a.get("axis", -1)))
    out = x - x.max(axis=axis, keepdims=True)
    np.exp(out, out=out)
    out /= out.sum(axis=axis, keepdims=True)
    return out


_REDUCE: dict[str, Any] = {
    "reduce_sum": np.sum, "reduce_mean": np.mean, "reduce_max": np.max, "reduce_min": np.min,
    "reduce_prod": np.prod,
}


@kernel("reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", "reduce_l1_norm",
        "reduce_l2_norm", "reduce_log_sum", "reduce_log_sum_exp", "reduce_sum_square")
def _reduce(a: Args, m: OpMeta) -> Any:
    x = f32(a["x"])
    axes = a.get("axes")
    ax = None if axes is None else axes_tuple(axes, x.ndim)
    keep = as_bool(a.get("keep_dims"))
    if m.type in _REDUCE:
        return _REDUCE[m.type](x, axis=ax, keepdims=keep)
    if m.type == "reduce_l1_norm":
        return np.sum(np.abs(x), axis=ax, keepdims=keep)
    if m.type == "reduce_l2_norm":
        return np.sqrt(np.sum(x * x, axis=ax, keepdims=keep))
    if m.type == "reduce_log_sum":
        return np.log(np.sum(x, axis=ax, keepdims=keep))
    if m.type == "reduce_sum_square":
        return np.sum(x * x, axis=ax, keepdims=keep)
    top = np.max(x, axis=ax, keepdims=True)
    out = np.log(np.sum(np.exp(x - top), axis=ax, keepdims=True)) + top
    return out if keep else np.squeeze(out, axis=ax)


@kernel("reduce_argmax", "reduce_argmin")
def _reduce_arg(a: Args, m: OpMeta) -> Any:
    x = f32(a["x"])
    axis = int(np.asarray(a.get("axis", -1))) % x.ndim
    fn = np.argmax if m.type == "reduce_argmax" else np.argmin
    return fn(x, axis=axis, keepdims=as_bool(a.get("keep_dims"))).astype(np.int32)


def _pool_windows(a: Args, x: np.ndarray, fill: float) -> tuple[np.ndarray, int]:
    kernel_sizes = [int(k) for k in np.asarray(a["kernel_sizes"]).ravel()]
    strides = [int(s) for s in np.asarray(a["strides"]).ravel()] if a.get("strides") is not None \
        else [1] * len(kernel_sizes)
    from rnnt_tui.core.mil.kernels_conv import padding  # shared with conv: one place for pad_type rules

    spatial = x.shape[2:]
    pads = padding(a, spatial, kernel_sizes, strides, [1] * len(kernel_sizes))
    if as_bool(a.get("ceil_mode")):
        pads = [(lo, hi + s - 1) for (lo, hi), s in zip(pads, strides, strict=True)]
    padded = np.pad(x, [(0, 0), (0, 0), *pads], constant_values=fill)
    win = np.lib.stride_tricks.sliding_window_view(padded, kernel_sizes, axis=tuple(range(2, x.ndim)))  # type: ignore[call-overload]
    win = win[(slice(None), slice(None), *(slice(None, None, s) for s in strides))]
    return win, len(kernel_sizes)


@kernel("max_pool")
def _max_pool(a: Args, m: OpMeta) -> Any:
    x = f32(a["x"])
    win, n = _pool_windows(a, x, -np.inf)
    return win.max(axis=tuple(range(-n, 0)))


@kernel("avg_pool")
def _avg_pool(a: Args, m: OpMeta) -> Any:
    x = f32(a["x"])
    win, n = _pool_windows(a, x, 0.0)
    total = win.sum(axis=tuple(range(-n, 0)))
    if as_bool(a.get("exclude_padding_from_average")):
        counts, _ = _pool_windows(a, np.ones_like(x[:1, :1]), 0.0)
        return total / counts.sum(axis=tuple(range(-n, 0)))
    return total / float(np.prod(win.shape[-n:]))


@kernel("l2_pool")
def _l2_pool(a: Args, m: OpMeta) -> Any:
    x = f32(a["x"])
    win, n = _pool_windows(a, x, 0.0)
    return np.sqrt(np.sum(win * win, axis=tuple(range(-n, 0))))


@kernel("scaled_dot_product_attention")
def _sdpa(a: Args, m: OpMeta) -> Any:
    """iOS18 SDPA: softmax(Q Kᵀ / sqrt(E) + mask) V; a bool mask keeps True and sets False to -inf."""
    q, k, v = f32(a["query"]), f32(a["key"]), f32(a["value"])
    scores = np.matmul(q, np.swapaxes(k, -1, -2))
    scores *= np.float32(1.0 / np.sqrt(q.shape[-1]))
    mask = a.get("attn_mask")
    if mask is not None:
        mask = np.asarray(mask)
        scores = np.where(mask, scores, -np.inf) if mask.dtype == np.bool_ else scores + f32(mask)
    return np.matmul(_softmax({"x": scores, "axis": -1}, m), v)
