"""Diff statistics against independent references (numpy / scipy), whole and chunked, fp16 against fp32."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import cosine as scipy_cosine

from rnnt_tui.core.stats.compare import compare_outputs
from rnnt_tui.core.stats.diff import DiffAccumulator, diff_stats, per_frame_max
from rnnt_tui.core.tolerances import Tolerance


def _pair(shape: tuple[int, ...], scale: float = 1e-3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal(shape).astype(np.float32)
    cand = (ref + scale * rng.standard_normal(shape)).astype(np.float32)
    return ref, cand


@pytest.mark.parametrize("cand_dtype", [np.float32, np.float16])
def test_every_statistic_matches_an_independent_reference(cand_dtype: type) -> None:
    ref, cand = _pair((1, 40, 6, 33))
    cand = cand.astype(cand_dtype)
    r64, c64 = ref.astype(np.float64), cand.astype(np.float64)
    d = c64 - r64
    atol, rtol = 2e-3, 1e-3
    s = diff_stats(ref, cand, atol, rtol, logits=True, topk=3)
    assert s.count == ref.size
    assert s.max_abs == pytest.approx(np.abs(d).max(), rel=1e-6)
    assert s.max_abs_index == list(np.unravel_index(np.argmax(np.abs(d)), ref.shape))
    assert s.mean_abs == pytest.approx(np.abs(d).mean(), rel=1e-5)
    assert s.rmse == pytest.approx(math.sqrt((d**2).mean()), rel=1e-5)
    nz = r64 != 0
    assert s.max_rel == pytest.approx((np.abs(d)[nz] / np.abs(r64)[nz]).max(), rel=1e-5)
    assert s.cosine == pytest.approx(1 - scipy_cosine(r64.ravel(), c64.ravel()), abs=1e-9)
    assert s.snr_db == pytest.approx(10 * math.log10((r64**2).sum() / (d**2).sum()), rel=1e-5)
    close = np.isclose(cand.astype(np.float32), ref, atol=atol, rtol=rtol)
    assert s.violations == int((~close).sum())
    assert s.ok == bool(close.all())
    flat_r, flat_c = r64.reshape(-1, 33), c64.reshape(-1, 33)
    assert s.argmax_agreement == pytest.approx((flat_r.argmax(1) == flat_c.argmax(1)).mean())
    top_r = np.argsort(-flat_r, axis=1)[:, :3]
    top_c = np.argsort(-flat_c, axis=1)[:, :3]
    overlap = np.mean([len(set(a) & set(b)) / 3 for a, b in zip(top_r, top_c, strict=True)])
    assert s.topk_overlap == pytest.approx(overlap)
    if cand_dtype is np.float16:
        assert s.max_abs > 1e-4  # fp16 rounding shows


def test_identical_tensors_give_exact_zero() -> None:
    ref, _ = _pair((4, 50))
    s = diff_stats(ref, ref.copy(), 0.0, 0.0)
    assert (s.max_abs, s.mean_abs, s.rmse, s.max_rel, s.violations) == (0.0, 0.0, 0.0, 0.0, 0)
    assert s.cosine == pytest.approx(1.0) and s.snr_db == math.inf and s.ok


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_chunked_statistics_equal_whole_tensor_statistics(chunk: int) -> None:
    ref, cand = _pair((1, 61, 9, 17), scale=1e-2, seed=3)
    whole = diff_stats(ref, cand, 1e-2, 1e-2, logits=True)
    acc = DiffAccumulator(ref.shape, 1e-2, 1e-2, axis=1, logits=True)
    for t in range(0, ref.shape[1], chunk):
        acc.update(ref[:, t:t + chunk], cand[:, t:t + chunk])
    chunked = acc.result()
    assert chunked.max_abs == whole.max_abs and chunked.max_abs_index == whole.max_abs_index
    assert chunked.violations == whole.violations and chunked.count == whole.count
    assert chunked.argmax_agreement == whole.argmax_agreement and chunked.topk_overlap == whole.topk_overlap
    for key in ("mean_abs", "rmse", "max_rel", "cosine", "snr_db"):
        assert getattr(chunked, key) == pytest.approx(getattr(whole, key), rel=1e-6), key


def test_nan_and_inf_are_reported_never_hidden() -> None:
    ref, cand = _pair((3, 20))
    cand[1, 4] = np.nan
    cand[2, 7] = np.inf
    s = diff_stats(ref, cand, 1.0, 1.0)
    assert s.nan == {"reference": 0, "candidate": 1} and s.inf == {"reference": 0, "candidate": 1}
    assert math.isnan(s.max_abs) and math.isnan(s.rmse) and math.isnan(s.mean_abs)
    assert s.max_abs_index == [1, 4]
    assert s.violations == 2 and not s.ok
    both = ref.copy()
    both[0, 0] = np.inf
    same = diff_stats(both, both.copy(), 0.0, 0.0)
    assert same.inf == {"reference": 1, "candidate": 1} and same.violations == 0


def test_shape_mismatch_is_a_finding_and_lengths_must_match_exactly() -> None:
    ref = {"encoded": np.zeros((1, 4, 10), np.float32), "encoded_length": np.array([10])}
    cand = {"encoded": np.zeros((1, 4, 11), np.float16), "encoded_length": np.array([11])}
    rows = compare_outputs(ref, cand, ("encoded", "encoded_length"), Tolerance(1.0, 1.0))
    encoded, length = rows
    assert encoded.stats is None and encoded.ok is False and "shape mismatch" in encoded.note
    assert "dtype differs" in encoded.note
    assert length.atol == 0.0 and length.ok is False and length.stats is not None
    assert length.stats.max_abs == 1.0


def test_output_missing_from_candidate_is_not_a_failure() -> None:
    ref = {"h": np.zeros((2, 1, 4), np.float32), "decoder_output": np.zeros((1, 4, 1), np.float32)}
    rows = compare_outputs(ref, {"h": ref["h"].copy()}, ("decoder_output", "h"), Tolerance(0.0, 0.0))
    assert rows[0].ok is None and "not exposed" in rows[0].note
    assert rows[1].ok is True


def test_per_frame_max_points_at_the_drifting_frame() -> None:
    ref = np.zeros((1, 8, 30), np.float32)
    cand = ref.copy()
    cand[0, 3, 17] = 0.5
    frames = per_frame_max(ref, cand, axis=-1)
    assert frames.shape == (30,) and int(np.argmax(frames)) == 17 and frames[17] == 0.5
