"""Corpus figures from utterance records: WER / CER per runtime, ΔWER, QoI, identical decodes, RTFx, drift
percentiles, the worst utterances, and the CI gates.

Definitions (the report's schema documents them too):
- WER (CER) of a runtime: the sum of its word (character) edit errors over the sum of reference words
  (characters), over evaluated utterances with `text` — not the mean of per-utterance rates.
- ΔWER, ΔCER: candidate minus reference (NeMo / PyTorch), as fractions (x100 for points).
- QoI: over evaluated utterances with text, the share whose candidate word errors are no more than the
  reference's (the same as candidate WER <= reference WER, and defined for an empty reference text too).
- identical: over evaluated utterances, the share whose candidate tokens equal the reference's, token for token.
- RTFx of a runtime: audio seconds over its transcription compute seconds (its preprocessor if it has one, its
  encoder and its greedy decode loop), summed over evaluated utterances.
- out of tolerance: evaluated utterances on which some step did not pass (a component outside its tolerance, or
  the decode diverging) — what `compare` on that clip reports as a mismatch. Counted (`out_of_tolerance`, also in
  the running totals), listed (`out_of_tolerance_utterances`), ranked first among the worst, and gated
  (`max_out_of_tolerance`, 0 by default).
- Drift percentiles per component over evaluated utterances: `p50`, `p90`, `p99` and `worst`, taken on the bad
  tail (for a higher-is-better figure such as cosine or argmax agreement, `p90` is the 10th percentile), so
  "p90" always reads "90 % of utterances are no worse than this". numpy's default (linear) percentiles; an
  utterance with a NaN figure counts as worst and is counted in `nan`.
`RunningTotals` keeps the headline figures up to date one record at a time (for a live view), and
`RunningPercentiles` a drift figure's percentiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rnnt_tui.core.corpus.records import ERROR, FAILED, UtteranceRecord
from rnnt_tui.core.names import CANDIDATE, REFERENCE, SIDES

#: (component, field, higher is worse) — the drift figures the report gives percentiles of
DRIFT_FIGURES = (("preprocessor", "max_abs", True), ("encoder", "max_abs", True), ("encoder", "cosine", False),
                 ("decoder", "max_abs", True), ("joint", "max_abs", True), ("joint", "argmax_agreement", False),
                 ("stream", "max_abs", True))
PERCENTILES = (50, 90, 99)
WORST_COUNT = 10


@dataclass(frozen=True)
class Gates:
    """CI thresholds; None means not checked."""

    max_wer_delta: float | None = None
    min_qoi: float | None = None
    min_identical: float | None = None
    #: utterances allowed out of tolerance; 0 by default, like `compare` (one clip out of tolerance is exit 1)
    max_out_of_tolerance: int | None = 0

    def to_json(self) -> dict[str, float | None]:
        return {"max_wer_delta": self.max_wer_delta, "min_qoi": self.min_qoi, "min_identical": self.min_identical,
                "max_out_of_tolerance": self.max_out_of_tolerance}


@dataclass
class RunningTotals:
    """Sums behind the headline figures, updated per record in O(1)."""

    utterances: int = 0
    evaluated: int = 0
    errors: int = 0
    failed: int = 0
    with_text: int = 0
    identical: int = 0
    qoi_hits: int = 0
    within_tolerance: int = 0
    out_of_tolerance: int = 0
    ref_words: int = 0
    ref_chars: int = 0
    word_errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SIDES, 0))
    char_errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SIDES, 0))
    audio_s: float = 0.0
    compute_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SIDES, 0.0))

    def add(self, record: UtteranceRecord) -> None:
        self.utterances += 1
        if record.status == ERROR:
            self.errors += 1
        elif record.status == FAILED:
            self.failed += 1
        if not record.evaluated:
            return
        self.evaluated += 1
        self.within_tolerance += record.within_tolerance is True
        self.out_of_tolerance += record.out_of_tolerance
        self.identical += bool(record.identical)
        self.audio_s += record.duration_s or 0.0
        for side in SIDES:
            self.compute_s[side] += record.compute_ms.get(side, 0.0) / 1000.0
        ref, cand = record.scores.get(REFERENCE), record.scores.get(CANDIDATE)
        if ref is None or cand is None:
            return
        self.with_text += 1
        self.ref_words += ref.words.length
        self.ref_chars += ref.chars.length
        for side, scored in ((REFERENCE, ref), (CANDIDATE, cand)):
            self.word_errors[side] += scored.words.errors
            self.char_errors[side] += scored.chars.errors
        self.qoi_hits += cand.words.errors <= ref.words.errors

    def headline(self) -> dict[str, Any]:
        wer = {s: _ratio(self.word_errors[s], self.ref_words) for s in SIDES}
        cer = {s: _ratio(self.char_errors[s], self.ref_chars) for s in SIDES}
        return {
            "utterances": self.utterances, "evaluated": self.evaluated, "errors": self.errors, "failed": self.failed,
            "with_text": self.with_text, "reference_words": self.ref_words, "reference_chars": self.ref_chars,
            "word_errors": dict(self.word_errors), "char_errors": dict(self.char_errors),
            "wer": wer, "cer": cer, "wer_delta": _delta(wer), "cer_delta": _delta(cer),
            "within_tolerance": self.within_tolerance, "out_of_tolerance": self.out_of_tolerance,
            "qoi": _ratio(self.qoi_hits, self.with_text), "qoi_over": self.with_text,
            "identical": _ratio(self.identical, self.evaluated), "identical_over": self.evaluated,
            "audio_s": self.audio_s, "compute_s": dict(self.compute_s),
            "rtfx": {s: (self.audio_s / self.compute_s[s] if self.compute_s[s] > 0 else None) for s in SIDES},
        }


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _delta(values: dict[str, float | None]) -> float | None:
    ref, cand = values[REFERENCE], values[CANDIDATE]
    return None if ref is None or cand is None else cand - ref


def percentiles(values: list[float], higher_is_worse: bool) -> dict[str, Any]:
    """p50/p90/p99/worst on the bad tail (see the module docstring); NaNs count as worst."""
    running = RunningPercentiles(higher_is_worse)
    for value in values:
        running.add(value)
    return running.figures()


class RunningPercentiles:
    """The values behind `percentiles`, added one at a time (a live view's drift): NaNs counted, the finite ones
    kept in a numpy buffer that doubles when full, so `add` is O(1) and `figures` one numpy pass (no Python loop
    over the values so far)."""

    def __init__(self, higher_is_worse: bool) -> None:
        import numpy as np

        self.higher_is_worse = higher_is_worse
        self.n = 0
        self.nan = 0
        self._finite = np.empty(16, dtype=np.float64)
        self._size = 0

    def add(self, value: float) -> None:
        import numpy as np

        self.n += 1
        if math.isnan(value):
            self.nan += 1
            return
        if self._size == self._finite.size:
            self._finite = np.concatenate([self._finite, np.empty_like(self._finite)])
        self._finite[self._size] = value
        self._size += 1

    def figures(self) -> dict[str, Any]:
        import numpy as np

        finite = self._finite[: self._size]
        out: dict[str, Any] = {"n": self.n, "nan": self.nan}
        for p in PERCENTILES:
            q = p if self.higher_is_worse else 100 - p
            out[f"p{p}"] = float(np.percentile(finite, q)) if finite.size else None
        if self.nan:
            out["worst"] = math.nan
        else:
            out["worst"] = (float(finite.max()) if self.higher_is_worse else float(finite.min())) if finite.size \
                else None
        return out


def drift(records: list[UtteranceRecord]) -> dict[str, dict[str, Any]]:
    """Percentiles of each component's worst figure per utterance (components the candidate did not run are
    left out)."""
    out: dict[str, dict[str, Any]] = {}
    for component, name, worse_high in DRIFT_FIGURES:
        values = [v for r in records if r.evaluated and component in r.steps
                  for v in [getattr(r.steps[component], name)] if v is not None]
        if values:
            out.setdefault(component, {})[name] = percentiles(values, worse_high)
    return out


def severity(record: UtteranceRecord) -> tuple[float, ...]:
    """Sort key, worst first: out of tolerance, then word errors the candidate adds, then a different decode,
    lower token agreement, then the encoder's and joint's drift."""
    ref, cand = record.scores.get(REFERENCE), record.scores.get(CANDIDATE)
    added = (cand.words.errors - ref.words.errors) if ref is not None and cand is not None else 0
    enc = record.steps["encoder"].max_abs if "encoder" in record.steps else None
    joint = record.steps["joint"].argmax_agreement if "joint" in record.steps else None

    def high(v: float | None) -> float:
        return -math.inf if v is None else (math.inf if math.isnan(v) else v)

    agreement = 1.0 if record.token_agreement is None else record.token_agreement
    return (0.0 if record.out_of_tolerance else 1.0, -added, 0.0 if record.identical is False else 1.0, agreement,
            -high(enc), 1.0 if joint is None else (-math.inf if math.isnan(joint) else joint), record.index)


def breached(headline: dict[str, Any], gates: Gates) -> list[str]:
    """One sentence per gate the figures breach (a gate whose figure could not be computed is breached)."""
    out: list[str] = []

    def check(value: float | None, limit: float | None, label: str, option: str, low_bad: bool, why: str) -> None:
        if limit is None:
            return
        if value is None:
            out.append(f"{label} could not be computed ({why}), so {option} {limit} fails")
        elif (value < limit) if low_bad else (value > limit):
            out.append(f"{label} {value:.4f} is {'below' if low_bad else 'above'} {option} {limit}")

    check(headline["wer_delta"], gates.max_wer_delta, "ΔWER", "--max-wer-delta", False, "no utterance with text")
    check(headline["qoi"], gates.min_qoi, "QoI", "--min-qoi", True, "no utterance with text")
    check(headline["identical"], gates.min_identical, "identical share", "--min-identical", True,
          "no utterance evaluated")
    limit, count = gates.max_out_of_tolerance, headline["out_of_tolerance"]
    if limit is not None and count > limit:
        out.append(f"{count} utterance{'s' if count != 1 else ''} out of tolerance (a step outside its tolerance "
                   f"or the decode diverging, as `compare` reports), above --max-out-of-tolerance {limit}")
    return out


def candidate_rows(records: list[UtteranceRecord]) -> list[dict[str, Any]]:
    """A `--subset` run's figures per candidate that ran (`candidate`, `label`, `runs_on`, the headline figures
    over its utterances only, `drift`): two runtimes' WER and drift are never one number."""
    groups: dict[str, list[UtteranceRecord]] = {}
    for record in records:
        if record.candidate is not None:
            groups.setdefault(record.candidate, []).append(record)
    rows = []
    for key, group in groups.items():
        totals = RunningTotals()
        for record in group:
            totals.add(record)
        rows.append({"candidate": key, "label": group[0].candidate_label, "runs_on": group[0].runs_on,
                     **totals.headline(), "drift": drift(group)})
    return rows


