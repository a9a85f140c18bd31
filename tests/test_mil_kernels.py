"""The interpreter's native kernels against PyTorch's and coremltools' own arithmetic on small random cases:
convolutions of every path (pointwise, depthwise, grouped, strided, dilated, padded), LSTM (MIL gate order), norms,
and the ops coremltools folds wrongly or not at all (reduce_sum keepdims, range_1d above its folding cap)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rnnt_tui.core.mil.kernels_base import KERNELS, OpMeta


def _run(op_type: str, args: dict[str, Any]) -> Any:
    import rnnt_tui.core.mil.plan  # noqa: F401 - registers every kernel module

    kern = KERNELS[op_type]
    meta = OpMeta(type=op_type, name=f"{op_type}_test", out_dtypes=(), out_ranks=())
    if kern.prepare is not None:
        args = kern.prepare(args, meta)
    return kern.fn(args, meta)


CONV_CASES = [  # (x shape, weight shape, groups, strides, dilations, pad_type, pad)
    ((1, 8, 20), (16, 8, 1), 1, (1,), (1,), "valid", None),
    ((1, 8, 20), (8, 1, 9), 8, (1,), (1,), "custom", (4, 4)),
    ((2, 6, 30), (4, 3, 5), 2, (2,), (2,), "same", None),
    ((1, 1, 400), (10, 1, 64), 1, (16,), (1,), "valid", None),
    ((1, 1, 17, 12), (6, 1, 3, 3), 1, (2, 2), (1, 1), "custom", (1, 1, 1, 1)),
    ((1, 6, 17, 12), (6, 1, 3, 3), 6, (2, 2), (1, 1), "custom", (1, 1, 1, 1)),
    ((1, 6, 9, 8), (5, 6, 1, 1), 1, (1, 1), (1, 1), "valid", None),
    ((1, 4, 9, 8), (4, 4, 2, 3), 1, (1, 2), (2, 1), "same_lower", None),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_matches_torch(case: tuple[Any, ...]) -> None:
    import torch

    x_shape, w_shape, groups, strides, dilations, pad_type, pad = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    args = {"x": x, "weight": w, "bias": b, "groups": np.int32(groups), "strides": np.array(strides),
            "dilations": np.array(dilations), "pad_type": pad_type}
    if pad is not None:
        args["pad"] = np.array(pad)
    got = _run("conv", args)
    from rnnt_tui.core.mil.kernels_conv import padding

    pads = padding(args, x_shape[2:], w_shape[2:], strides, dilations)
    flat = [p for pair in reversed(pads) for p in pair]
    tx = torch.nn.functional.pad(torch.from_numpy(x), flat)
    conv = torch.nn.functional.conv1d if len(x_shape) == 3 else torch.nn.functional.conv2d
    want = conv(tx, torch.from_numpy(w), torch.from_numpy(b), stride=strides, dilation=dilations, groups=groups)
    assert got.shape == tuple(want.shape)
    np.testing.assert_allclose(got, want.numpy(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("layers_direction", ["forward", "reverse"])
def test_lstm_gate_order_matches_torch(layers_direction: str) -> None:
    """MIL's weights are torch's with the gates reordered (i, f, g, o) -> (i, f, o, z=g)."""
    import torch

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(5, 7)
    params: dict[str, Any] = dict(lstm.named_parameters())
    x = torch.randn(4, 1, 5)
    h0, c0 = torch.randn(1, 1, 7), torch.randn(1, 1, 7)

    def mil(t: Any) -> np.ndarray:
        i, f, g, o = t.detach().numpy().reshape(4, 7, -1) if t.ndim == 2 else t.detach().numpy().reshape(4, 7)
        return np.concatenate([i, f, o, g])

    bias = mil(params["bias_ih_l0"] + params["bias_hh_l0"])
    xs = x.flip(0) if layers_direction == "reverse" else x
    with torch.no_grad():
        seq, (h, c) = lstm(xs, (h0, c0))
    if layers_direction == "reverse":
        seq = seq.flip(0)
    got_seq, got_h, got_c = _run("lstm", {
        "x": x.numpy(), "initial_h": h0[0].numpy(), "initial_c": c0[0].numpy(),
        "weight_ih": mil(params["weight_ih_l0"]),
        "weight_hh": mil(params["weight_hh_l0"]), "bias": bias, "direction": layers_direction,
        "output_sequence": np.bool_(True)})
    np.testing.assert_allclose(got_seq, seq.numpy(), atol=1e-5)
    np.testing.assert_allclose(got_h, h[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(got_c, c[0].numpy(), atol=1e-5)


def test_layer_norm_softmax_silu_match_torch() -> None:
    import torch

    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 16)).astype(np.float32) * 3
    gamma, beta = rng.standard_normal(16).astype(np.float32), rng.standard_normal(16).astype(np.float32)
    ln = _run("layer_norm", {"x": x, "axes": np.array([-1]), "gamma": gamma, "beta": beta, "epsilon": np.float32(1e-5)})
    tx = torch.from_numpy(x)
    want = torch.nn.functional.layer_norm(tx, (16,), torch.from_numpy(gamma), torch.from_numpy(beta), 1e-5)
    np.testing.assert_allclose(ln, want.numpy(), atol=1e-5)
    np.testing.assert_allclose(_run("softmax", {"x": x, "axis": np.int32(-1)}), torch.softmax(tx, -1).numpy(),
                               atol=1e-6)
    np.testing.assert_allclose(_run("silu", {"x": x}), torch.nn.functional.silu(tx).numpy(), atol=1e-6)
    np.testing.assert_allclose(_run("gelu", {"x": x, "mode": "EXACT"}), torch.nn.functional.gelu(tx).numpy(),
                               atol=1e-6)


def test_ops_coremltools_folds_wrongly_or_not_at_all() -> None:
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    got = _run("reduce_sum", {"x": x, "axes": np.array([1]), "keep_dims": np.bool_(True)})
    np.testing.assert_array_equal(got, x.sum(axis=1, keepdims=True))
    big = _run("range_1d", {"start": np.int32(0), "end": np.int32(300_000), "step": np.int32(1)})
    assert big.shape == (300_000,) and big[-1] == 299_999
    sliced = _run("slice_by_index", {"x": x, "begin": np.array([0, 1, -1]), "end": np.array([2, 3, 0]),
                                     "squeeze_mask": np.array([False, False, True])})
    np.testing.assert_array_equal(sliced, x[:, 1:3, -1])
    with pytest.raises(IndexError):
        _run("gather", {"x": x, "indices": np.array([5]), "axis": np.int32(1)})


def test_scaled_dot_product_attention_matches_torch() -> None:
    import torch

    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal((1, 2, n, 8)).astype(np.float32) for n in (5, 7, 7))
    keep = rng.random((5, 7)) > 0.3
    keep[:, 0] = True
    got = _run("scaled_dot_product_attention", {"query": q, "key": k, "value": v, "attn_mask": keep})
    tq, tk, tv = (torch.from_numpy(t) for t in (q, k, v))
    want = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=torch.from_numpy(keep))
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5)
