"""`corpus --stream`'s per-context rows kept one record at a time (`StreamTotals`): after every record they equal
the figures computed from scratch over the records so far (an independent sum here, numpy's percentiles), a
record's entries are read once (a long run's live view is not quadratic), and error or offline records are
skipped. No NeMo: the records are synthetic, scored with the corpus's own WER library."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest

from rnnt_tui.core.corpus.aggregate import RunningPercentiles, percentiles
from rnnt_tui.core.corpus.metrics import score
from rnnt_tui.core.corpus.records import OK, UtteranceRecord
from rnnt_tui.core.corpus.streaming import StreamTotals, stream_rows

WORDS = ["hello", "world", "the", "quick", "brown", "fox", "core", "ml", "on", "a", "mac"]
CONTEXTS = ([70, 13], [70, 0])


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 6)))


def _entry(rng: random.Random, context: list[int], text: str | None) -> dict[str, Any]:
    ref, cand, off = _sentence(rng), _sentence(rng), _sentence(rng)
    entry: dict[str, Any] = {
        "att_context_size": context, "latency_ms": 80.0 * (context[1] + 1) + rng.random(),
        "ok": rng.random() < 0.8, "identical": rng.random() < 0.5, "streaming_equals_offline": ref == off,
        "max_drift_free_running": math.nan if rng.random() < 0.05 else rng.random(),
        "max_step_error_teacher_forced": rng.random() / 10,
        "vs_streaming": score(ref, cand).words.to_json(), "vs_offline": score(off, cand).words.to_json(),
        "streaming_vs_offline": score(off, ref).words.to_json()}
    if text is not None:
        entry["text_scores"] = {"reference": score(text, ref).to_json(), "candidate": score(text, cand).to_json(),
                                "nemo_offline": score(text, off).to_json()}
    return entry


def _records(n: int, seed: int = 7) -> list[UtteranceRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        text = _sentence(rng) if rng.random() < 0.7 else None
        status = OK if rng.random() < 0.9 else "error"
        stream = [_entry(rng, c, text) for c in CONTEXTS] if status == OK else None
        out.append(UtteranceRecord(uid=f"u{i}", index=i, line=i + 1, audio=f"{i}.wav", text=text, status=status,
                                   stream=stream))
    return out


def _expected(records: list[UtteranceRecord]) -> list[dict[str, Any]]:
    """The rows from scratch, by their definitions (`core.corpus.streaming`'s docstring)."""
    rows = []
    for i, context in enumerate(CONTEXTS):
        entries = [r.stream[i] for r in records if r.status == OK and r.stream]
        if not entries:
            continue
        texts = [e["text_scores"] for e in entries if "text_scores" in e]

        def wer(counts: list[dict[str, Any]]) -> float | None:
            words = sum(c["length"] for c in counts)
            return sum(c["substitutions"] + c["deletions"] + c["insertions"] for c in counts) / words if words \
                else None

        def errs(scores: dict[str, Any], side: str) -> int:
            w = scores[side]["words"]
            return int(w["substitutions"] + w["deletions"] + w["insertions"])

        rows.append({
            "att_context_size": context, "latency_ms": entries[0]["latency_ms"], "utterances": len(entries),
            "identical": sum(e["identical"] for e in entries) / len(entries),
            "within_tolerance": sum(e["ok"] for e in entries),
            "streaming_equals_offline": sum(e["streaming_equals_offline"] for e in entries),
            "wer_vs_streaming": wer([e["vs_streaming"] for e in entries]),
            "wer_vs_offline": wer([e["vs_offline"] for e in entries]),
            "nemo_streaming_vs_offline": wer([e["streaming_vs_offline"] for e in entries]),
            "with_text": len(texts),
            "wer_text": {s: wer([t[s]["words"] for t in texts]) if texts else None
                         for s in ("reference", "candidate", "nemo_offline")},
            "qoi_vs_streaming": sum(errs(t, "candidate") <= errs(t, "reference") for t in texts) / len(texts)
            if texts else None,
            "qoi_vs_offline": sum(errs(t, "candidate") <= errs(t, "nemo_offline") for t in texts) / len(texts)
            if texts else None,
            "drift_free_running": percentiles([e["max_drift_free_running"] for e in entries], True),
            "step_error_teacher_forced": percentiles([e["max_step_error_teacher_forced"] for e in entries], True)})
    return rows


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN (a NaN drift makes `worst` NaN)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def test_rows_after_every_record_equal_the_rows_from_scratch() -> None:
    records = _records(60)
    totals = StreamTotals()
    for k, record in enumerate(records, 1):
        totals.add(record)
        assert _same(totals.rows(), _expected(records[:k])), f"after record {k}"
    assert _same(stream_rows(records), _expected(records))
    assert [r["att_context_size"] for r in totals.rows()] == [list(c) for c in CONTEXTS]
    assert totals.rows()[0]["with_text"] > 0 and totals.rows()[0]["drift_free_running"]["nan"] > 0


def test_a_record_is_read_once() -> None:
    """The live rows never go back to earlier records: changing one after it was added changes nothing (the
    runner used to rebuild every row from every record on each utterance)."""
    records = _records(12, seed=3)
    totals = StreamTotals(records[:6])
    before = totals.rows()
    for record in records[:6]:
        if record.stream:
            for entry in record.stream:
                entry["identical"] = not entry["identical"]
                entry["vs_streaming"] = {**entry["vs_streaming"], "insertions": 99}
    assert _same(totals.rows(), before)
    for record in records[6:]:
        totals.add(record)
    assert totals.rows()[0]["utterances"] == sum(r.status == OK for r in records)


def test_offline_and_error_records_add_nothing() -> None:
    offline = UtteranceRecord(uid="o", index=0, line=1, audio="o.wav", text="x", status=OK)
    failed = UtteranceRecord(uid="e", index=1, line=2, audio="e.wav", text=None, status="error",
                             stream=[_entry(random.Random(1), [70, 13], None)])
    assert StreamTotals([offline, failed]).rows() == []


@pytest.mark.parametrize("higher_is_worse", [True, False])
def test_running_percentiles_equal_numpys_over_the_values_so_far(higher_is_worse: bool) -> None:
    rng = np.random.default_rng(5)
    values = [float(v) for v in rng.standard_normal(100)]
    values[17] = math.nan
    running = RunningPercentiles(higher_is_worse)
    for k, value in enumerate(values, 1):
        running.add(value)
        finite = np.array([v for v in values[:k] if not math.isnan(v)])
        got = running.figures()
        assert got["n"] == k and got["nan"] == (k > 17)
        q = (50, 90, 99) if higher_is_worse else (50, 10, 1)
        assert [got["p50"], got["p90"], got["p99"]] == [float(np.percentile(finite, p)) for p in q]
        worst = float(finite.max() if higher_is_worse else finite.min())
        assert math.isnan(got["worst"]) if k > 17 else got["worst"] == worst
