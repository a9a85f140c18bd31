"""MIL `conv` (1-D/2-D/3-D, grouped, strided, dilated) as numpy kernels; coremltools has no value inference for it.

Three paths, chosen per call from the weight's shape: a pointwise conv (kernel 1, stride 1) is one matmul; a
depthwise conv (one input channel per group) is a sum over kernel taps of strided slices times per-channel
weights; anything else gathers im2col columns tap by tap and does one BLAS matmul per group.
Padding follows MIL's `pad_type` rules (valid / custom / same / same_lower), shared with pooling.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rnnt_tui.core.mil.kernels_base import Args, OpMeta, as_str, f32, kernel


def _list(a: Args, key: str, n: int, default: int) -> list[int]:
    value = a.get(key)
    return [default] * n if value is None else [int(v) for v in np.asarray(value).ravel()]


def padding(a: Args, spatial: Sequence[int], kernel_sizes: Sequence[int], strides: Sequence[int],
            dilations: Sequence[int]) -> list[tuple[int, int]]:
    """(begin, end) padding per spatial axis under MIL's `pad_type` / `pad` inputs."""
    pad_type = as_str(a.get("pad_type"), "valid")
    n = len(spatial)
    if pad_type == "valid":
        return [(0, 0)] * n
    if pad_type == "custom":
        pad = _list(a, "pad", 2 * n, 0)
        return [(pad[2 * i], pad[2 * i + 1]) for i in range(n)]
    if pad_type in ("same", "same_lower"):
        out = []
        for size, k, s, d in zip(spatial, kernel_sizes, strides, dilations, strict=True):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            small = total // 2
            out.append((small, total - small) if pad_type == "same" else (total - small, small))
        return out
    raise NotImplementedError(f"pad_type {pad_type!r}")


def _prepare_conv(a: Args, m: OpMeta) -> Args:
    if isinstance(a.get("weight"), np.ndarray):
        a = dict(a)
        a["weight"] = np.ascontiguousarray(f32(a["weight"]))
    return a


@kernel("conv", prepare=_prepare_conv)
def _conv(a: Args, m: OpMeta) -> Any:
    x, w = f32(a["x"]), f32(a["weight"])
    n_sp = x.ndim - 2
    groups = int(np.asarray(a.get("groups", 1)))
    strides, dilations = _list(a, "strides", n_sp, 1), _list(a, "dilations", n_sp, 1)
    ksizes = list(w.shape[2:])
    pads = padding(a, x.shape[2:], ksizes, strides, dilations)
    if any(p != (0, 0) for p in pads):
        x = np.pad(x, [(0, 0), (0, 0), *pads])
    out_sp = [(size - d * (k - 1) - 1) // s + 1
              for size, k, s, d in zip(x.shape[2:], ksizes, strides, dilations, strict=True)]
    c_out, c_in_g = w.shape[0], w.shape[1]
    if groups == 1 and all(k == 1 for k in ksizes) and all(s == 1 for s in strides):
        out = np.matmul(w.reshape(c_out, c_in_g), x.reshape(x.shape[0], x.shape[1], -1))
        out = out.reshape((x.shape[0], c_out, *out_sp))
    elif c_in_g == 1 and groups == x.shape[1] == c_out:
        out = _depthwise(x, w, out_sp, strides, dilations)
    else:
        out = _im2col(x, w, groups, out_sp, strides, dilations)
    bias = a.get("bias")
    if bias is not None:
        out += f32(bias).reshape((1, -1) + (1,) * n_sp)
    return out


def _depthwise(x: np.ndarray, w: np.ndarray, out_sp: list[int], strides: list[int],
               dilations: list[int]) -> np.ndarray:
    out = np.zeros((x.shape[0], x.shape[1], *out_sp), dtype=np.result_type(x, w))
    taps = w.reshape(w.shape[0], -1)
    scratch = np.empty_like(out)
    for index, tap in enumerate(itertools.product(*(range(k) for k in w.shape[2:]))):
        window = tuple(slice(t * d, t * d + s * (o - 1) + 1, s)
                       for t, d, s, o in zip(tap, dilations, strides, out_sp, strict=True))
        weight = taps[:, index].reshape((1, -1) + (1,) * len(out_sp))
        np.multiply(x[(slice(None), slice(None), *window)], weight, out=scratch)
        out += scratch
    return out


def _im2col(x: np.ndarray, w: np.ndarray, groups: int, out_sp: list[int], strides: list[int],
            dilations: list[int]) -> np.ndarray:
    """Columns [Cin/g * taps, N * out] gathered tap by tap (strided slices, contiguous), then one matmul per group
    with the weight as [Cout/g, Cin/g * taps]: the output comes out contiguous in NC(spatial) order."""
    batch, c_in = x.shape[0], x.shape[1]
    taps = list(itertools.product(*(range(k) for k in w.shape[2:])))
    n_out = int(np.prod(out_sp))
    cols = np.empty((c_in, len(taps), batch, n_out), dtype=x.dtype)
    for index, tap in enumerate(taps):
        window = tuple(slice(t * d, t * d + s * (o - 1) + 1, s)
                       for t, d, s, o in zip(tap, dilations, strides, out_sp, strict=True))
        cols[:, index] = np.moveaxis(x[(slice(None), slice(None), *window)], 0, 1).reshape(c_in, batch, n_out)
    c_in_g, c_out_g = w.shape[1], w.shape[0] // groups
    out = np.empty((w.shape[0], batch * n_out), dtype=np.result_type(x, w))
    for g in range(groups):
        w_g = w[g * c_out_g:(g + 1) * c_out_g].reshape(c_out_g, c_in_g * len(taps))
        cols_g = cols[g * c_in_g:(g + 1) * c_in_g].reshape(c_in_g * len(taps), batch * n_out)
        np.matmul(w_g, cols_g, out=out[g * c_out_g:(g + 1) * c_out_g])
    out = out.reshape(w.shape[0], batch, *out_sp)
    return np.ascontiguousarray(np.moveaxis(out, 1, 0)) if batch > 1 else out.reshape(1, w.shape[0], *out_sp)
