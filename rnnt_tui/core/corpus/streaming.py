"""Corpus runs of the streaming comparison (`corpus --stream`): one utterance's `StreamResult` as a record, and the
per-context aggregate rows of the report.

The comparison itself is `core.stream.compare.StreamSession` (NeMo's cache-aware loop against the candidate's
streaming step, the one chunk loop); this module only turns its results into corpus data. A streaming record
fills the ordinary record's fields from the first att context — `reference_text` is NeMo's streaming transcript,
`candidate_text` the candidate's, `nemo_text` NeMo's offline one at the same context, the manifest-text scores are
NeMo streaming (reference) and the candidate — so the usual WER / QoI / identical / out-of-tolerance figures and
gates read "the candidate's streaming against NeMo's streaming". `record.stream` holds one entry per context with
the transcripts, tokens agreement, drift, and word edit counts of the candidate's streaming transcript against
NeMo's streaming and against NeMo's offline one (and NeMo's streaming against its offline, the cost of streaming
itself), scored with `core.corpus.metrics` like every corpus WER.

Per-context rows (`stream_rows`): over evaluated utterances, `identical` (share decoded token for token like NeMo
streaming), `within_tolerance`, `wer_vs_streaming` / `wer_vs_offline` (candidate word errors summed over the
reference transcript's words summed), `nemo_streaming_vs_offline`, and with manifest text `wer_text` {nemo_streaming,
candidate, nemo_offline} and `qoi_vs_streaming` / `qoi_vs_offline` (share whose candidate word errors against the
text are no more than NeMo streaming's / offline's), plus drift percentiles (free-running encoder max |Δ|).
`StreamTotals` keeps those rows one record at a time (a live run's headline); `stream_rows` is it over a list.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from rnnt_tui.core.corpus.aggregate import RunningPercentiles
from rnnt_tui.core.corpus.manifest import Utterance
from rnnt_tui.core.corpus.metrics import ErrorCounts, score
from rnnt_tui.core.corpus.records import OK, StepFigures, UtteranceRecord
from rnnt_tui.core.names import CANDIDATE, REFERENCE, Status
from rnnt_tui.core.textmetrics import first_difference, token_agreement

if TYPE_CHECKING:
    from rnnt_tui.core.stream.result import ContextResult, StreamResult

STEP = "stream"  # the record's one step: the streaming comparison (worst over its contexts)
OFFLINE = "nemo_offline"


def _tokens(context: ContextResult, side: str) -> list[int]:
    return [t for c in context.chunks for t in (c.reference_tokens if side == REFERENCE else c.candidate_tokens)]


def _context_entry(context: ContextResult, text: str | None) -> dict[str, Any]:
    ref, cand = _tokens(context, REFERENCE), _tokens(context, CANDIDATE)
    divergence = context.first_divergence
    entry: dict[str, Any] = {
        "att_context_size": list(context.att_context_size), "latency_ms": context.latency_ms,
        "chunks": len(context.chunks), "ok": context.ok, "reference_text": context.reference_text,
        "candidate_text": context.candidate_text, "offline_text": context.offline_text,
        "offline": context.offline_how.to_json(), "identical": ref == cand,
        "token_agreement": token_agreement(ref, cand),
        "streaming_equals_offline": context.reference_text == context.offline_text,
        "candidate_equals_offline": context.candidate_text == context.offline_text,
        "max_drift_free_running": context.max_drift,
        "max_step_error_teacher_forced": max((c.teacher_forced.encoder_max_abs for c in context.chunks), default=0.0),
        "first_divergence": None if divergence is None else {"chunk": divergence.chunk, "time_s": divergence.time_s},
        "vs_streaming": score(context.reference_text, context.candidate_text).words.to_json(),
        "vs_offline": score(context.offline_text, context.candidate_text).words.to_json(),
        "streaming_vs_offline": score(context.offline_text, context.reference_text).words.to_json(),
    }
    if text is not None:
        entry["text_scores"] = {REFERENCE: score(text, context.reference_text).to_json(),
                                CANDIDATE: score(text, context.candidate_text).to_json(),
                                OFFLINE: score(text, context.offline_text).to_json()}
    return entry


def stream_record(result: StreamResult, utterance: Utterance, wall_s: float) -> UtteranceRecord:
    """The record of one utterance streamed at every context asked for (the first context fills the ordinary
    fields; see the module docstring)."""
    first = result.contexts[0]
    ref, cand = _tokens(first, REFERENCE), _tokens(first, CANDIDATE)
    entries = [_context_entry(c, utterance.text) for c in result.contexts]
    ok = all(c.ok for c in result.contexts)
    drift = max(c.max_drift for c in result.contexts)
    figures = StepFigures(
        status=str(Status.DONE if ok else Status.MISMATCH), max_abs=drift,
        outputs={f"encoded {list(c.att_context_size)} {feed}": max(
            (getattr(ch, attr).encoder_max_abs for ch in c.chunks), default=0.0)
            for c in result.contexts for feed, attr in (("teacher-forced", "teacher_forced"),
                                                         ("free-running", "free_running"))},
        ms={REFERENCE: statistics.median(c.reference_ms for c in first.chunks),
            CANDIDATE: statistics.median(c.candidate_ms for c in first.chunks)})
    scores = {}
    if utterance.text is not None:
        scores = {REFERENCE: score(utterance.text, first.reference_text),
                  CANDIDATE: score(utterance.text, first.candidate_text)}
    index = first_difference(ref, cand)
    divergence = None if index is None else {
        "index": index, "chunk": None if first.first_divergence is None else first.first_divergence.chunk,
        "time_s": None if first.first_divergence is None else first.first_divergence.time_s}
    return UtteranceRecord(
        uid=utterance.uid, index=utterance.index, line=utterance.line, audio=str(utterance.audio_path),
        text=utterance.text, status=OK, duration_s=result.clip_s, reference_text=first.reference_text,
        candidate_text=first.candidate_text, nemo_text=first.offline_text,
        reference_matches_nemo=first.reference_text == first.offline_text,
        candidate_matches_nemo=first.candidate_text == first.offline_text, identical=ref == cand,
        token_agreement=token_agreement(ref, cand), tokens={REFERENCE: len(ref), CANDIDATE: len(cand)},
        first_divergence=divergence, within_tolerance=ok, steps={STEP: figures},
        compute_ms={REFERENCE: sum(c.reference_ms for c in first.chunks),
                    CANDIDATE: sum(c.candidate_ms for c in first.chunks)},
        scores=scores, wall_s=wall_s, resampler=result.resampler, audio_loader=result.audio_loader, stream=entries)


def _share(hits: int, over: int) -> float | None:
    return hits / over if over else None


class _WordRate:
    """Word errors and reference words summed over entries: their WER (None over no words)."""

    def __init__(self) -> None:
        self.errors = 0
        self.words = 0

    def add(self, counts: dict[str, Any]) -> int:
        """Add one entry's word counts; its error count."""
        errors = int(ErrorCounts.from_json(counts).errors)
        self.words += counts["length"]
        self.errors += errors
        return errors

    def rate(self) -> float | None:
        return self.errors / self.words if self.words else None


