"""One utterance's outcome as plain data: `UtteranceRecord`, made from a finished comparison by `record_from`.

A record holds what the corpus reports need and nothing heavy: the three transcripts (the component-driven
reference decode, the candidate's, NeMo's own greedy decode), token agreement and the first divergence, each
step's status, worst figures (max |Δ| over its outputs, lowest cosine, lowest argmax agreement) and median times,
both runtimes' transcription compute time, and WER / CER of each runtime against the manifest text. It is one
JSON line in `results.jsonl` (`to_json` / `from_json` round-trip exactly; non-finite floats are written as the
strings "nan", "inf", "-inf", as `core.stats` does), so every report can be rebuilt from that file.

`record_from` reads only `StepResult` and `DecodeComparison` (core.results), whatever produced them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from rnnt_tui.core.corpus.manifest import ManifestError, Utterance
from rnnt_tui.core.corpus.metrics import TextScore, score
from rnnt_tui.core.names import CANDIDATE, REFERENCE, Status

if TYPE_CHECKING:
    from rnnt_tui.core.stats.results import StepResult

OK, ERROR, FAILED = "ok", "error", "failed"
#: the steps whose times make one runtime's transcription of a clip (its preprocessor only if it ran one)
TRANSCRIPTION_STEPS = ("preprocessor", "encoder", "decode")


def _num(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def _unnum(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class StepFigures:
    """A step's outcome on one clip: status, worst figures over its compared outputs, median ms per side."""

    status: str
    max_abs: float | None = None
    cosine: float | None = None
    argmax_agreement: float | None = None
    outputs: dict[str, float | None] = field(default_factory=dict)  # output name -> max |Δ|
    ms: dict[str, float | None] = field(default_factory=dict)  # side -> median ms

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "max_abs": _num(self.max_abs), "cosine": _num(self.cosine),
                "argmax_agreement": _num(self.argmax_agreement),
                "outputs": {k: _num(v) for k, v in self.outputs.items()},
                "ms": {k: _num(v) for k, v in self.ms.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepFigures:
        return cls(data["status"], _unnum(data.get("max_abs")), _unnum(data.get("cosine")),
                   _unnum(data.get("argmax_agreement")),
                   {k: _unnum(v) for k, v in data.get("outputs", {}).items()},
                   {k: _unnum(v) for k, v in data.get("ms", {}).items()})


@dataclass(frozen=True)
class UtteranceRecord:
    """One line of results.jsonl. `status`: ok (both runtimes decoded the clip), error (bad input: the manifest
    line or the clip; `stage` says which) or failed (a runtime raised; `stage` is the step)."""

    uid: str
    index: int
    line: int
    audio: str
    text: str | None
    status: str
    stage: str | None = None
    error: str | None = None
    duration_s: float | None = None
    reference_text: str | None = None
    candidate_text: str | None = None
    nemo_text: str | None = None
    reference_matches_nemo: bool | None = None
    candidate_matches_nemo: bool | None = None
    identical: bool | None = None
    token_agreement: float | None = None
    tokens: dict[str, int] = field(default_factory=dict)
    first_divergence: dict[str, Any] | None = None
    within_tolerance: bool | None = None
    steps: dict[str, StepFigures] = field(default_factory=dict)
    compute_ms: dict[str, float] = field(default_factory=dict)
    scores: dict[str, TextScore] = field(default_factory=dict)
    wall_s: float | None = None
    #: what resampled the clip for both runtimes and NeMo ("none", "soxr HQ", "lhotse's resampler", ...) and who
    #: read it (`core.audio.Audio.loader`)
    resampler: str | None = None
    audio_loader: str | None = None
    #: `corpus --stream`: one entry per att context (`core.corpus.streaming`); None for an offline comparison
    stream: list[dict[str, Any]] | None = None
    #: what ran the candidate side of this utterance: its runtime key, label and where it runs (a `--subset` run
    #: has two); None for a manifest line that named no clip
    candidate: str | None = None
    candidate_label: str | None = None
    runs_on: str | None = None

    @property
    def evaluated(self) -> bool:
        return self.status == OK

    @property
    def out_of_tolerance_steps(self) -> list[str]:
        """The steps that did not pass on this clip (a component out of tolerance, or the decode diverging):
        what `compare` on the same clip reports as a mismatch (exit 1)."""
        passed = (str(Status.DONE), str(Status.REFERENCE_ONLY))
        return [name for name, figures in self.steps.items() if figures.status not in passed]

    @property
    def out_of_tolerance(self) -> bool:
        """Evaluated, and some step did not pass (`within_tolerance` is False)."""
        return self.evaluated and self.within_tolerance is False

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["steps"] = {k: v.to_json() for k, v in self.steps.items()}
        out["scores"] = {k: v.to_json() for k, v in self.scores.items()}
        out["token_agreement"] = _num(self.token_agreement)
        return {"kind": "utterance", **out}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UtteranceRecord:
        data = {k: v for k, v in data.items() if k != "kind"}
        data["steps"] = {k: StepFigures.from_json(v) for k, v in data.get("steps", {}).items()}
        data["scores"] = {k: TextScore.from_json(v) for k, v in data.get("scores", {}).items()}
        data["token_agreement"] = _unnum(data.get("token_agreement"))
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


def error_record(entry: Utterance | ManifestError, stage: str, problem: str) -> UtteranceRecord:
    """A bad manifest line or a clip that cannot be used: an error for that line, counted in the summary."""
    audio = str(entry.audio_path) if isinstance(entry, Utterance) else (entry.source or "")
    text = entry.text if isinstance(entry, Utterance) else None
    return UtteranceRecord(uid=entry.uid, index=entry.index, line=entry.line, audio=audio, text=text, status=ERROR,
                           stage=stage, error=problem)


def _worst(values: list[float], highest: bool) -> float | None:
    if not values:
        return None
    if any(math.isnan(v) for v in values):
        return math.nan
    return max(values) if highest else min(values)


def step_figures(result: StepResult) -> StepFigures:
    """A step's worst figures over every compared output (NaN wins: it is never hidden)."""
    stats = [(c.name, c.stats) for c in result.comparisons if c.stats is not None]
    agreements = [s.argmax_agreement for _, s in stats if s.argmax_agreement is not None]
    ms = {side: (t.median_ms if t is not None else None) for side, t in result.timings.items()}
    return StepFigures(status=str(result.status), max_abs=_worst([s.max_abs for _, s in stats], highest=True),
                       cosine=_worst([s.cosine for _, s in stats], highest=False),
                       argmax_agreement=_worst(agreements, highest=False),
                       outputs={name: s.max_abs for name, s in stats}, ms=ms)


def _compute_ms(steps: dict[str, StepFigures], side: str) -> float:
    return sum(v for name in TRANSCRIPTION_STEPS if name in steps
               for v in [steps[name].ms.get(side)] if v is not None)


def record_from(results: dict[str, StepResult], decode: Any, utterance: Utterance, duration_s: float,
                wall_s: float, resampler: str | None = None, audio_loader: str | None = None) -> UtteranceRecord:
    """The record of a finished comparison on `utterance` (`decode` is its DecodeComparison, or None)."""
    steps = {name: step_figures(result) for name, result in results.items()}
    failed = next(((name, r.error) for name, r in results.items() if r.status == Status.FAILED), None)
    candidate_tokens = decode.candidate_tokens if decode is not None else None
    status = OK if candidate_tokens is not None else FAILED
    stage, error = (failed if failed is not None else (None, None)) if status == FAILED else (None, None)
    if status == FAILED and error is None:
        stage, error = "decode", "the candidate produced no transcript"
    scores: dict[str, TextScore] = {}
    if utterance.text is not None and decode is not None:
        scores[REFERENCE] = score(utterance.text, decode.reference_text)
        if decode.candidate_text is not None:
            scores[CANDIDATE] = score(utterance.text, decode.candidate_text)
    divergence = decode.first_divergence if decode is not None else None
    return UtteranceRecord(
        uid=utterance.uid, index=utterance.index, line=utterance.line, audio=str(utterance.audio_path),
        text=utterance.text, status=status, stage=stage, error=error, duration_s=duration_s,
        reference_text=decode.reference_text if decode is not None else None,
        candidate_text=decode.candidate_text if decode is not None else None,
        nemo_text=decode.nemo_text if decode is not None else None,
        reference_matches_nemo=decode.matches_nemo if decode is not None else None,
        candidate_matches_nemo=decode.candidate_matches_nemo if decode is not None else None,
        identical=None if candidate_tokens is None else candidate_tokens == decode.reference_tokens,
        token_agreement=decode.token_agreement if decode is not None else None,
        tokens={k: len(v) for k, v in ((REFERENCE, decode.reference_tokens if decode is not None else None),
                                       (CANDIDATE, candidate_tokens)) if v is not None},
        first_divergence=divergence.to_json() if divergence is not None else None,
        within_tolerance=all(s.status in (str(Status.DONE), str(Status.REFERENCE_ONLY)) for s in steps.values()),
        steps=steps, compute_ms={side: _compute_ms(steps, side) for side in (REFERENCE, CANDIDATE)}
        if status == OK else {}, scores=scores, wall_s=wall_s, resampler=resampler, audio_loader=audio_loader)
