"""WER and CER of a transcript against a manifest's `text`, with the edit operations, from a maintained library.

The edit distances come from jiwer (`process_words` / `process_characters`) when it is installed, else from
kaldialign, the aligner NeMo's own `word_error_rate` uses (a NeMo dependency, so always present). Both give the
minimum edit distance; only how ties split into substitutions, deletions and insertions may differ, so the run
records which one it used (`BACKEND`).

Normalisation (`normalise`, applied the same way to the manifest text and to every runtime's transcript):
Unicode NFKC, lower-case, every character that is not a letter, a digit or an apostrophe becomes a space
(so punctuation and hyphens split words), apostrophes not between two letters or digits are dropped, runs of
spaces collapse to one, and the ends are stripped. WER counts words of the normalised text; CER counts its
characters, spaces between words included (jiwer's and NeMo's convention).
"""

from __future__ import annotations

import importlib.util
import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

NORMALISATION = ("NFKC, lower-case, punctuation except word-internal apostrophes replaced by spaces, "
                 "spaces collapsed")
_NOT_WORD = re.compile(r"[^\w']|_", re.UNICODE)
_STRAY_APOSTROPHE = re.compile(r"(?<![^\W_])'|'(?![^\W_])", re.UNICODE)
_SPACES = re.compile(r"\s+")


def _backend() -> str:
    return "jiwer" if importlib.util.find_spec("jiwer") is not None else "kaldialign"


BACKEND = _backend()


def normalise(text: str) -> str:
    """The text WER and CER are computed on (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _NOT_WORD.sub(" ", text)
    text = _STRAY_APOSTROPHE.sub("", text)
    return _SPACES.sub(" ", text).strip()


@dataclass(frozen=True)
class ErrorCounts:
    """Edit operations turning the reference (manifest text) into a hypothesis, over words or characters."""

    length: int  # reference words (or characters)
    substitutions: int
    deletions: int
    insertions: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def hits(self) -> int:
        return self.length - self.substitutions - self.deletions

    @property
    def rate(self) -> float | None:
        """errors / reference length; None for an empty reference (the errors still count in corpus totals)."""
        return self.errors / self.length if self.length else None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "hits": self.hits, "errors": self.errors, "rate": self.rate}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ErrorCounts:
        return cls(int(data["length"]), int(data["substitutions"]), int(data["deletions"]), int(data["insertions"]))


@dataclass(frozen=True)
class TextScore:
    """A transcript scored against the manifest text: words (WER) and characters (CER)."""

    words: ErrorCounts
    chars: ErrorCounts

    def to_json(self) -> dict[str, Any]:
        return {"wer": self.words.rate, "cer": self.chars.rate, "words": self.words.to_json(),
                "chars": self.chars.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TextScore:
        return cls(ErrorCounts.from_json(data["words"]), ErrorCounts.from_json(data["chars"]))


def score(reference: str, hypothesis: str) -> TextScore:
    """WER and CER of `hypothesis` against `reference`, both normalised first."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    return TextScore(_counts(ref.split(), hyp.split(), ref, hyp, chars=False),
                     _counts(list(ref), list(hyp), ref, hyp, chars=True))


def _counts(ref: list[str], hyp: list[str], ref_text: str, hyp_text: str, chars: bool) -> ErrorCounts:
    if not ref or not hyp:  # nothing to align: every hypothesis item is inserted, every reference item deleted
        return ErrorCounts(len(ref), 0, len(ref), len(hyp))
    if BACKEND == "jiwer":
        import jiwer  # optional: only when scoring

        out = jiwer.process_characters(ref_text, hyp_text) if chars else jiwer.process_words(ref_text, hyp_text)
        return ErrorCounts(len(ref), out.substitutions, out.deletions, out.insertions)
    from kaldialign import edit_distance  # NeMo's aligner (nemo.collections.asr.metrics.wer)

    ops = edit_distance(ref, hyp)
    return ErrorCounts(len(ref), int(ops["sub"]), int(ops["del"]), int(ops["ins"]))
