"""Compressed weights for Core AI assets, with Apple's `coreai-opt` (data-free, post-training, on the Core AI
program itself): int8 linear quantisation or 6- / 4-bit palettisation, the schemes `--weights` names for Core ML
(`core.coreml.weights.WEIGHTS`: one list for both formats).

`coreai_opt.coreai_utils.quantize_weights` rewrites each large weight constant feeding a matmul / conv / gather
into an int8 constant with a per-output-channel scale (symmetric: coreai-opt's default granularity; Core AI has no
deployment-target limit that would need per-tensor); `palettize_weights` replaces it with a 2^n-entry k-means
lookup table per tensor (per-tensor, as the Core ML path). Weights of at most `THRESHOLD` elements (biases, norms)
stay as they are, the same threshold as the Core ML path. The preprocessor is never compressed (its mel
filterbank and DFT basis are exact constants; the same reason it stays fp32). This module must not convert or
cache: `core.coreai.convert` calls it between `to_coreai()` and `save_asset`.
"""

from __future__ import annotations

import warnings
from typing import Any

from rnnt_tui.core.coreml.weights import WEIGHTS, check_weights

THRESHOLD = 2048
#: what each scheme is, for labels and metadata
DESCRIPTION = {"int8": "int8 per-channel linear quantisation (coreai-opt)",
               "palettize6": "6-bit palettes, per tensor (coreai-opt k-means)",
               "palettize4": "4-bit palettes, per tensor (coreai-opt k-means)"}

__all__ = ["DESCRIPTION", "THRESHOLD", "WEIGHTS", "check_weights", "compress_program"]


def compress_program(program: Any, weights: str) -> Any:
    """`program` (a coreai AIProgram) with its large weights compressed by `weights`; coreai-opt's warnings about
    its own tested torch / torchao versions are not the user's news."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from coreai_opt.coreai_utils import CompressionGranularity, DType, palettize_weights, quantize_weights
        from coreai_opt.coreai_utils.common import QScheme

        if weights == "int8":
            return quantize_weights(program, DType.INT8, qscheme=QScheme.SYMMETRIC,
                                    granularity=CompressionGranularity.PER_CHANNEL, weight_num_threshold=THRESHOLD,
                                    in_place=True)
        if weights in ("palettize6", "palettize4"):
            return palettize_weights(program, None, n_bits=int(weights.removeprefix("palettize")),
                                     granularity=CompressionGranularity.PER_TENSOR,
                                     weight_num_threshold=THRESHOLD, num_kmeans_workers=1, in_place=True)
    raise ValueError(f"unknown weights {weights!r}; choose one of {', '.join(WEIGHTS)}")
