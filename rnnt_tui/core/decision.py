"""Joint-decision heads, compared with the decision the reference logits imply. Pure numpy; no runtime, no model.

A decision head (the common Parakeet exporter's `joint_decision` / `joint_decision_single_step`) gives, for each
(frame, decoder step) cell: `token_id` (argmax of the V+1 token logits, blank included), `token_prob` (the softmax
of the token logits at that token), `duration` (argmax over the TDT duration logits: a bin index into the model's
durations; 0 for RNNT) and sometimes `top_k_ids` / `top_k_logits` (top K of the token logits). The same decision
is taken from reference logits [..., V+1+len(durations)] by `reference_decisions`; `compare_decisions` counts how
often they agree. Durations agree when both bins name the same number of frames (`durations[bin]`); a bin outside
the model's durations is counted as invalid and as a disagreement. Probabilities are compared as each side's
probability of its own chosen token. Results merge (`DecisionComparison.merge`), so a grid compared in chunks
gives the numbers of one pass.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

#: the outputs a decision head may give, in the order they are documented
DECISION_FIELDS = ("token_id", "token_prob", "duration", "top_k_ids", "top_k_logits")


@dataclass(frozen=True)
class Decisions:
    """Decisions over cells of any leading shape [...]; top-k arrays are [..., K]."""

    token_id: np.ndarray
    token_prob: np.ndarray | None = None
    duration: np.ndarray | None = None
    top_k_ids: np.ndarray | None = None
    top_k_logits: np.ndarray | None = None

    @classmethod
    def from_outputs(cls, outputs: dict[str, np.ndarray], shape: tuple[int, ...]) -> Decisions:
        """A head's named outputs (e.g. [1,T,U] and [1,T,U,K]) reshaped to the leading `shape`."""
        def get(name: str, extra: bool = False) -> np.ndarray | None:
            value = outputs.get(name)
            return None if value is None else np.asarray(value).reshape(*shape, -1) if extra \
                else np.asarray(value).reshape(shape)

        return cls(token_id=np.asarray(outputs["token_id"]).reshape(shape), token_prob=get("token_prob"),
                   duration=get("duration"), top_k_ids=get("top_k_ids", True), top_k_logits=get("top_k_logits", True))


def _token_logits(logits: np.ndarray, n_durations: int) -> np.ndarray:
    data = np.asarray(logits, dtype=np.float32)
    return data[..., : data.shape[-1] - n_durations] if n_durations else data


def reference_decisions(logits: np.ndarray, n_durations: int = 0, k: int = 0) -> Decisions:
    """The decision a head computes, taken from logits [..., V+1+n_durations] (raw or log-softmax alike: the
    token softmax does not change under a shift)."""
    tokens = _token_logits(logits, n_durations)
    token_id = tokens.argmax(axis=-1)
    top = np.take_along_axis(tokens, token_id[..., None], axis=-1)[..., 0]
    prob = 1.0 / np.exp(tokens - top[..., None]).sum(axis=-1)
    duration = np.asarray(logits, dtype=np.float32)[..., -n_durations:].argmax(axis=-1) if n_durations else None
    top_ids = top_logits = None
    if k:
        k = min(k, tokens.shape[-1])
        part = np.argpartition(-tokens, k - 1, axis=-1)[..., :k]
        order = np.argsort(-np.take_along_axis(tokens, part, axis=-1), axis=-1, kind="stable")
        top_ids = np.take_along_axis(part, order, axis=-1)
        top_logits = np.take_along_axis(tokens, top_ids, axis=-1)
    return Decisions(token_id=token_id, token_prob=prob.astype(np.float32), duration=duration, top_k_ids=top_ids,
                     top_k_logits=top_logits)