class _ContextTotals:
    """One att context's sums over the entries added so far (one row of `stream_rows`)."""

    def __init__(self, latency_ms: float) -> None:
        self.latency_ms = latency_ms  # the first entry's
        self.utterances = self.identical = self.within_tolerance = self.streaming_equals_offline = 0
        self.with_text = self.qoi_streaming = self.qoi_offline = 0
        self.rates = {key: _WordRate() for key in ("vs_streaming", "vs_offline", "streaming_vs_offline")}
        self.text_rates = {side: _WordRate() for side in (REFERENCE, CANDIDATE, OFFLINE)}
        self.drift = RunningPercentiles(True)
        self.step_error = RunningPercentiles(True)

    def add(self, entry: dict[str, Any]) -> None:
        self.utterances += 1
        self.identical += entry["identical"]
        self.within_tolerance += entry["ok"]
        self.streaming_equals_offline += entry["streaming_equals_offline"]
        for key, rate in self.rates.items():
            rate.add(entry[key])
        self.drift.add(entry["max_drift_free_running"])
        self.step_error.add(entry["max_step_error_teacher_forced"])
        scores = entry.get("text_scores")
        if scores is None:
            return
        self.with_text += 1
        errors = {side: rate.add(scores[side]["words"]) for side, rate in self.text_rates.items()}
        self.qoi_streaming += errors[CANDIDATE] <= errors[REFERENCE]
        self.qoi_offline += errors[CANDIDATE] <= errors[OFFLINE]

    def row(self, context: tuple[int, ...]) -> dict[str, Any]:
        return {
            "att_context_size": list(context), "latency_ms": self.latency_ms, "utterances": self.utterances,
            "identical": _share(self.identical, self.utterances), "within_tolerance": self.within_tolerance,
            "streaming_equals_offline": self.streaming_equals_offline,
            "wer_vs_streaming": self.rates["vs_streaming"].rate(), "wer_vs_offline": self.rates["vs_offline"].rate(),
            "nemo_streaming_vs_offline": self.rates["streaming_vs_offline"].rate(), "with_text": self.with_text,
            "wer_text": {side: rate.rate() if self.with_text else None for side, rate in self.text_rates.items()},
            "qoi_vs_streaming": _share(self.qoi_streaming, self.with_text),
            "qoi_vs_offline": _share(self.qoi_offline, self.with_text),
            "drift_free_running": self.drift.figures(), "step_error_teacher_forced": self.step_error.figures()}


