"""The recorded model's facts: `BundleFacts` answers the pipeline's `ModelFacts` questions from a bundle.

The summary, the joint's fuse mode (as found and as used, and what `joint(enc, dec)` returned), NeMo's per-frame
symbol cap, NeMo's own transcript of each recorded clip, and tokens to text without NeMo: char models join their
labels; SentencePiece models join their pieces the way SentencePiece decodes them (`▁` is a space, `<0xNN>` pieces
are bytes). Record time checks this reading against NeMo's own on every vocabulary entry and on each recorded
transcript, and says in the bundle whether it agreed. Imports neither torch nor NeMo.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnt_tui.core.bundle.format import content_key
from rnnt_tui.core.errors import BadInputError
from rnnt_tui.core.fuse import JointMode
from rnnt_tui.core.pipeline.facts import FuseView
from rnnt_tui.core.summary import DecoderSummary, EncoderSummary, JointSummary, ModelSummary

if TYPE_CHECKING:
    import numpy as np

    from rnnt_tui.core.bundle.format import Bundle

CHAR = "char"
SENTENCEPIECE = "sentencepiece"
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def summary_from_json(data: dict[str, Any]) -> ModelSummary:
    """The inverse of `ModelSummary.to_json` (which leaves out the archive's member list)."""
    fields = dict(data)
    fields["encoder"] = EncoderSummary(**fields["encoder"])
    fields["decoder"] = DecoderSummary(**fields["decoder"])
    fields["joint"] = JointSummary(**fields["joint"])
    fields.setdefault("members", {})
    return ModelSummary(**fields)


def pieces_text(kind: str, pieces: list[str]) -> str:
    """Text from vocabulary pieces as NeMo's decoding writes it (char: joined; SentencePiece: decoded)."""
    if kind == CHAR:
        return "".join(pieces)
    out = bytearray()
    for piece in pieces:
        byte = _BYTE_PIECE.fullmatch(piece)
        if byte is not None:
            out.append(int(byte.group(1), 16))
        elif piece == "<unk>":
            out += " ⁇ ".encode()
        else:
            out += piece.replace("▁", " ").encode()
    text = out.decode("utf-8", errors="replace")
    # SentencePiece drops the dummy-prefix space of a leading `▁` piece (not the spaces around `<unk>`'s ⁇)
    return text[1:] if pieces and pieces[0].startswith("▁") else text


class Vocabulary:
    """Token ids to pieces and text, from the recorded vocabulary."""

    def __init__(self, kind: str, pieces: list[str]) -> None:
        self.kind = kind
        self.table = list(pieces)

    def pieces(self, tokens: list[int]) -> list[str]:
        return [self.table[t] if 0 <= t < len(self.table) else f"<{t}>" for t in tokens]

    def text(self, tokens: list[int]) -> str:
        return pieces_text(self.kind, [self.table[t] for t in tokens if 0 <= t < len(self.table)])


def fuse_view_from_json(data: dict[str, Any]) -> FuseView:
    return FuseView(mode=str(data["mode"]), saved=JointMode(**data["saved"]), current=JointMode(**data["current"]),
                    probe=str(data["probe"]))


def fuse_view_to_json(view: FuseView) -> dict[str, Any]:
    return {"mode": view.mode, "saved": view.saved.to_json(), "current": view.current.to_json(), "probe": view.probe}


class BundleFacts:
    """`ModelFacts` of a recorded reference. The joint mode is the one recorded; NeMo's transcripts are looked up
    by the encoder output they were made from."""

    def __init__(self, bundle: Bundle) -> None:
        model = bundle.meta["model"]
        self.bundle = bundle
        self.path = Path(model["checkpoint"])
        self.summary = summary_from_json(model["summary"])
        self.sha256: str | None = model.get("sha256")
        self.notes: list[str] = list(model.get("notes", []))
        self._fuse = fuse_view_from_json(model["fuse"])
        self._max_symbols = model.get("max_symbols")
        vocab = model["vocabulary"]
        self.vocabulary = Vocabulary(vocab["kind"], vocab["pieces"])
        self._nemo: dict[bytes, tuple[list[int] | None, str | None]] = {}
        for clip in bundle.meta["clips"]:
            encoded = bundle.array(clip["arrays"]["encoder.encoded"], mmap=True)
            length = int(bundle.array(clip["arrays"]["encoder.encoded_length"]).reshape(-1)[0])
            decode = clip["decode"]
            self._nemo[content_key(encoded[:, :, :length])] = (decode.get("nemo_tokens"), decode.get("nemo_text"))

    @property
    def mode(self) -> str:
        return self._fuse.mode

    def fuse(self) -> FuseView:
        return self._fuse

    def set_joint_mode(self, mode: str) -> FuseView:
        if mode != self._fuse.mode:
            raise BadInputError(self.bundle.path, f"was recorded in joint mode {self._fuse.mode}; the mode is fixed "
                                                  f"at record time (record again for {mode})")
        return self._fuse

    def apply(self) -> None:
        """Nothing to switch: the recorded joint already answered in its recorded mode."""

    def max_symbols(self) -> int | None:
        return None if self._max_symbols is None else int(self._max_symbols)

    def text(self, tokens: list[int]) -> str:
        return self.vocabulary.text(tokens)

    def pieces(self, tokens: list[int]) -> list[str]:
        return self.vocabulary.pieces(tokens)

    def nemo_greedy(self, encoded: np.ndarray, length: int) -> tuple[list[int] | None, str | None]:
        """NeMo's recorded transcript of this encoder output (None, None for an output never recorded)."""
        return self._nemo.get(content_key(encoded[:, :, :length]), (None, None))
