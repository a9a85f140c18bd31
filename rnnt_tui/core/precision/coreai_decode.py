"""The decode check of `rnnt-tui precision --against coreai`: greedy tokens through the Core AI fp16 assets the
runtime ships (`convert_components(..., "fp16")`, cached; the fp16 encoder's output when the encoder is analysed,
NeMo's encoder output otherwise) against greedy tokens through NeMo's own fp32 decoder and joint, on NeMo's greedy
loop (`core.pipeline.greedy`); and the feeds both take (fp16 copies, time axes padded to the export's multiple).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from rnnt_tui.core.checkpoint import LoadedModel
from rnnt_tui.core.components import DECODER, ENCODER, JOINT
from rnnt_tui.core.precision.runs import Feeds


def padded_feeds(loaded: LoadedModel, component: str, feeds: Feeds) -> Feeds:
    """`feeds` with the component's time axis zero-padded to the multiple its Core AI export declares."""
    from rnnt_tui.core.coreai.convert import TIME_INPUT, time_multiple

    if component not in TIME_INPUT:
        return feeds
    name, axis = TIME_INPUT[component]
    multiple = time_multiple(loaded, component)
    value = feeds[name]
    size = max(-(-value.shape[axis] // multiple), 2) * multiple
    pad = [(0, 0)] * value.ndim
    pad[axis] = (0, size - value.shape[axis])
    return {**feeds, name: np.pad(value, pad)}


def halved(feeds: Feeds) -> Feeds:
    return {k: v.astype(np.float16) if v.dtype.kind == "f" else v.astype(np.int32) for k, v in feeds.items()}


class _Steps:
    """Greedy decoding's calls on decoder / joint callables taking and giving contract-named numpy arrays."""

    decodes_through_decision = False

    def __init__(self, decoder: Any, joint: Any, state: tuple[int, int, int], dtype: Any) -> None:
        self.decoder, self.joint, self.state, self.dtype = decoder, joint, state, dtype

    def decide_step(self, frame: np.ndarray, decoder_output: Any) -> tuple[int, int, float]:
        raise NotImplementedError("decoding goes through the joint's logits")

    def initial_state(self) -> Any:
        return np.zeros(self.state, self.dtype), np.zeros(self.state, self.dtype)

    def decoder_step(self, token: int, state: Any) -> tuple[Any, Any]:
        out = self.decoder({"targets": np.array([[token]], np.int32), "h": state[0], "c": state[1]})
        return out["decoder_output"], (out["h_out"], out["c_out"])

    def joint_step(self, frame: np.ndarray, decoder_output: Any) -> np.ndarray:
        out = self.joint({"encoded": np.asarray(frame, self.dtype), "decoder_output": decoder_output})
        return np.asarray(out["logits"], np.float32).reshape(-1)


def _torch_call(module: Any, names_in: tuple[str, ...], names_out: tuple[str, ...]) -> Any:
    import torch

    def call(feed: Feeds) -> Feeds:
        with torch.inference_mode():
            out = module(*(torch.from_numpy(np.ascontiguousarray(feed[n])) for n in names_in))
        return {n: o.numpy() for n, o in zip(names_out, out if isinstance(out, tuple) else (out,), strict=False)}

    return call


def decode_check(loaded: LoadedModel, feeds: dict[str, Feeds], with_encoder: bool,
                 cancel: threading.Event | None = None) -> tuple[Any, str]:
    """Greedy tokens through the fp16 assets vs through NeMo's fp32 modules; returns (DecodeCheck, what fed the
    decoder: the fp16 encoder asset or NeMo's encoder output)."""
    from rnnt_tui.core.coreai.convert import IO, convert_components
    from rnnt_tui.core.coreai.execute import Executor
    from rnnt_tui.core.coreml.wrappers import state_shape, wrap
    from rnnt_tui.core.nemo_decoding import max_symbols
    from rnnt_tui.core.pipeline.greedy import greedy_decode
    from rnnt_tui.core.precision.certify import DecodeCheck

    model = loaded.eval()
    blank, state, durations = int(model.decoder.blank_idx), state_shape(model.decoder), loaded.summary.durations
    wanted = (ENCODER, DECODER, JOINT) if with_encoder else (DECODER, JOINT)
    assets = {a.component: a.path for a in convert_components(loaded, "fp16", components=wanted, cancel=cancel)}
    encoded = feeds[JOINT]["encoded"]
    length = int(encoded.shape[2])
    reference = _Steps(_torch_call(wrap(model, DECODER), *IO[DECODER]), _torch_call(wrap(model, JOINT), *IO[JOINT]),
                       state, np.float32)
    ref_tokens = greedy_decode(reference, encoded, length, blank, durations=durations,
                               max_symbols=max_symbols(loaded), cancel=cancel).tokens
    executor = Executor()
    try:
        functions = {c: executor.function(executor.open(p)[0]) for c, p in assets.items()}

        def runner(component: str) -> Any:
            return lambda feed: executor.call(functions[component], halved(feed))

        source = "NeMo's encoder output"
        if with_encoder:
            enc_feeds = padded_feeds(loaded, ENCODER, feeds[ENCODER])
            out = runner(ENCODER)(enc_feeds)
            length = int(np.asarray(out["encoded_length"]).reshape(-1)[0])
            encoded = np.asarray(out["encoded"], np.float32)[:, :, :length]
            source = "the Core AI fp16 encoder"
        steps = _Steps(runner(DECODER), runner(JOINT), state, np.float16)
        tokens = greedy_decode(steps, encoded, length, blank, durations=durations,
                               max_symbols=max_symbols(loaded), cancel=cancel).tokens
    finally:
        executor.close()
    return DecodeCheck(list(ref_tokens), list(tokens)), source