def aggregate(records: list[UtteranceRecord], gates: Gates | None = None) -> dict[str, Any]:
    """Every corpus figure from `records` (the JSON report's `summary`, `drift`, `worst`, `gates`)."""
    totals = RunningTotals()
    for record in records:
        totals.add(record)
    headline = totals.headline()
    nemo_mismatch = [r.uid for r in records if r.evaluated and r.reference_matches_nemo is False]
    resamplers: dict[str, int] = {}
    for r in records:
        if r.evaluated:
            resamplers[r.resampler or "unknown"] = resamplers.get(r.resampler or "unknown", 0) + 1
    headline.update({"reference_differs_from_nemo": len(nemo_mismatch), "resamplers": resamplers})
    out_of_tolerance = [r for r in records if r.out_of_tolerance]
    # every utterance out of tolerance is among the worst (they rank first), however many there are
    ranked = sorted((r for r in records if r.evaluated), key=severity)[:max(WORST_COUNT, len(out_of_tolerance))]
    gates = gates or Gates()
    return {"summary": headline, "drift": drift(records), "worst": [r.uid for r in ranked],
            "out_of_tolerance_utterances": [{"uid": r.uid, "line": r.line, "audio": r.audio,
                                             "steps": r.out_of_tolerance_steps}
                                            for r in out_of_tolerance],
            "gates": {**gates.to_json(), "breached": breached(headline, gates)},
            "problems": [{"uid": r.uid, "line": r.line, "audio": r.audio, "status": r.status, "stage": r.stage,
                          "error": r.error} for r in records if not r.evaluated]}
