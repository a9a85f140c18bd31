"""The sizes a transducer's Core ML packages are shaped by, and where each package is meant to run.

`geometry` reads the restored model's sizes (sample rate, hop, mel bins, subsampling, encoder width, prediction net)
and derives the time bounds from `max_frames`, counted in encoder frames (the default covers about 5 minutes of
audio); `package_max_frames` is the bound a conversion uses (for fp16 no more feature frames than the Neural
Engine's 16384 per dimension); `expected_frames` is the time length NeMo gives for an input of a given size, which a
runtime uses to crop padded outputs; `intended_units` says which compute units a package is meant for and which
lint findings are expected for it (written into the package's metadata by `coreml.convert_one`). Only numbers:
nothing here converts or loads a package.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rnnt_tui.core.checkpoint import LoadedModel
from rnnt_tui.core.components import DECODER, JOINT, PREPROCESSOR

DEFAULT_SECONDS = 300.0
#: the Neural Engine's per-dimension limit (also `precision.lint.NE_DIM_LIMIT`'s value)
NE_DIM_LIMIT = 16384
#: metadata keys saying which compute units a package is meant for and why, and which lint findings are expected
INTENDED_UNITS_KEY, INTENDED_WHY_KEY, LINT_EXPECTED_KEY = "intended_compute_units", "intended_why", "lint_expected"


@dataclass(frozen=True)
class Geometry:
    """The model's sizes that fix the packages' shapes and the time bounds derived from `max_frames`."""

    sample_rate: int
    hop: int
    n_mels: int
    factor: int
    d_model: int
    pred_hidden: int
    layers: int
    max_frames: int

    @property
    def max_features(self) -> int:
        return self.max_frames * self.factor

    @property
    def max_samples(self) -> int:
        return (self.max_features - 1) * self.hop


def geometry(loaded: LoadedModel, max_frames: int | None = None, seconds: float = DEFAULT_SECONDS) -> Geometry:
    """Sizes of `loaded`; `max_frames` (encoder frames) defaults to what covers `seconds` of audio."""
    from rnnt_tui.core.coreml.wrappers import state_shape  # torch: only once a model is restored

    model = loaded.model
    featurizer = model.preprocessor.featurizer
    hop = int(featurizer.hop_length)
    rate = int(getattr(model.preprocessor, "_sample_rate", 0) or loaded.summary.sample_rate or 16000)
    factor = int(getattr(model.encoder, "subsampling_factor", 1) or 1)
    layers, _, hidden = state_shape(model.decoder)
    frames = max_frames if max_frames else math.ceil(seconds * rate / (hop * factor))
    if frames < 1:
        raise ValueError(f"max_frames must be positive, got {frames}")
    n_mels = int(getattr(model.encoder, "_feat_in", 0) or featurizer.nfilt)
    return Geometry(sample_rate=rate, hop=hop, n_mels=n_mels, factor=factor,
                    d_model=int(model.joint.encoder_hidden), pred_hidden=hidden, layers=layers, max_frames=frames)


def package_max_frames(loaded: LoadedModel, precision: str, max_frames: int | None = None) -> int:
    """The encoder-frame bound the packages are converted with: `max_frames` when given; else about 5 minutes of
    audio for fp32 (the Neural Engine computes fp16 only, so it never runs those), and for the fp16 precisions no
    more feature frames than the Neural Engine's 16384 per dimension (163.8 s at a 10 ms hop)."""
    if max_frames:
        return max_frames
    g = geometry(loaded)
    if precision == "fp32":
        return g.max_frames
    return max(1, min(g.max_frames, NE_DIM_LIMIT // g.factor))


def intended_units(component: str, precision: str, g: Geometry) -> tuple[str, str, list[dict[str, str]]]:
    """(compute units a package is meant for, why, the lint findings that are expected for it and why): written
    into the package's metadata, printed by `convert`, read by `lint`."""
    if precision == "fp32":
        return ("CPU_AND_GPU", "fp32 program: the Neural Engine computes fp16 only, so Core ML runs it on the CPU "
                               "or GPU (fp32 packages are the accuracy reference)",
                [{"check": "dim-over-16384", "input": "*", "why": "fp32 package, not meant for the Neural Engine"}])
    if component == PREPROCESSOR:
        return ("CPU_ONLY", f"the mel front end takes raw samples (up to {g.max_samples}); the Neural Engine takes "
                            f"at most {NE_DIM_LIMIT} per dimension (about 1 s of audio), and the STFT is a small "
                            "share of the compute: run it on the CPU",
                [{"check": "dim-over-16384", "input": "audio_signal",
                  "why": "raw samples: this package is meant for the CPU (see intended_why)"}])
    if component == JOINT:
        return ("ALL", "per-step joint: fits the Neural Engine",
                [{"check": "flexible-lower-bound-1", "input": "*",
                  "why": "one encoder frame or one decoder step is a real joint call (the decode loop's)"}])
    if component == DECODER:
        return ("CPU_AND_GPU", "LSTM prediction net: public reports say Core ML does not place lstm on the Neural "
                               "Engine", [])
    return ("ALL", f"encoder within the Neural Engine's limits: up to {g.max_features} feature frames", [])


def default_max_frames(loaded: LoadedModel, seconds: float = DEFAULT_SECONDS) -> int:
    """Encoder frames that cover `seconds` of audio for this model."""
    return geometry(loaded, None, seconds).max_frames


def expected_frames(loaded: LoadedModel, component: str, size: int) -> int:
    """Time-axis length NeMo's `component` gives for an input of `size` samples (preprocessor) or feature frames
    (encoder): the tensor's length, which may exceed the valid-length output by a frame."""
    model = loaded.model
    if component == PREPROCESSOR:
        featurizer = model.preprocessor.featurizer
        pad = getattr(featurizer, "stft_pad_amount", None)
        if pad is None:
            return size // int(featurizer.hop_length) + 1
        return (size + 2 * int(pad) - int(featurizer.n_fft)) // int(featurizer.hop_length) + 1
    pre: Any = getattr(model.encoder, "pre_encode", None)
    if all(hasattr(pre, a) for a in ("_left_padding", "_right_padding", "_kernel_size", "_stride", "_sampling_num")):
        length = float(size)
        for _ in range(int(pre._sampling_num)):
            length = (length + pre._left_padding + pre._right_padding - pre._kernel_size) / pre._stride + 1
            length = math.ceil(length) if getattr(pre, "_ceil_mode", False) else math.floor(length)
        return int(length)
    return math.ceil(size / max(1, int(getattr(model.encoder, "subsampling_factor", 1) or 1)))