class StreamTotals:
    """The per-context rows kept up to date one record at a time: `add` reads only the new record's entries, so a
    live corpus view costs the same per utterance however many came before (rebuilding the rows from every
    record so far made a run quadratic in its length)."""

    def __init__(self, records: list[UtteranceRecord] | None = None) -> None:
        self._contexts: dict[tuple[int, ...], _ContextTotals] = {}
        for record in records or []:
            self.add(record)

    def add(self, record: UtteranceRecord) -> None:
        if not (record.evaluated and record.stream):
            return
        for entry in record.stream:
            context = tuple(entry["att_context_size"])
            if context not in self._contexts:
                self._contexts[context] = _ContextTotals(entry["latency_ms"])
            self._contexts[context].add(entry)

    def rows(self) -> list[dict[str, Any]]:
        """One aggregate row per att context, in the order the contexts first appeared."""
        return [totals.row(context) for context, totals in self._contexts.items()]


def stream_rows(records: list[UtteranceRecord]) -> list[dict[str, Any]]:
    """One aggregate row per att context over the evaluated streaming records (see the module docstring)."""
    return StreamTotals(records).rows()


def stream_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The report.md section for the per-context rows."""
    def pct(v: float | None) -> str:
        return "–" if v is None else f"{100 * v:.2f} %"

    def num(v: float | None) -> str:
        return "–" if v is None else f"{v:.3g}"

    lines = ["## Streaming, per att context", "",
             "Reference: NeMo's cache-aware streaming loop; offline: NeMo's full-context decode at the same context.",
             "", "| att context | latency ms | utterances | identical | within tolerance | WER vs NeMo streaming | "
             "WER vs NeMo offline | NeMo streaming vs offline | WER (text): NeMo streaming / candidate / offline | "
             "QoI vs streaming / offline | drift p90 / worst |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        w = r["wer_text"]
        d = r["drift_free_running"]
        lines.append(f"| {r['att_context_size']} | {num(r['latency_ms'])} | {r['utterances']} | {pct(r['identical'])} "
                     f"| {r['within_tolerance']} | {pct(r['wer_vs_streaming'])} | {pct(r['wer_vs_offline'])} | "
                     f"{pct(r['nemo_streaming_vs_offline'])} | {pct(w[REFERENCE])} / {pct(w[CANDIDATE])} / "
                     f"{pct(w[OFFLINE])} | {pct(r['qoi_vs_streaming'])} / {pct(r['qoi_vs_offline'])} | "
                     f"{num(d['p90'])} / {num(d['worst'])} |")
    return [*lines, ""]
