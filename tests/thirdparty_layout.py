"""Builds Core ML packages in the layout of the most used third-party Parakeet exporter, from a restored model.

Written here from that layout's description (tensor names, shapes, dtypes; see domain-facts.md), with this
project's own wrappers plus small decision heads, and converted with `ct.convert` the way that exporter calls it:
ML program, iOS17 target, no `compute_precision` (so coremltools computes in fp16) while the I/O is fp32, a fixed
window (a few seconds here instead of 15 s, to stay fast), and a `metadata.json` that says FLOAT32 regardless. Packages:

- `preprocessor`: audio_signal [1, 1..S] (default shape [1,1]), audio_length -> mel, mel_length
- `encoder`: mel [1,F,Tf] (fixed), mel_length -> encoder [1,D,T], encoder_length
- `mel_encoder`: audio_signal [1,S] (fixed), audio_length -> encoder, encoder_length
- `decoder`: targets [1,1], target_length, h_in, c_in -> decoder [1,H,1], h_out, c_out (no start token)
- `joint`: encoder [1,D,T] (fixed), decoder [1,H,1] -> logits [1,T,1,V+1+durations]
- `joint_decision`: the same inputs -> token_id, token_prob, duration [1,T,1]
- `joint_decision_single_step`: encoder_step [1,D,1], decoder_step [1,H,1] -> the same three [1,1,1] and
  top_k_ids / top_k_logits [1,1,1,K]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

WINDOW_SECONDS = 2.5
TOP_K = 8


class _Decoder(torch.nn.Module):
    """targets, target_length, h_in, c_in -> decoder [1,H,1], h_out, c_out (no start token)."""

    def __init__(self, step: torch.nn.Module) -> None:
        super().__init__()
        self.step = step

    def forward(self, targets: torch.Tensor, target_length: torch.Tensor, h_in: torch.Tensor,
                c_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        g, h, c = self.step(targets, h_in, c_in)
        return g * (target_length > 0).to(g.dtype), h, c  # target_length is 1: kept as an input, as exported


class _Decision(torch.nn.Module):
    """Joint logits -> token_id (argmax of the V+1 token logits), token_prob (their softmax at it), duration (argmax
    bin of the duration logits; 0 for RNNT) and optionally the top K token logits."""

    def __init__(self, joint: torch.nn.Module, n_durations: int, top_k: int = 0) -> None:
        super().__init__()
        self.joint, self.n_durations, self.top_k = joint, n_durations, top_k

    def forward(self, encoder: torch.Tensor, decoder: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits = self.joint(encoder, decoder)
        tokens = logits[..., : logits.shape[-1] - self.n_durations] if self.n_durations else logits
        token_id = tokens.argmax(dim=-1)
        token_prob = torch.gather(tokens.softmax(dim=-1), -1, token_id.unsqueeze(-1)).squeeze(-1)
        duration = logits[..., -self.n_durations:].argmax(dim=-1) if self.n_durations else torch.zeros_like(token_id)
        out = (token_id.to(torch.int32), token_prob, duration.to(torch.int32))
        if self.top_k:
            top_logits, top_ids = torch.topk(tokens, self.top_k, dim=-1)
            out = (*out, top_ids.to(torch.int32), top_logits)
        return out


class _MelEncoder(torch.nn.Module):
    def __init__(self, pre: torch.nn.Module, enc: torch.nn.Module) -> None:
        super().__init__()
        self.pre, self.enc = pre, enc

    def forward(self, audio_signal: torch.Tensor, audio_length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mel, mel_length = self.pre(audio_signal, audio_length)
        return self.enc(mel, mel_length)


def _convert(ct: Any, module: torch.nn.Module, example: tuple[torch.Tensor, ...], inputs: list[Any],
             outputs: list[str], path: Path, int_outputs: tuple[str, ...] = ()) -> None:
    with torch.no_grad():
        traced = torch.jit.trace(module.eval(), example, check_trace=False)
    model = ct.convert(traced, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17, inputs=inputs,
                       outputs=[ct.TensorType(name=n, dtype=np.int32 if n in int_outputs else np.float32)
                                for n in outputs])
    model.save(str(path))


def build(loaded: Any, folder: Path, window_seconds: float = WINDOW_SECONDS) -> Path:
    """Write the seven packages and `metadata.json` for `loaded` (a LoadedModel) into `folder`."""
    from rnnt_tui.core.coreml.convert import expected_frames, geometry
    from rnnt_tui.core.coreml.spec import load_coremltools
    from rnnt_tui.core.coreml.wrappers import DecoderStepWrapper, EncoderWrapper, JointWrapper, PreprocessorWrapper
    from rnnt_tui.core.quiet import quiet

    ct, _ = load_coremltools()
    folder.mkdir(parents=True, exist_ok=True)
    model = loaded.eval()
    g = geometry(loaded)
    durations = list(loaded.summary.durations or [])
    samples = int(window_seconds * g.sample_rate)
    mel_frames = expected_frames(loaded, "preprocessor", samples)
    frames = expected_frames(loaded, "encoder", mel_frames)
    f32, i32 = np.float32, np.int32
    pre, enc = PreprocessorWrapper(model.preprocessor), EncoderWrapper(model.encoder)
    joint = JointWrapper(model.joint)
    audio = (0.1 * torch.randn(1, samples), torch.tensor([samples], dtype=torch.int32))
    state = (g.layers, 1, g.pred_hidden)
    length = ct.TensorType(name="audio_length", shape=(1,), dtype=i32)
    pairs = {"joint": ("encoder", "decoder", frames), "joint_decision": ("encoder", "decoder", frames),
             "joint_decision_single_step": ("encoder_step", "decoder_step", 1)}
    decision_out = ["token_id", "token_prob", "duration"]
    ints = ("token_id", "duration", "top_k_ids", "mel_length", "encoder_length")
    with quiet():
        _convert(ct, pre, audio, [ct.TensorType(name="audio_signal", shape=(1, ct.RangeDim(1, samples, 1)),
                                                dtype=f32), length],
                 ["mel", "mel_length"], folder / "preprocessor.mlpackage", ints)
        _convert(ct, enc, (torch.randn(1, g.n_mels, mel_frames), torch.tensor([mel_frames], dtype=torch.int32)),
                 [ct.TensorType(name="mel", shape=(1, g.n_mels, mel_frames), dtype=f32),
                  ct.TensorType(name="mel_length", shape=(1,), dtype=i32)],
                 ["encoder", "encoder_length"], folder / "encoder.mlpackage", ints)
        _convert(ct, _MelEncoder(pre, enc), audio,
                 [ct.TensorType(name="audio_signal", shape=(1, samples), dtype=f32), length],
                 ["encoder", "encoder_length"], folder / "mel_encoder.mlpackage", ints)
        _convert(ct, _Decoder(DecoderStepWrapper(model.decoder)),
                 (torch.zeros(1, 1, dtype=torch.int32), torch.ones(1, dtype=torch.int32), torch.zeros(state),
                  torch.zeros(state)),
                 [ct.TensorType(name="targets", shape=(1, 1), dtype=i32),
                  ct.TensorType(name="target_length", shape=(1,), dtype=i32),
                  ct.TensorType(name="h_in", shape=state, dtype=f32),
                  ct.TensorType(name="c_in", shape=state, dtype=f32)],
                 ["decoder", "h_out", "c_out"], folder / "decoder.mlpackage")
        for name, (enc_name, dec_name, t) in pairs.items():
            module: torch.nn.Module = joint if name == "joint" else \
                _Decision(joint, len(durations), TOP_K if name.endswith("single_step") else 0)
            outputs = ["logits"] if name == "joint" else \
                decision_out + (["top_k_ids", "top_k_logits"] if name.endswith("single_step") else [])
            _convert(ct, module, (torch.randn(1, g.d_model, t), torch.randn(1, g.pred_hidden, 1)),
                     [ct.TensorType(name=enc_name, shape=(1, g.d_model, t), dtype=f32),
                      ct.TensorType(name=dec_name, shape=(1, g.pred_hidden, 1), dtype=f32)],
                     outputs, folder / f"{name}.mlpackage", ints)
    meta = {"model_type": "parakeet_tdt_rnnt" if durations else "parakeet_rnnt", "sample_rate": g.sample_rate,
            "max_audio_seconds": window_seconds, "max_audio_samples": samples,
            "blank_id": int(model.decoder.blank_idx),
            "coreml": {"compute_precision": "FLOAT32", "quantization": "none"}}
    if durations:
        meta["duration_bins"] = durations
    (folder / "metadata.json").write_text(json.dumps(meta, indent=2))
    return folder
