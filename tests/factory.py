"""Builds small NeMo transducer checkpoints from configs, locally, with no downloads.

Used by the test fixtures and the bench scripts. Four kinds: char RNNT, BPE RNNT (SentencePiece trained here),
TDT (BPE) and hybrid RNNT-CTC (char), plus a CTC-only model for the refusal tests. Sizes are parameters so the
benchmarks can build Parakeet-sized models with the same code.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LABELS = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]
TDT_DURATIONS = [0, 1, 2, 3, 4]

TOKENIZER_TEXT = (
    "hello world the quick brown fox jumps over the lazy dog core ml on a mac speech recognition "
    "transducer models predict tokens from audio frames and a prediction network joint network decode"
)


@dataclass(frozen=True)
class Dims:
    """Model dimensions; the defaults make a model that builds in well under a second."""

    n_mels: int = 80
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    subsampling: str = "striding"
    subsampling_factor: int = 4
    conv_kernel_size: int = 9
    pred_hidden: int = 64
    pred_rnn_layers: int = 1
    joint_hidden: int = 64
    ff_expansion_factor: int = 4


PARAKEET_DIMS = Dims(
    n_mels=128,
    d_model=1024,
    n_layers=24,
    n_heads=8,
    subsampling="dw_striding",
    subsampling_factor=8,
    conv_kernel_size=9,
    pred_hidden=640,
    pred_rnn_layers=2,
    joint_hidden=640,
)


def _preprocessor(dims: Dims) -> dict[str, Any]:
    return {
        "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
        "sample_rate": 16000,
        "normalize": "per_feature",
        "window_size": 0.025,
        "window_stride": 0.01,
        "window": "hann",
        "features": dims.n_mels,
        "n_fft": 512,
        "log": True,
        "frame_splicing": 1,
        "dither": 0.0,
        "pad_to": 0,
        "pad_value": 0.0,
    }


def _encoder(dims: Dims) -> dict[str, Any]:
    return {
        "_target_": "nemo.collections.asr.modules.ConformerEncoder",
        "feat_in": dims.n_mels,
        "feat_out": -1,
        "n_layers": dims.n_layers,
        "d_model": dims.d_model,
        "subsampling": dims.subsampling,
        "subsampling_factor": dims.subsampling_factor,
        "subsampling_conv_channels": min(dims.d_model, 256),
        "ff_expansion_factor": dims.ff_expansion_factor,
        "self_attention_model": "rel_pos",
        "n_heads": dims.n_heads,
        "att_context_size": [-1, -1],
        "xscaling": True,
        "untie_biases": True,
        "pos_emb_max_len": 5000,
        "conv_kernel_size": dims.conv_kernel_size,
        "conv_norm_type": "batch_norm",
        "dropout": 0.1,
        "dropout_pre_encoder": 0.1,
        "dropout_emb": 0.0,
        "dropout_att": 0.1,
    }


def _decoder(dims: Dims, vocab_size: int) -> dict[str, Any]:
    return {
        "_target_": "nemo.collections.asr.modules.RNNTDecoder",
        "normalization_mode": None,
        "random_state_sampling": False,
        "blank_as_pad": True,
        "vocab_size": vocab_size,
        "prednet": {"pred_hidden": dims.pred_hidden, "pred_rnn_layers": dims.pred_rnn_layers, "t_max": None,
                    "dropout": 0.2},
    }


def _joint(dims: Dims, vocab: list[str] | None, vocab_size: int, fuse: bool, extra: int) -> dict[str, Any]:
    joint: dict[str, Any] = {
        "_target_": "nemo.collections.asr.modules.RNNTJoint",
        "log_softmax": None,
        "preserve_memory": False,
        "fuse_loss_wer": fuse,
        "fused_batch_size": 4 if fuse else None,
        "num_classes": vocab_size,
        "vocabulary": vocab,
        "jointnet": {
            "joint_hidden": dims.joint_hidden,
            "activation": "relu",
            "dropout": 0.2,
            "encoder_hidden": dims.d_model,
            "pred_hidden": dims.pred_hidden,
        },
    }
    if extra:
        joint["num_extra_outputs"] = extra
    return joint


def _dataset(batch: int = 1) -> dict[str, Any]:
    return {"manifest_filepath": None, "sample_rate": 16000, "batch_size": batch, "shuffle": False,
            "use_start_end_token": False}


def char_rnnt_config(dims: Dims = Dims(), fuse: bool = True) -> dict[str, Any]:
    """A char RNNT config in the shape of NeMo's conformer_transducer_char.yaml (fuse_loss_wer as saved there)."""
    vocab = list(LABELS)
    return {
        "sample_rate": 16000,
        "labels": vocab,
        "model_defaults": {"enc_hidden": dims.d_model, "pred_hidden": dims.pred_hidden,
                           "joint_hidden": dims.joint_hidden},
        "train_ds": _dataset(),
        "validation_ds": _dataset(),
        "preprocessor": _preprocessor(dims),
        "encoder": _encoder(dims),
        "decoder": _decoder(dims, len(vocab)),
        "joint": _joint(dims, vocab, len(vocab), fuse, 0),
        "decoding": {"strategy": "greedy_batch", "greedy": {"max_symbols": 10}},
        "loss": {"loss_name": "default", "warprnnt_numba_kwargs": {"fastemit_lambda": 0.0}},
        "optim": {"name": "adamw", "lr": 1e-3},
    }