@dataclass(frozen=True)
class DecisionComparison:
    """How a decision head's outputs agree with the reference's decision over `cells` cells."""

    cells: int = 0
    token_agree: int = 0
    first_token_disagreement: tuple[int, ...] | None = None  # index into the compared cells' shape
    duration_cells: int = 0  # 0 when the model has no durations (RNNT) or the head gives none
    duration_agree: int = 0
    invalid_durations: int = 0  # bins outside the model's durations (or non-zero on an RNNT head)
    prob_cells: int = 0
    prob_max_abs: float = 0.0
    prob_sum_abs: float = 0.0
    top_k: int = 0  # K of the head's top-k outputs (0: it has none)
    top_k_overlap_sum: float = 0.0  # sum over cells of |reference top K ∩ head top K| / K
    top_k_logit_max_abs: float | None = None  # max |head top_k_logits - reference logits at the head's ids|

    @property
    def token_agreement(self) -> float | None:
        return self.token_agree / self.cells if self.cells else None

    @property
    def duration_agreement(self) -> float | None:
        return self.duration_agree / self.duration_cells if self.duration_cells else None

    @property
    def prob_mean_abs(self) -> float | None:
        return self.prob_sum_abs / self.prob_cells if self.prob_cells else None

    @property
    def top_k_overlap(self) -> float | None:
        return self.top_k_overlap_sum / self.cells if self.top_k and self.cells else None

    @property
    def ok(self) -> bool:
        """Every token and duration agrees and no bin is invalid."""
        return self.token_agree == self.cells and self.duration_agree == self.duration_cells \
            and not self.invalid_durations

    def merge(self, other: DecisionComparison) -> DecisionComparison:
        """The comparison of both sets of cells (a chunk's `first_token_disagreement` must already be absolute)."""
        firsts = [f for f in (self.first_token_disagreement, other.first_token_disagreement) if f is not None]
        logit = [v for v in (self.top_k_logit_max_abs, other.top_k_logit_max_abs) if v is not None]
        return DecisionComparison(
            cells=self.cells + other.cells, token_agree=self.token_agree + other.token_agree,
            first_token_disagreement=min(firsts) if firsts else None,
            duration_cells=self.duration_cells + other.duration_cells,
            duration_agree=self.duration_agree + other.duration_agree,
            invalid_durations=self.invalid_durations + other.invalid_durations,
            prob_cells=self.prob_cells + other.prob_cells, prob_max_abs=max(self.prob_max_abs, other.prob_max_abs),
            prob_sum_abs=self.prob_sum_abs + other.prob_sum_abs, top_k=max(self.top_k, other.top_k),
            top_k_overlap_sum=self.top_k_overlap_sum + other.top_k_overlap_sum,
            top_k_logit_max_abs=max(logit) if logit else None)

    def to_json(self) -> dict[str, Any]:
        def r(value: float | None) -> float | None:
            return None if value is None else round(float(value), 6)

        return {"cells": self.cells, "token_agreement": r(self.token_agreement),
                "token_disagreements": self.cells - self.token_agree,
                "first_token_disagreement": None if self.first_token_disagreement is None
                else list(self.first_token_disagreement),
                "duration_cells": self.duration_cells, "duration_agreement": r(self.duration_agreement),
                "invalid_durations": self.invalid_durations, "prob_max_abs_diff": r(self.prob_max_abs),
                "prob_mean_abs_diff": r(self.prob_mean_abs), "top_k": self.top_k,
                "top_k_overlap": r(self.top_k_overlap), "top_k_logit_max_abs_diff": r(self.top_k_logit_max_abs),
                "ok": self.ok}


def compare_decisions(reference_logits: np.ndarray, candidate: Decisions, durations: list[int] | None = None,
                      origin: tuple[int, ...] | None = None) -> DecisionComparison:
    """Compare a head's decisions [...] with the decision taken from the reference logits [..., C] of the same
    cells (a full grid, a chunk of it, or the rows along a decode path). `durations` are the model's TDT
    durations (None or empty for RNNT); `origin` is added to the first disagreement's index (a chunk's offset)."""
    n_dur = len(durations) if durations else 0
    shape = np.asarray(reference_logits).shape[:-1]
    k = candidate.top_k_ids.shape[-1] if candidate.top_k_ids is not None else 0
    ref = reference_decisions(reference_logits, n_dur, k)
    cand_tokens = np.asarray(candidate.token_id).reshape(shape)
    agree = ref.token_id == cand_tokens
    first = None
    if not agree.all():
        index = np.unravel_index(int(np.argmin(agree.reshape(-1))), shape)
        first = tuple(int(i) + (origin[n] if origin else 0) for n, i in enumerate(index))
    out = DecisionComparison(cells=int(agree.size), token_agree=int(agree.sum()), first_token_disagreement=first)
    if candidate.duration is not None:
        bins = np.asarray(candidate.duration).reshape(shape).astype(np.int64)
        if n_dur:
            valid = (bins >= 0) & (bins < n_dur)
            frames = np.asarray(durations, dtype=np.int64)
            assert ref.duration is not None
            same = valid & (frames[np.clip(bins, 0, n_dur - 1)] == frames[ref.duration])
            out = replace(out, duration_cells=int(bins.size), duration_agree=int(same.sum()),
                          invalid_durations=int((~valid).sum()))
        else:
            out = replace(out, invalid_durations=int((bins != 0).sum()))
    if candidate.token_prob is not None:
        assert ref.token_prob is not None
        diff = np.abs(np.asarray(candidate.token_prob, dtype=np.float32).reshape(shape) - ref.token_prob)
        out = replace(out, prob_cells=int(diff.size), prob_max_abs=float(diff.max(initial=0.0)),
                      prob_sum_abs=float(diff.sum(dtype=np.float64)))
    if k and candidate.top_k_ids is not None and ref.top_k_ids is not None:
        ids = np.asarray(candidate.top_k_ids).reshape(*shape, k).astype(np.int64)
        overlap = (ref.top_k_ids[..., :, None] == ids[..., None, :]).any(axis=-1).sum(axis=-1) / k
        out = replace(out, top_k=k, top_k_overlap_sum=float(overlap.sum(dtype=np.float64)))
        if candidate.top_k_logits is not None:
            tokens = _token_logits(reference_logits, n_dur)
            valid_ids = np.clip(ids, 0, tokens.shape[-1] - 1)
            at = np.take_along_axis(tokens, valid_ids, axis=-1)
            cand_logits = np.asarray(candidate.top_k_logits, dtype=np.float32).reshape(*shape, k)
            out = replace(out, top_k_logit_max_abs=float(np.abs(cand_logits - at).max(initial=0.0)))
    return out
