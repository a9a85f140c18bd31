"""Words with times, and what a windowed transcript lost, doubled or changed against the full-context one.

Tokens become words through the model's own pieces (`tokens_to_pieces`): a char model's space token ends a word,
a SentencePiece piece starting with "▁" starts one. Each word keeps the time of its first token. The windowed and
full-context word lists are aligned with difflib; every difference is attributed to the nearest seam.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Word:
    text: str
    time_s: float


def words(pieces: list[str], times: list[float]) -> list[Word]:
    out: list[Word] = []
    current, start = "", 0.0
    for piece, t in zip(pieces, times, strict=True):
        boundary = piece == " " or piece.startswith("▁")
        text = piece.lstrip("▁") if piece != " " else ""
        if boundary and current:
            out.append(Word(current, start))
            current = ""
        if text:
            if not current:
                start = t
            current += text
    if current:
        out.append(Word(current, start))
    return out


@dataclass(frozen=True)
class Edit:
    side: str  # "reference" (NeMo windowed) or "candidate"
    kind: str  # "lost", "doubled", "changed", "added"
    full: str
    windowed: str
    time_s: float

    def to_json(self) -> dict[str, Any]:
        return {"side": self.side, "kind": self.kind, "full": self.full, "windowed": self.windowed,
                "time_s": round(self.time_s, 3)}


def edits(side: str, full: list[Word], windowed: list[Word]) -> list[Edit]:
    """Word-level differences of `windowed` against `full`."""
    a, b = [w.text for w in full], [w.text for w in windowed]
    out: list[Edit] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        full_text, win_text = " ".join(a[i1:i2]), " ".join(b[j1:j2])
        time = full[i1].time_s if i1 < i2 else windowed[j1].time_s
        if op == "delete":
            kind = "lost"
        elif op == "insert":
            near = set(a[max(0, i1 - 2): i1 + 2])
            kind = "doubled" if all(w in near for w in b[j1:j2]) else "added"
        else:
            kind = "changed"
        out.append(Edit(side, kind, full_text, win_text, time))
    return out


def by_seam(all_edits: list[Edit], seams_s: list[float]) -> list[dict[str, Any]]:
    """Each seam with the edits nearest to it (edits farther than any seam from it go to the closest anyway)."""
    groups: list[dict[str, Any]] = [{"index": i, "time_s": round(s, 3), "edits": []} for i, s in enumerate(seams_s)]
    for e in all_edits:
        if not groups:
            break
        nearest = min(groups, key=lambda g: abs(g["time_s"] - e.time_s))
        nearest["edits"].append(e.to_json())
    return groups
