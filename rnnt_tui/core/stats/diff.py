"""Difference statistics between a reference and a candidate tensor, computed in a stream of chunks.

`DiffAccumulator` takes chunks of the two tensors (any split along one axis) and produces the same numbers a
single pass over the whole tensors would: max |d| with its index, mean |d|, RMSE, max relative difference,
cosine similarity, SNR in dB, NaN/Inf counts on each side, the count of elements outside atol + rtol * |ref|,
and for logits argmax agreement and top-k overlap along the last axis. Inputs of any float dtype are upcast to
float32 (float16 → float32 is exact); sums accumulate in float64. NaN or Inf is never hidden: the
max/mean/RMSE of a pair holding them is NaN/Inf, and such a pair fails unless both sides hold the same value.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

_BLOCK = 1 << 20
_ROW = 1024


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """sum(a * b) for float32 vectors, accurate to ~1e-9 relative: float32 dots over rows of 1024, summed in
    float64 (a plain float32 BLAS dot drifts by ~1e-6 over a million elements, which hides cosine ~ 1 - 1e-7)."""
    head = a.size - a.size % _ROW
    total = 0.0
    if head:
        total = float(np.einsum("ij,ij->i", a[:head].reshape(-1, _ROW), b[:head].reshape(-1, _ROW))
                      .sum(dtype=np.float64))
    if head < a.size:
        total += float(np.dot(a[head:].astype(np.float64), b[head:].astype(np.float64)))
    return total


@dataclass(frozen=True)
class DiffStats:
    """Statistics of candidate - reference over every element."""

    count: int
    max_abs: float
    max_abs_index: list[int] | None
    mean_abs: float
    rmse: float
    max_rel: float
    cosine: float
    snr_db: float
    nan: dict[str, int]
    inf: dict[str, int]
    violations: int
    atol: float
    rtol: float
    argmax_agreement: float | None = None
    topk_overlap: float | None = None
    topk: int | None = None

    @property
    def ok(self) -> bool:
        """Every element within tolerance and no NaN or Inf on either side (agreeing on a NaN is no pass)."""
        return self.violations == 0 and not any(self.nan.values()) and not any(self.inf.values())

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("max_abs", "mean_abs", "rmse", "max_rel", "cosine", "snr_db"):
            out[key] = _json_float(out[key])
        out["ok"] = self.ok
        return out


def _json_float(value: float) -> float | str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


class DiffAccumulator:
    """Streams chunks of (reference, candidate) of a tensor of `shape`, split along `axis`."""

    def __init__(self, shape: tuple[int, ...], atol: float, rtol: float, axis: int = 0,
                 logits: bool = False, topk: int = 5) -> None:
        self.shape = tuple(shape)
        self.axis = axis
        self.atol, self.rtol = atol, rtol
        self.logits = logits
        self.topk = topk
        self.count = 0
        self._max_abs = -1.0
        self._max_index: int | None = None
        self._sum_abs = 0.0
        self._sum_sq = 0.0
        self._sum_ref_sq = 0.0
        self._sum_cand_sq = 0.0
        self._dot = 0.0
        self._diff_ref = 0.0
        self._buffer: np.ndarray | None = None
        self._unit: np.ndarray | None = None
        self._max_rel = 0.0
        self._nan = {"reference": 0, "candidate": 0}
        self._inf = {"reference": 0, "candidate": 0}
        self._nonfinite_diff = math.nan
        self._has_nonfinite = False
        self._violations = 0
        self._rows = 0
        self._agree = 0
        self._overlap = 0.0
        self._offset = 0

    def update(self, reference: np.ndarray, candidate: np.ndarray) -> None:
        """Add the next chunk (same shape on both sides, consecutive along `axis`)."""
        if reference.shape != candidate.shape:
            raise ValueError(f"chunk shapes differ: {reference.shape} vs {candidate.shape}")
        ref = np.ascontiguousarray(reference, dtype=np.float32)
        cand = np.ascontiguousarray(candidate, dtype=np.float32)
        chunk_start = self._offset
        self._offset += ref.shape[self.axis] if ref.ndim else 1
        if self.logits and ref.ndim >= 1 and ref.size:
            self._update_logits(ref, cand)
        flat_ref = ref.reshape(-1)
        flat_cand = cand.reshape(-1)
        for start in range(0, flat_ref.size, _BLOCK):
            self._update_block(flat_ref[start:start + _BLOCK], flat_cand[start:start + _BLOCK], ref.shape,
                               chunk_start, start)

    def _global_index(self, chunk_shape: tuple[int, ...], chunk_start: int, flat: int) -> int:
        if chunk_start == 0 and chunk_shape == self.shape:  # the whole tensor in one chunk: flat is global
            return int(flat)
        idx = list(np.unravel_index(flat, chunk_shape)) if chunk_shape else []
        if idx:
            idx[self.axis] += chunk_start
            return int(np.ravel_multi_index(tuple(idx), self.shape))
        return 0

    def _update_block(self, ref: np.ndarray, cand: np.ndarray, chunk_shape: tuple[int, ...], chunk_start: int,
                      block_start: int) -> None:
        n = ref.size
        if n == 0:
            return
        self.count += n
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: the non-finite path below reports it
            diff = cand - ref
            rr = _dot(ref, ref)
            dd = _dot(diff, diff)
            dr = _dot(diff, ref)
        if not (math.isfinite(rr) and math.isfinite(dd) and math.isfinite(dr)):
            self._update_nonfinite(ref, cand, chunk_shape, chunk_start, block_start)
            return
        self._sum_ref_sq += rr
        self._sum_sq += dd
        self._diff_ref += dr
        self._sum_cand_sq += rr + 2.0 * dr + dd  # |r + d|^2, without another pass over the candidate
        self._dot += rr + dr  # r . (r + d)
        absd = np.abs(diff, out=diff)
        local = int(np.argmax(absd))
        local_max = float(absd[local])
        if local_max > self._max_abs:
            self._max_abs = local_max
            self._max_index = self._global_index(chunk_shape, chunk_start, block_start + local)
        self._sum_abs += _dot(absd, self._ones(n))
        if local_max == 0.0:
            return
        absr = np.abs(ref)
        scratch = self._scratch(n)
        if local_max > self.atol:  # otherwise no element can be outside atol + rtol * |r|
            np.multiply(absr, self.rtol, out=scratch)
            scratch += self.atol
            self._violations += int(np.count_nonzero(np.greater(absd, scratch)))
        scratch.fill(0.0)
        np.divide(absd, absr, out=scratch, where=absr > 0)  # max relative over non-zero reference elements
        self._max_rel = max(self._max_rel, float(scratch.max()))

    def _scratch(self, n: int) -> np.ndarray:
        if self._buffer is None or self._buffer.size < n:
            self._buffer = np.empty(n, dtype=np.float32)
        return self._buffer[:n]

    def _ones(self, n: int) -> np.ndarray:
        if self._unit is None or self._unit.size < n:
            self._unit = np.ones(n, dtype=np.float32)
        return self._unit[:n]

    def _update_nonfinite(self, ref: np.ndarray, cand: np.ndarray, chunk_shape: tuple[int, ...],
                          chunk_start: int, block_start: int) -> None:
        self._has_nonfinite = True
        self._nan["reference"] += int(np.count_nonzero(np.isnan(ref)))
        self._nan["candidate"] += int(np.count_nonzero(np.isnan(cand)))
        self._inf["reference"] += int(np.count_nonzero(np.isinf(ref)))
        self._inf["candidate"] += int(np.count_nonzero(np.isinf(cand)))
        close = np.isclose(cand, ref, atol=self.atol, rtol=self.rtol, equal_nan=True)
        self._violations += int(np.count_nonzero(~close))
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.abs(cand.astype(np.float64) - ref.astype(np.float64))
        bad = ~np.isfinite(diff)
        if np.any(bad):
            first = int(np.argmax(bad))
            self._max_index = self._global_index(chunk_shape, chunk_start, block_start + first)
            self._max_abs = math.nan if np.isnan(diff[first]) else math.inf
        finite = np.isfinite(ref) & np.isfinite(cand)
        self._sum_ref_sq += float(np.dot(ref[finite].astype(np.float64), ref[finite].astype(np.float64)))
        self._sum_cand_sq += float(np.dot(cand[finite].astype(np.float64), cand[finite].astype(np.float64)))
        self._dot += float(np.dot(ref[finite].astype(np.float64), cand[finite].astype(np.float64)))

    def _update_logits(self, ref: np.ndarray, cand: np.ndarray) -> None:
        classes = ref.shape[-1]
        r2 = ref.reshape(-1, classes)
        c2 = cand.reshape(-1, classes)
        self._rows += r2.shape[0]
        self._agree += int(np.count_nonzero(np.argmax(r2, axis=1) == np.argmax(c2, axis=1)))
        k = min(self.topk, classes)
        if k >= classes:
            self._overlap += float(r2.shape[0])
            return
        top_r = np.sort(np.argpartition(-r2, k - 1, axis=1)[:, :k], axis=1)
        top_c = np.sort(np.argpartition(-c2, k - 1, axis=1)[:, :k], axis=1)
        shared = (top_r[:, :, None] == top_c[:, None, :]).any(axis=2).sum(axis=1)
        self._overlap += float(shared.sum()) / k

    def _cosine(self) -> float:
        """Cosine similarity; near 1 it is computed from the difference (1 - cos = (|d|^2 - (|r| - |c|)^2) /
        (2 |r| |c|), with |r|^2 - |c|^2 = -(2 d.r + |d|^2)) so that 1 - 1e-9 is not lost to rounding."""
        nr, nc = math.sqrt(self._sum_ref_sq), math.sqrt(self._sum_cand_sq)
        if nr == 0 or nc == 0:
            return 1.0 if nr == nc else 0.0
        if self._has_nonfinite:
            return self._dot / (nr * nc)
        norm_gap = -(2.0 * self._diff_ref + self._sum_sq) / (nr + nc)
        return 1.0 - (self._sum_sq - norm_gap * norm_gap) / (2.0 * nr * nc)

    def result(self) -> DiffStats:
        n = self.count
        if self._has_nonfinite and not math.isnan(self._max_abs) and not math.isinf(self._max_abs):
            self._max_abs = math.nan
        mean_abs = self._sum_abs / n if n and not self._has_nonfinite else (math.nan if n else 0.0)
        rmse = math.sqrt(self._sum_sq / n) if n and not self._has_nonfinite else (math.nan if n else 0.0)
        cosine = self._cosine()
        if self._has_nonfinite:
            snr = math.nan
        elif self._sum_sq == 0:
            snr = math.inf
        elif self._sum_ref_sq == 0:
            snr = -math.inf
        else:
            snr = 10.0 * math.log10(self._sum_ref_sq / self._sum_sq)
        index = None
        if self._max_index is not None and self.shape:
            index = [int(i) for i in np.unravel_index(self._max_index, self.shape)]
        return DiffStats(
            count=n,
            max_abs=max(self._max_abs, 0.0) if not math.isnan(self._max_abs) else math.nan,
            max_abs_index=index,
            mean_abs=mean_abs,
            rmse=rmse,
            max_rel=self._max_rel if not self._has_nonfinite else math.nan,
            cosine=cosine,
            snr_db=snr,
            nan=dict(self._nan),
            inf=dict(self._inf),
            violations=self._violations,
            atol=self.atol,
            rtol=self.rtol,
            argmax_agreement=(self._agree / self._rows) if self.logits and self._rows else None,
            topk_overlap=(self._overlap / self._rows) if self.logits and self._rows else None,
            topk=min(self.topk, self.shape[-1]) if self.logits and self.shape else None,
        )


def diff_stats(reference: np.ndarray, candidate: np.ndarray, atol: float, rtol: float,
               logits: bool = False, topk: int = 5) -> DiffStats:
    """Statistics of two whole tensors of the same shape (one chunk)."""
    acc = DiffAccumulator(tuple(reference.shape), atol, rtol, axis=0, logits=logits, topk=topk)
    acc.update(reference, candidate)
    return acc.result()


def per_frame_max(reference: np.ndarray, candidate: np.ndarray, axis: int = -1) -> np.ndarray:
    """Max |d| for each index along `axis` (the encoder's time axis) - the sparkline's data."""
    diff = np.abs(candidate.astype(np.float32) - reference.astype(np.float32))
    other = tuple(i for i in range(diff.ndim) if i != axis % diff.ndim)
    return np.asarray(diff.max(axis=other) if other else diff, dtype=np.float32)
