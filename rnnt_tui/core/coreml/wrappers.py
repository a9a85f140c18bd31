"""Plain torch modules that put each NeMo component behind a fixed, traceable I/O contract.

Core ML packages are converted from these (via `torch.jit.trace`), so their contracts are the packages' contracts.
Everything is batch 1; lengths and token ids cross as int32 (Core ML ML programs have no int64 I/O):

| wrapper             | inputs                                          | outputs                                   |
|---------------------|-------------------------------------------------|-------------------------------------------|
| PreprocessorWrapper | audio_signal [1,S] f32, length [1] i32          | features [1,F,Tf] f32, features_length i32 |
| EncoderWrapper      | features [1,F,Tf] f32, features_length [1] i32  | encoded [1,D,T] f32, encoded_length i32   |
| DecoderStepWrapper  | targets [1,1] i32, h [L,1,H] f32, c [L,1,H] f32 | decoder_output [1,H,1], h_out, c_out f32  |
| JointWrapper        | encoded [1,D,T] f32, decoder_output [1,H,U] f32 | logits [1,T,U,C] f32 (raw, no log-softmax) |

Why wrappers and not NeMo's modules as they are: NeMo's `forward`s are wrapped in type checks, the decoder's
`forward` prepends a start token unless an export flag is set, and the joint's output depends on its fuse mode and
`log_softmax` flag (log-probabilities on CPU by default). The wrappers call the same submodules NeMo's own
inference calls (`get_features`, `encoder.forward_for_export`, `decoder.predict(add_sos=False)`, the joint's
projections and `joint_net`) and change no flag on the user's model: the joint's log-softmax is left out by
computing `joint_after_projection`'s arithmetic here rather than flipping `joint.log_softmax`. Modules must be in
eval mode when traced (dropout and BatchNorm are baked into the trace); `LoadedModel.eval()` is the caller's job.
"""

from __future__ import annotations

from typing import Any

import torch

PREPROCESSOR_IO = (("audio_signal", "length"), ("features", "features_length"))
ENCODER_IO = (("features", "features_length"), ("encoded", "encoded_length"))
DECODER_IO = (("targets", "h", "c"), ("decoder_output", "h_out", "c_out"))
JOINT_IO = (("encoded", "decoder_output"), ("logits",))


class PreprocessorWrapper(torch.nn.Module):
    """audio_signal [1,S] f32, length [1] i32 → features [1,F,Tf] f32, features_length [1] i32.

    Calls the preprocessor's `get_features` (what its `forward` calls, minus the type check and the no-grad
    decorator); dither only applies in training mode, so an eval-mode trace is deterministic.
    """

    def __init__(self, preprocessor: Any) -> None:
        super().__init__()
        self.preprocessor = preprocessor

    def forward(self, audio_signal: torch.Tensor, length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features, features_length = self.preprocessor.get_features(audio_signal.to(torch.float32),
                                                                   length.to(torch.int64))
        return features.to(torch.float32), features_length.to(torch.int32)


class EncoderWrapper(torch.nn.Module):
    """features [1,F,Tf] f32, features_length [1] i32 → encoded [1,D,T] f32, encoded_length [1] i32.

    Uses `encoder.forward_for_export` (NeMo's export path: no type checks, no positional-table growth) when the
    encoder has it, else `forward`. The positional table must already cover the longest input (see `convert`).
    """

    def __init__(self, encoder: Any) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, features: torch.Tensor, features_length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        length = features_length.to(torch.int64)
        if hasattr(self.encoder, "forward_for_export"):
            out = self.encoder.forward_for_export(audio_signal=features, length=length)
        else:
            out = self.encoder(audio_signal=features, length=length)
        encoded, encoded_length = out[0], out[1]
        return encoded, encoded_length.to(torch.int32)


class DecoderStepWrapper(torch.nn.Module):
    """One prediction-net step: targets [1,1] i32, h, c [L,1,H] f32 → decoder_output [1,H,1], h_out, c_out.

    No start token is prepended: the caller feeds blank (id = vocabulary size) as the first token. With
    `blank_as_pad` (NeMo's default) the blank's embedding row is the zero vector, which is exactly what
    `decoder.predict(None, ...)` feeds; without it, blank is masked to zeros here the same way.
    """

    def __init__(self, decoder: Any) -> None:
        super().__init__()
        self.decoder = decoder
        self.blank_id = int(decoder.blank_idx)
        self.blank_as_pad = bool(getattr(decoder, "blank_as_pad", True))

    def forward(self, targets: torch.Tensor, h: torch.Tensor,
                c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tokens = targets.to(torch.int64)
        if self.blank_as_pad:
            g, state = self.decoder.predict(tokens, state=[h, c], add_sos=False, batch_size=1)
        else:
            is_blank = tokens == self.blank_id
            embedded = self.decoder.prediction["embed"](torch.where(is_blank, torch.zeros_like(tokens), tokens))
            embedded = torch.where(is_blank.unsqueeze(-1), torch.zeros_like(embedded), embedded)
            g, state = self.decoder.prediction["dec_rnn"](embedded.transpose(0, 1), [h, c])
            g = g.transpose(0, 1)
            if self.decoder.is_adapter_available():
                g = self.decoder.forward_enabled_adapters(g)
        return g.transpose(1, 2), state[0], state[1]


class JointWrapper(torch.nn.Module):
    """encoded [1,D,T] f32, decoder_output [1,H,U] f32 → logits [1,T,U,C] f32, raw (no log-softmax).

    C = vocabulary + blank (+ TDT durations). Replicates `RNNTJoint.joint` in eval mode with `log_softmax=False`
    (project both sides, broadcast-add, adapters, `joint_net`) so the user's joint keeps its own flags.
    """

    def __init__(self, joint: Any) -> None:
        super().__init__()
        self.joint = joint

    def forward(self, encoded: torch.Tensor, decoder_output: torch.Tensor) -> torch.Tensor:
        f = self.joint.project_encoder(encoded.transpose(1, 2)).unsqueeze(2)  # [1,T,1,Hj]
        g = self.joint.project_prednet(decoder_output.transpose(1, 2)).unsqueeze(1)  # [1,1,U,Hj]
        inp = f + g
        if self.joint.is_adapter_available():
            inp = self.joint.forward_enabled_adapters(inp)
        logits: torch.Tensor = self.joint.joint_net(inp)
        return logits


def state_shape(decoder: Any) -> tuple[int, int, int]:
    """[layers, 1, hidden] of the prediction net's h and c."""
    return int(decoder.pred_rnn_layers), 1, int(decoder.pred_hidden)


def wrap(model: Any, component: str) -> torch.nn.Module:
    """The wrapper for `component` of a restored NeMo transducer (shares its weights; changes no flag)."""
    if component == "preprocessor":
        return PreprocessorWrapper(model.preprocessor)
    if component == "encoder":
        return EncoderWrapper(model.encoder)
    if component == "decoder":
        return DecoderStepWrapper(model.decoder)
    if component == "joint":
        return JointWrapper(model.joint)
    raise ValueError(f"unknown component {component!r}")
