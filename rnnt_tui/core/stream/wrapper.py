"""The traceable streaming encoder step Core ML programs are converted from (one per first/next chunk phase).

features [1,F,T] f32, length [1] i32, cache_last_channel [L,1,C,D], cache_last_time [L,1,D,K-1] f32,
cache_last_channel_len [1] i32 -> encoded [1,D,T'] f32, encoded_length [1] i32 and the three next caches.
It calls NeMo's own `encoder.cache_aware_stream_step` (type checks off, as NeMo's export does), with the phase's
`drop_extra_pre_encoded` fixed at construction. The encoder must be in eval mode and at the wanted context.
"""

from __future__ import annotations

from typing import Any

import torch


class StreamStepWrapper(torch.nn.Module):
    INPUTS = ("features", "length", "cache_last_channel", "cache_last_time", "cache_last_channel_len")
    OUTPUTS = ("encoded", "encoded_length", "cache_last_channel_next", "cache_last_time_next",
               "cache_last_channel_len_next")

    def __init__(self, encoder: Any, drop_extra_pre_encoded: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.drop = int(drop_extra_pre_encoded)

    def forward(self, features: torch.Tensor, length: torch.Tensor, cache_last_channel: torch.Tensor,
                cache_last_time: torch.Tensor, cache_last_channel_len: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from nemo.core.classes.common import typecheck

        with typecheck.disable_checks():
            out = self.encoder.cache_aware_stream_step(
                processed_signal=features, processed_signal_length=length.to(torch.int64),
                cache_last_channel=cache_last_channel, cache_last_time=cache_last_time,
                cache_last_channel_len=cache_last_channel_len.to(torch.int64), keep_all_outputs=False,
                drop_extra_pre_encoded=self.drop)
        return out[0], out[1].to(torch.int32), out[2], out[3], out[4].to(torch.int32)


class StatefulStreamStepWrapper(torch.nn.Module):
    """The step with cache_last_channel and cache_last_time held in registered buffers that are updated in place:
    what coremltools converts to Core ML states (`ct.StateType` named as the buffers, iOS18 / macOS 15 programs:
    `read_state` / `coreml_update_state`). cache_last_channel_len stays an input and an output."""

    INPUTS = ("features", "length", "cache_last_channel_len")
    OUTPUTS = ("encoded", "encoded_length", "cache_last_channel_len_next")
    STATES = ("cache_last_channel", "cache_last_time")
    cache_last_channel: torch.Tensor
    cache_last_time: torch.Tensor

    def __init__(self, encoder: Any, drop_extra_pre_encoded: int, channel: torch.Tensor, time: torch.Tensor) -> None:
        super().__init__()
        self.step = StreamStepWrapper(encoder, drop_extra_pre_encoded)
        self.register_buffer("cache_last_channel", torch.zeros_like(channel))
        self.register_buffer("cache_last_time", torch.zeros_like(time))

    def forward(self, features: torch.Tensor, length: torch.Tensor,
                cache_last_channel_len: torch.Tensor) -> tuple[torch.Tensor, ...]:
        encoded, encoded_length, channel, time, channel_len = self.step(
            features, length, self.cache_last_channel, self.cache_last_time, cache_last_channel_len)
        self.cache_last_channel[:] = channel  # in-place writes: coremltools turns them into coreml_update_state
        self.cache_last_time[:] = time
        return encoded, encoded_length, channel_len
