"""Corpus runs that stay practical: `--subset` (the candidate on some utterances, a fast one on the rest) and the
expected time, said up front and refined as utterances finish.

Apple's Core AI runtime on Linux takes seconds per encoder call, so scoring a corpus with it alone can take
hours. `Subset("every", 10, rest="mil")` runs the asked candidate on every 10th manifest entry (by manifest
position, so shards and resumes pick the same utterances) and the rest on "Core ML program, MIL interpreter";
every record says which candidate ran it, and the reports give a row per candidate. The subset is part of the
run's identity (`RunHeader.subset`): a resume with another subset is refused.

`Estimate` says, before the first utterance, how much audio each candidate has to run, and after the first
utterance of each candidate its measured time per audio second (or per utterance, when durations are unknown)
times what that candidate has left.

One place for the words too: `Subset.problem` (what no front end may run: a rest that is the candidate, a subset
of a streaming corpus), `Subset.describe` (what will run where), `candidate_name` and `ran_on` (what ran a row).
Nothing heavy is imported here (manifests need numpy: only `Estimate.add` reads them), so the app's Corpus tab
and the CLI's options use it at startup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rnnt_tui.core.names import RUNTIME_LABELS

if TYPE_CHECKING:
    from rnnt_tui.core.corpus.manifest import ManifestError, Utterance

KINDS = ("first", "every")
#: what may run the entries outside a subset (the candidate itself excepted), the fast one first
REST_RUNTIMES = ("mil", "onnx", "coreml", "coreai")


@dataclass(frozen=True)
class Subset:
    """Which manifest entries run the asked candidate (`first:N`: the first N; `every:K`: every K-th, starting
    with the first); the others run `rest`."""

    kind: str
    count: int
    rest: str = "mil"

    @classmethod
    def parse(cls, spec: str, rest: str = "mil") -> Subset:
        kind, _, number = spec.partition(":")
        if kind not in KINDS or not number.isdigit() or int(number) < 1:
            raise ValueError(f"--subset {spec!r}: expected first:N or every:K (N, K >= 1)")
        return cls(kind, int(number), rest)

    def holds(self, index: int) -> bool:
        """Whether the entry at manifest position `index` (0-based) runs the asked candidate."""
        return index < self.count if self.kind == "first" else index % self.count == 0

    def __str__(self) -> str:
        return f"{self.kind}:{self.count}"

    def problem(self, against: str, stream: bool = False) -> str | None:
        """Why this subset cannot go with candidate `against` (None: it can): the rest needs another runtime, and a
        streaming corpus (`stream`) has one streaming candidate."""
        if stream:
            return "--subset does not go with --stream (one streaming candidate)"
        if self.rest == against:
            return ("the entries outside a subset need another runtime than the candidate "
                    f"({RUNTIME_LABELS.get(against, against)})")
        return None

    def describe(self, candidate: str) -> str:
        """Which entries run `candidate` (a runtime key, or what to call it) and which run the rest, in words."""
        n = self.count
        if self.kind == "first":
            which = f"the first {n} manifest entr{'y' if n == 1 else 'ies'}"
        else:
            suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
            nth = "" if n == 1 else f"{n}{suffix} "
            which = f"every {nth}manifest entry" + (" (from the first)" if n > 1 else "")
        return (f"{RUNTIME_LABELS.get(candidate, candidate)} on {which}, "
                f"{RUNTIME_LABELS.get(self.rest, self.rest)} on the rest")

    def to_json(self, against: str) -> dict[str, Any]:
        """The header's `subset`: part of the run's identity."""
        return {"spec": str(self), "candidate": against, "rest": self.rest,
                "rest_label": RUNTIME_LABELS.get(self.rest, self.rest)}


def candidate_name(label: str, runs_on: str | None) -> str:
    """How a candidate is named in text: its label, and what ran it where the label does not say."""
    return f"{label} ({runs_on})" if runs_on else label


def ran_on(label: str | None, runs_on: str | None) -> str | None:
    """What ran one utterance's candidate side, short, for a "ran on" column: the record's (or report row's)
    `runs_on` where the label alone does not say ("Apple Core AI runtime, Linux CPU"), else the candidate's label
    ("Core ML program, MIL interpreter"); None for a manifest line that named no clip."""
    return runs_on or label


@dataclass
class _Tally:
    name: str
    left: int = 0
    audio_left: float | None = 0.0  # None: some entry's duration is unknown
    ran: int = 0
    wall_s: float = 0.0
    audio_s: float = 0.0


@dataclass
class Estimate:
    """Expected time per candidate: the audio each has to run (`plan`), then a measured ETA (`finished`)."""

    tallies: dict[str, _Tally] = field(default_factory=dict)

    def add(self, key: str, name: str, entry: Utterance | ManifestError) -> None:
        from rnnt_tui.core.corpus.manifest import Utterance  # here: manifests need numpy; Subset alone does not

        tally = self.tallies.setdefault(key, _Tally(name))
        tally.left += 1
        duration = entry.duration if isinstance(entry, Utterance) else 0.0
        tally.audio_left = None if tally.audio_left is None or duration is None else tally.audio_left + duration

    def plan(self) -> str:
        """Before the first utterance: what each candidate has to run, and when a time estimate comes."""
        parts = [f"{t.name}: {t.left} utterance{'s' if t.left != 1 else ''}"
                 + (f", {t.audio_left:.1f} s of audio" if t.audio_left is not None else " (durations unknown)")
                 for t in self.tallies.values() if t.left]
        return ("to run — " + "; ".join(parts) + ". Time: estimate after the first utterance of each candidate."
                if parts else "nothing left to run")

    def finished(self, key: str, wall_s: float | None, duration_s: float | None, planned: float | None
                 ) -> tuple[float | None, str | None]:
        """One utterance of `key` finished (`planned`: its manifest duration). Returns the ETA (None until every
        candidate with work left has a measurement) and, on a candidate's first measurement, a sentence."""
        tally = self.tallies[key]
        tally.left -= 1
        if tally.audio_left is not None:
            tally.audio_left = max(0.0, tally.audio_left - (planned or 0.0))
        if wall_s is None:
            return self._eta(), None
        first = tally.ran == 0
        tally.ran += 1
        tally.wall_s += wall_s
        tally.audio_s += duration_s or 0.0
        eta = self._eta()
        if not first:
            return eta, None
        rtf = f"{wall_s / duration_s:.2g} s per audio second" if duration_s else f"{wall_s:.2g} s per utterance"
        left = "; about " + _duration(eta) + " left in all" if eta is not None else \
            "; the total comes after the first utterance of each candidate"
        return eta, f"estimate after the first utterance of {tally.name}: {rtf}{left}"

    def _eta(self) -> float | None:
        total = 0.0
        for t in self.tallies.values():
            if not t.left:
                continue
            if not t.ran:
                return None
            if t.audio_left is not None and t.audio_s > 0:
                total += t.wall_s / t.audio_s * t.audio_left
            else:
                total += t.wall_s / t.ran * t.left
        return total


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