def train_tokenizer(directory: Path, vocab_size: int = 48) -> Path:
    """Train a SentencePiece BPE tokenizer locally and lay it out the way NeMo's tokenizer `dir` expects."""
    import sentencepiece as spm

    directory.mkdir(parents=True, exist_ok=True)
    text = directory / "text.txt"
    text.write_text("\n".join([TOKENIZER_TEXT] * 4) + "\n")
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(directory / "tokenizer"), vocab_size=vocab_size, model_type="bpe",
        character_coverage=1.0, bos_id=-1, eos_id=-1, unk_id=0, minloglevel=2,
    )
    pieces = [line.split("\t")[0] for line in (directory / "tokenizer.vocab").read_text().splitlines()]
    (directory / "vocab.txt").write_text("\n".join(pieces) + "\n")
    return directory


def bpe_rnnt_config(tokenizer_dir: Path, dims: Dims = Dims(), fuse: bool = True, vocab_size: int = 48,
                    durations: list[int] | None = None) -> dict[str, Any]:
    """A BPE RNNT config; with `durations` a TDT config (joint grows by len(durations) outputs)."""
    cfg = char_rnnt_config(dims, fuse)
    del cfg["labels"]
    cfg["tokenizer"] = {"dir": str(tokenizer_dir), "type": "bpe"}
    cfg["decoder"] = _decoder(dims, vocab_size)
    cfg["joint"] = _joint(dims, None, vocab_size, fuse, len(durations) if durations else 0)
    if durations:
        cfg["model_defaults"]["tdt_durations"] = list(durations)
        cfg["decoding"] = {"strategy": "greedy_batch", "model_type": "tdt", "durations": list(durations),
                           "greedy": {"max_symbols": 10}}
        cfg["loss"] = {"loss_name": "tdt", "tdt_kwargs": {"durations": list(durations), "sigma": 0.02,
                                                          "omega": 0.1}}
    return cfg


def hybrid_config(dims: Dims = Dims(), fuse: bool = True) -> dict[str, Any]:
    """A char hybrid RNNT-CTC config (EncDecHybridRNNTCTCModel)."""
    cfg = char_rnnt_config(dims, fuse)
    cfg["aux_ctc"] = {
        "ctc_loss_weight": 0.3,
        "use_cer": False,
        "ctc_reduction": "mean_batch",
        "decoder": {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": None,
                    "num_classes": -1, "vocabulary": list(LABELS)},
        "decoding": {"strategy": "greedy"},
    }
    return cfg


