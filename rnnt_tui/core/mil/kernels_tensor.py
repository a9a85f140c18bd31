"""Shape and indexing MIL ops as numpy kernels: reshape, transpose, slices, gather, concat/stack/split, pad, tile,
range_1d, fill, shape, topk/argsort, one_hot, cumsum, band_part.

Semantics follow coremltools' definitions (`mil/ops/defs/iOS15..iOS18/tensor_*.py`, `scatter_gather.py`).
`range_1d` here has no size cap (coremltools' own value inference returns None above 262,144 elements).
Out-of-range gather indices raise rather than wrap or clamp: a wrong number is worse than an error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnt_tui.core.mil.kernels_base import Args, OpMeta, as_bool, as_str, axes_tuple, f32, kernel

_INT_MAX = np.iinfo(np.int32).max


def _ints(value: Any) -> list[int]:
    return [int(v) for v in np.asarray(value).ravel()]


@kernel("reshape")
def _reshape(a: Args, m: OpMeta) -> Any:
    x = np.asarray(a["x"])
    shape = _ints(a["shape"])
    if 0 in shape:  # iOS17 rule: a 0 copies x's dimension counted from the right (1 when out of range)
        rank = x.ndim
        shape = [(x.shape[rank - (len(shape) - i)] if rank - (len(shape) - i) >= 0 else 1) if s == 0 else s
                 for i, s in enumerate(shape)]
    return x.reshape(shape)


@kernel("reshape_like")
def _reshape_like(a: Args, m: OpMeta) -> Any:
    refs = a["ref_tensors"]
    begins, ends, masks = _ints(a["begins"]), _ints(a["ends"]), [bool(v) for v in np.asarray(a["end_masks"]).ravel()]
    shape: list[int] = []
    for ref, b, e, mask in zip(refs, begins, ends, masks, strict=True):
        dims = np.asarray(ref).shape
        shape += list(dims[b:] if mask else dims[b:e])
    return np.asarray(a["x"]).reshape(shape)


@kernel("transpose")
def _transpose(a: Args, m: OpMeta) -> Any:
    return np.transpose(a["x"], _ints(a["perm"]))


@kernel("expand_dims")
def _expand_dims(a: Args, m: OpMeta) -> Any:
    x = np.asarray(a["x"])
    axes = _ints(a["axes"])
    rank = x.ndim + len(axes)
    return x.reshape(_expanded_shape(x.shape, sorted(ax % rank for ax in axes)))


def _expanded_shape(shape: tuple[int, ...], axes: list[int]) -> list[int]:
    out = list(shape)
    for ax in axes:
        out.insert(ax, 1)
    return out


@kernel("squeeze")
def _squeeze(a: Args, m: OpMeta) -> Any:
    x = np.asarray(a["x"])
    axes = a.get("axes")
    if axes is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=axes_tuple(axes, x.ndim))


def _slices(shape: tuple[int, ...], a: Args) -> tuple[tuple[slice, ...], tuple[int, ...]]:
    rank = len(shape)
    begin, end = _ints(a["begin"]), _ints(a["end"])
    stride = _ints(a["stride"]) if a.get("stride") is not None else [1] * rank
    flags = {k: ([bool(v) for v in np.asarray(a[k]).ravel()] if a.get(k) is not None else [False] * rank)
             for k in ("begin_mask", "end_mask", "squeeze_mask")}
    slices, squeeze = [], []
    for i in range(rank):
        b: int | None = None if flags["begin_mask"][i] else begin[i]
        e: int | None = None if flags["end_mask"][i] else end[i]
        s = stride[i]
        if flags["squeeze_mask"][i]:
            e, s = None, _INT_MAX
            squeeze.append(i)
        slices.append(slice(b, e, s))
    return tuple(slices), tuple(squeeze)


@kernel("slice_by_index")
def _slice_by_index(a: Args, m: OpMeta) -> Any:
    x = np.asarray(a["x"])
    slices, squeeze = _slices(x.shape, a)
    out = x[slices]
    return np.squeeze(out, axis=squeeze) if squeeze else out


@kernel("slice_by_size")
def _slice_by_size(a: Args, m: OpMeta) -> Any:
    x = np.asarray(a["x"])
    begin, size = _ints(a["begin"]), _ints(a["size"])
    return x[tuple(slice(b, None if s == -1 else b + s) for b, s in zip(begin, size, strict=True))]


@kernel("gather")
def _gather(a: Args, m: OpMeta) -> Any:
    x = np.asarray(a["x"])
    idx = np.asarray(a["indices"])
    axis = int(np.asarray(a.get("axis", 0))) % max(x.ndim, 1)
    batch = int(np.asarray(a.get("batch_dims", 0)))
    if batch == 0:
        return np.take(x, idx.astype(np.intp, copy=False), axis=axis)
    lead = x.shape[:batch]
    xs = x.reshape((-1, *x.shape[batch:]))
    ids = idx.reshape((-1, *idx.shape[batch:]))
    out = np.stack([np.take(p, i.astype(np.intp), axis=axis - batch) for p, i in zip(xs, ids, strict=True)])
    return out.reshape(lead + out.shape[1:])


@kernel("gather_along_axis")
def _gather_along_axis(a: Args, m: OpMeta) -> Any:
    x = np.asarray(a["x"])
    axis = int(np.asarray(a.get("axis", 0))) % x.ndim
    idx = np.asarray(a["indices"]).astype(np.intp)
    idx = np.where(idx < 0, idx + x.shape[axis], idx)
    return np.take_along_axis(x, idx, axis=axis)


@kernel("gather_nd")
def _gather_nd(a: Args, m: OpMeta) -> Any:
    x = np.asarray(a["x"])
    idx = np.asarray(a["indices"]).astype(np.intp)
    batch = int(np.asarray(a.get("batch_dims", 0)))
    if batch:
        raise NotImplementedError("gather_nd with batch_dims > 0")
    return x[tuple(np.moveaxis(idx, -1, 0))]


@kernel("concat")
def _concat(a: Args, m: OpMeta) -> Any:
    values = [np.asarray(v) for v in a["values"]]
    axis = int(np.asarray(a["axis"]))
    if as_bool(a.get("interleave")):
        ax = axis % values[0].ndim
        stacked = np.stack(values, axis=ax + 1)
        shape = list(values[0].shape)
        shape[ax] *= len(values)
        return stacked.reshape(shape)
    if values[0].ndim == 0:  # scalars (shape pieces) concatenate as a stack, as coremltools folds them
        return np.stack(values, axis=axis)
    return np.concatenate(values, axis=axis)


@kernel("stack")
def _stack(a: Args, m: OpMeta) -> Any:
    return np.stack([f32(v) for v in a["values"]], axis=int(np.asarray(a["axis"])))


@kernel("split")
def _split(a: Args, m: OpMeta) -> Any:
    x = np.asarray(a["x"])
    axis = int(np.asarray(a["axis"])) % x.ndim
    sizes = a.get("split_sizes")
    if sizes is not None:
        bounds = np.cumsum(_ints(sizes))[:-1]
        return tuple(np.split(x, bounds, axis=axis))
    return tuple(np.split(x, int(np.asarray(a["num_splits"])), axis=axis))


@kernel("tile")
def _tile(a: Args, m: OpMeta) -> Any:
    return np.tile(a["x"], _ints(a["reps"]))


@kernel("pad")
def _pad(a: Args, m: OpMeta) -> Any:
    x = f32(a["x"])
    pad = _ints(a["pad"])
    n = len(pad) // 2
    widths = [(0, 0)] * (x.ndim - n) + [(pad[2 * i], pad[2 * i + 1]) for i in range(n)]
    mode = as_str(a.get("mode"), "constant")
    if mode == "constant":
        value = a.get("constant_val")
        return np.pad(x, widths, mode="constant", constant_values=0 if value is None else f32(value))
    if mode == "reflect":
        return np.pad(x, widths, mode="reflect")
    if mode == "replicate":
        return np.pad(x, widths, mode="edge")
    raise NotImplementedError(f"pad mode {mode!r}")


@kernel("range_1d")
def _range_1d(a: Args, m: OpMeta) -> Any:
    start, end, step = (np.asarray(a[k]) for k in ("start", "end", "step"))
    return np.arange(start.item(), end.item(), step.item())


@kernel("fill")
def _fill(a: Args, m: OpMeta) -> Any:
    value = np.asarray(a.get("value", 0.0))
    return np.full(_ints(a["shape"]), value, dtype=f32(value).dtype)


@kernel("fill_like")
def _fill_like(a: Args, m: OpMeta) -> Any:
    value = np.asarray(a.get("value", 0.0))
    return np.full(np.asarray(a["ref_tensor"]).shape, value, dtype=f32(value).dtype)


@kernel("shape")
def _shape(a: Args, m: OpMeta) -> Any:
    return np.asarray(np.shape(a["x"]), dtype=np.int32)


@kernel("flatten2d")
def _flatten2d(a: Args, m: OpMeta) -> Any:
    x = np.asarray(a["x"])
    axis = int(np.asarray(a.get("axis", 1))) % (x.ndim + 1) if x.ndim else 0
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


@kernel("reverse")
def _reverse(a: Args, m: OpMeta) -> Any:
    x = np.asarray(a["x"])
    axes = a.get("axes")
    return np.flip(x, axis=axes_tuple(axes, x.ndim) if axes is not None else None)


@kernel("topk")
def _topk(a: Args, m: OpMeta) -> Any:
    x = f32(a["x"])
    axis = int(np.asarray(a.get("axis", -1))) % x.ndim
    k = int(np.asarray(a.get("k", 1)))
    ascending = as_bool(a.get("ascending"))
    order = np.argsort(x if ascending else -x, axis=axis, kind="stable")
    if k >= 0:
        order = np.take(order, np.arange(min(k, x.shape[axis])), axis=axis)
    values = np.take_along_axis(x, order, axis=axis)
    if a.get("return_indices") is not None and not as_bool(a.get("return_indices")):
        return values
    return values, order.astype(np.int32)


@kernel("argsort")
def _argsort(a: Args, m: OpMeta) -> Any:
    x = f32(a["x"])
    axis = int(np.asarray(a.get("axis", -1)))
    return np.argsort(x if as_bool(a.get("ascending")) else -x, axis=axis, kind="stable").astype(np.int32)


@kernel("one_hot")
def _one_hot(a: Args, m: OpMeta) -> Any:
    idx = np.asarray(a["indices"]).astype(np.intp)
    depth = int(np.asarray(a["one_hot_vector_size"]))
    axis = int(np.asarray(a.get("axis", -1)))
    on, off = f32(a.get("on_value", 1.0)), f32(a.get("off_value", 0.0))
    hot = np.arange(depth) == idx[..., None]
    out = np.where(hot, on, off)
    return np.moveaxis(out, -1, axis % out.ndim)


@kernel("cumsum")
def _cumsum(a: Args, m: OpMeta) -> Any:
    x = f32(a["x"])
    axis = int(np.asarray(a.get("axis", 0)))
    if as_bool(a.get("reverse")):
        x = np.flip(x, axis=axis)
    out = np.cumsum(x, axis=axis)
    if as_bool(a.get("exclusive")):
        out = out - x
    return np.flip(out, axis=axis) if as_bool(a.get("reverse")) else out


@kernel("band_part")
def _band_part(a: Args, m: OpMeta) -> Any:
    x = f32(a["x"])
    lower, upper = int(np.asarray(a.get("lower", -1))), int(np.asarray(a.get("upper", -1)))
    rows, cols = np.arange(x.shape[-2])[:, None], np.arange(x.shape[-1])[None, :]
    keep = np.ones((x.shape[-2], x.shape[-1]), dtype=bool)
    if lower >= 0:
        keep &= rows - cols <= lower
    if upper >= 0:
        keep &= cols - rows <= upper
    return np.where(keep, x, 0)


@kernel("non_zero")
def _non_zero(a: Args, m: OpMeta) -> Any:
    return np.transpose(np.nonzero(a["x"])).astype(np.int32)
