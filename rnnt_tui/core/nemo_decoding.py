"""NeMo's own side of decoding: its greedy transcript of an encoder output, and tokens to text.

The tool's component-driven greedy decode (core.pipeline.greedy) is checked against `model.decoding` token for token.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnt_tui.core.checkpoint import LoadedModel


def max_symbols(loaded: LoadedModel) -> int | None:
    """The per-frame symbol cap NeMo's greedy decoder was configured with."""
    inner = getattr(loaded.model.decoding, "decoding", None)
    for attr in ("max_symbols", "max_symbols_per_step"):
        value = getattr(inner, attr, None)
        if isinstance(value, int):
            return value
    cfg = loaded.model.cfg.get("decoding", {}).get("greedy", {})
    value = cfg.get("max_symbols", None) or cfg.get("max_symbols_per_step", None)
    return int(value) if value else None


def tokens_to_text(loaded: LoadedModel, tokens: list[int]) -> str:
    decoding = loaded.model.decoding
    return str(decoding.decode_tokens_to_str(decoding.decode_ids_to_tokens(list(tokens))))


def tokens_to_pieces(loaded: LoadedModel, tokens: list[int]) -> list[str]:
    return [str(p) for p in loaded.model.decoding.decode_ids_to_tokens(list(tokens))]


def hypothesis_tokens(hyp: Any) -> list[int]:
    """The token ids of one NeMo `Hypothesis` (its `y_sequence`, a tensor or a list)."""
    seq = hyp.y_sequence
    return [int(t) for t in (seq.tolist() if hasattr(seq, "tolist") else seq)]


def nemo_greedy(loaded: LoadedModel, encoded: np.ndarray, length: int) -> tuple[list[int], str]:
    """NeMo's own decoding (`model.decoding.rnnt_decoder_predictions_tensor`) of an encoder output."""
    import torch  # heavy: only after a restore

    model = loaded.eval()
    with torch.inference_mode():
        out: Any = model.decoding.rnnt_decoder_predictions_tensor(
            encoder_output=torch.from_numpy(np.ascontiguousarray(encoded)).float(),
            encoded_lengths=torch.tensor([length], dtype=torch.long),
            return_hypotheses=True,
        )
    loaded.eval()
    hyps = out[0] if isinstance(out, tuple) else out
    hyp = hyps[0]
    if isinstance(hyp, list):
        hyp = hyp[0]
    tokens = hypothesis_tokens(hyp)
    text = hyp.text if isinstance(hyp.text, str) else tokens_to_text(loaded, tokens)
    return tokens, text
