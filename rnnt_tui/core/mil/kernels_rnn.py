"""MIL recurrent ops as numpy kernels: `lstm` (gate order i, f, o, z — not torch's i, f, g, o) and `rnn`.

coremltools has no value inference for them. `gru` is left out on purpose: its documented weight order
([r | o | z]) and the iOS18 `reset_after` variant are not verified here, and an unverified kernel could give a
wrong number. Shapes follow the op definitions: x [S, B, I], states [B, D*H],
outputs (sequence [S or 1, B, D*H], last h [B, D*H], last c [B, D*H]); D = 2 for "bidirectional".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rnnt_tui.core.mil.kernels_base import Args, OpMeta, as_bool, as_str, f32, kernel

Activation = Callable[[np.ndarray], np.ndarray]


def _act(name: str) -> Activation:
    acts: dict[str, Activation] = {
        "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
        "tanh": np.tanh,
        "relu": lambda v: np.maximum(v, 0),
        "linear": lambda v: v,
        "hard_sigmoid": lambda v: np.clip(0.2 * v + 0.5, 0, 1),
    }
    try:
        return acts[name.lower()]
    except KeyError:
        raise NotImplementedError(f"activation {name!r}") from None


def _lstm_direction(x: np.ndarray, h: np.ndarray, c: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray,
                    bias: np.ndarray | None, peep: np.ndarray | None, reverse: bool, acts: tuple[Activation, ...],
                    clip: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rec, cell, out_act = acts
    hidden = w_hh.shape[1]
    steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    pre = x @ w_ih.T  # all steps' input projections at once: [S, B, 4H]
    if bias is not None:
        pre += bias
    w_hh_t = np.ascontiguousarray(w_hh.T)
    seq = np.empty((x.shape[0], x.shape[1], hidden), dtype=np.float32)
    for t in steps:
        gates = pre[t] + h @ w_hh_t
        gi, gf, go, gz = (gates[:, k * hidden:(k + 1) * hidden] for k in range(4))
        if peep is not None:
            gi = gi + peep[:hidden] * c
            gf = gf + peep[hidden:2 * hidden] * c
        i, f, z = rec(gi), rec(gf), cell(gz)
        if clip is not None:
            z = np.clip(z, -clip, clip)
        c = f * c + i * z
        if peep is not None:
            go = go + peep[2 * hidden:] * c
        h = rec(go) * out_act(c)
        seq[t] = h
    return seq, h, c


@kernel("lstm")
def _lstm(a: Args, m: OpMeta) -> Any:
    x = f32(a["x"])
    h0, c0 = f32(a["initial_h"]), f32(a["initial_c"])
    direction = as_str(a.get("direction"), "forward")
    acts = (_act(as_str(a.get("recurrent_activation"), "sigmoid")), _act(as_str(a.get("cell_activation"), "tanh")),
            _act(as_str(a.get("activation"), "tanh")))
    clip = None if a.get("clip") is None else float(np.asarray(a["clip"]).item())

    def opt(key: str) -> np.ndarray | None:
        return None if a.get(key) is None else f32(a[key])

    hidden = f32(a["weight_hh"]).shape[1]
    forward = _lstm_direction(x, h0[:, :hidden], c0[:, :hidden], f32(a["weight_ih"]), f32(a["weight_hh"]),
                              opt("bias"), opt("peephole"), direction == "reverse", acts, clip)
    if direction == "bidirectional":
        backward = _lstm_direction(x, h0[:, hidden:], c0[:, hidden:], f32(a["weight_ih_back"]),
                                   f32(a["weight_hh_back"]), opt("bias_back"), opt("peephole_back"), True, acts, clip)
        seq = np.concatenate([forward[0], backward[0]], axis=-1)
        h = np.concatenate([forward[1], backward[1]], axis=-1)
        c = np.concatenate([forward[2], backward[2]], axis=-1)
        last = np.concatenate([forward[0][-1:], backward[0][:1]], axis=-1)
    else:
        seq, h, c = forward
        last = h[None]
    return (seq if as_bool(a.get("output_sequence")) else last), h, c


@kernel("rnn")
def _rnn(a: Args, m: OpMeta) -> Any:
    x, h = f32(a["x"]), f32(a["initial_h"])
    act = _act(as_str(a.get("activation"), "tanh"))
    w_ih, w_hh = f32(a["weight_ih"]), f32(a["weight_hh"])
    bias = f32(a["bias"]) if a.get("bias") is not None else 0.0
    reverse = as_str(a.get("direction"), "forward") == "reverse"
    seq = np.empty((x.shape[0], x.shape[1], w_hh.shape[1]), dtype=np.float32)
    for t in (range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])):
        h = act(x[t] @ w_ih.T + h @ w_hh.T + bias)
        seq[t] = h
    return (seq if as_bool(a.get("output_sequence")) else h[None]), h