def ctc_config(dims: Dims = Dims()) -> dict[str, Any]:
    """A CTC-only char config (EncDecCTCModel): not a transducer; the tool must refuse it."""
    return {
        "sample_rate": 16000,
        "labels": list(LABELS),
        "train_ds": _dataset(),
        "validation_ds": _dataset(),
        "preprocessor": _preprocessor(dims),
        "encoder": _encoder(dims),
        "decoder": {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": dims.d_model,
                    "num_classes": len(LABELS), "vocabulary": list(LABELS)},
        "optim": {"name": "adamw", "lr": 1e-3},
    }


KINDS = ("rnnt-char", "rnnt-bpe", "tdt", "hybrid")


def build(kind: str, out: Path, work: Path, dims: Dims = Dims(), fuse: bool = True, seed: int = 0) -> Path:
    """Build a model of `kind` with random weights (seeded) and save it as a .nemo at `out`."""
    import torch
    from nemo.collections.asr.models import (
        EncDecCTCModel,
        EncDecHybridRNNTCTCModel,
        EncDecRNNTBPEModel,
        EncDecRNNTModel,
    )
    from omegaconf import OmegaConf

    torch.manual_seed(seed)
    if kind == "rnnt-char":
        model: Any = EncDecRNNTModel(cfg=OmegaConf.create(char_rnnt_config(dims, fuse)))
    elif kind in ("rnnt-bpe", "tdt"):
        tok = train_tokenizer(work / f"tokenizer-{kind}")
        durations = TDT_DURATIONS if kind == "tdt" else None
        model = EncDecRNNTBPEModel(cfg=OmegaConf.create(bpe_rnnt_config(tok, dims, fuse, durations=durations)))
    elif kind == "hybrid":
        model = EncDecHybridRNNTCTCModel(cfg=OmegaConf.create(hybrid_config(dims, fuse)))
    elif kind == "ctc":
        model = EncDecCTCModel(cfg=OmegaConf.create(ctc_config(dims)))
    else:
        raise ValueError(f"unknown kind {kind!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save_to(str(out))
    return out


def config_copy(cfg: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(cfg)


#: the lookaheads of the streaming demo: chunked_limited [left, right] pairs, the first the default
STREAMING_ATT_CONTEXTS = [[70, 13], [70, 1]]


def streaming_config(dims: Dims = Dims(), fuse: bool = True,
                     att_context_size: list[list[int]] | None = None) -> dict[str, Any]:
    """A cache-aware streaming char RNNT config (NeMo's cache_aware_streaming FastConformer recipe, tiny).

    `att_context_style: chunked_limited` with a list of [left, right] contexts (a multi-lookahead model; the
    first is the default), `conv_context_size: causal`, causal downsampling, layer-norm conv modules.
    """
    cfg = char_rnnt_config(dims, fuse)
    enc = cfg["encoder"]
    enc.update({
        "att_context_size": [list(c) for c in (att_context_size or STREAMING_ATT_CONTEXTS)],
        "att_context_style": "chunked_limited",
        "att_context_probs": None,
        "conv_context_size": "causal",
        "causal_downsampling": True,
        "conv_norm_type": "layer_norm",
    })
    return cfg


def build_streaming(out: Path, dims: Dims = Dims(), fuse: bool = True, seed: int = 0,
                    att_context_size: list[list[int]] | None = None) -> Path:
    """Build a cache-aware streaming char RNNT model with random weights (seeded); saved as a .nemo at `out`."""
    import torch
    from nemo.collections.asr.models import EncDecRNNTModel
    from omegaconf import OmegaConf

    torch.manual_seed(seed)
    model = EncDecRNNTModel(cfg=OmegaConf.create(streaming_config(dims, fuse, att_context_size)))
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save_to(str(out))
    return out
