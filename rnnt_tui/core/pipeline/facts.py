"""What the pipeline needs to know about the reference model, behind one small protocol.

The comparison steps never reach into a NeMo model: they ask `ModelFacts` for the summary, the joint's fuse mode,
NeMo's own greedy transcript, the per-frame symbol cap and how tokens read as text. `NemoFacts` answers from a
restored model (`core.checkpoint.LoadedModel`); a recorded reference (a bundle) answers the same questions from
what was recorded, so one pipeline serves a live NeMo reference and a replayed one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rnnt_tui.core import fuse as fuse_mode
from rnnt_tui.core.fuse import JointMode

if TYPE_CHECKING:
    import numpy as np

    from rnnt_tui.core.checkpoint import LoadedModel
    from rnnt_tui.core.summary import ModelSummary


@dataclass(frozen=True)
class FuseView:
    """The joint's flags as the checkpoint has them and as the comparison uses them, and what
    `joint(encoder_outputs, decoder_outputs)` returns in the mode in force (NeMo's answer, or its error)."""

    mode: str
    saved: JointMode
    current: JointMode
    probe: str

    def to_json(self) -> dict[str, Any]:
        return {
            "fuse_loss_wer": {"found": self.saved.fuse_loss_wer, "used": self.current.fuse_loss_wer},
            "fused_batch_size": {"found": self.saved.fused_batch_size, "used": self.current.fused_batch_size},
            "log_softmax": {"found": self.saved.log_softmax, "used": self.current.log_softmax},
            "mode": self.mode,
            "explanation": fuse_mode.explain(self.mode, self.saved),
            "joint_returns": self.probe,
        }


class ModelFacts(Protocol):
    """The reference model as the pipeline sees it."""

    path: Path
    summary: ModelSummary
    sha256: str | None
    notes: list[str]

    def fuse(self) -> FuseView:
        """The joint's fuse mode now."""

    def set_joint_mode(self, mode: str) -> FuseView:
        """Put the reference joint in `mode` (`validation` or `as-saved`); returns the view now in force."""

    def apply(self) -> None:
        """Put the reference joint in this comparison's mode before it runs (sessions may share one model)."""

    def max_symbols(self) -> int | None:
        """NeMo's per-frame symbol cap for greedy decoding."""

    def text(self, tokens: list[int]) -> str:
        """Tokens as NeMo's decoding writes them."""

    def pieces(self, tokens: list[int]) -> list[str]:
        """Each token's vocabulary piece."""

    def nemo_greedy(self, encoded: np.ndarray, length: int) -> tuple[list[int] | None, str | None]:
        """NeMo's own greedy decoding of an encoder output: tokens and text (None where it cannot be had)."""


class NemoFacts:
    """`ModelFacts` of a model NeMo restored. The joint mode is named explicitly (never guessed from its flags:
    a checkpoint saved with validation flags is in both modes at once) and set only when asked."""

    def __init__(self, loaded: LoadedModel, mode: str = fuse_mode.AS_SAVED) -> None:
        self.loaded = loaded
        self.path = loaded.path
        self.summary = loaded.summary
        self.sha256: str | None = loaded.sha256
        self.notes = loaded.notes
        self._switch = fuse_mode.fuse_mode_of(loaded.model)
        self._mode = mode
        self._probe: str | None = None

    @property
    def mode(self) -> str:
        return self._mode

    def fuse(self) -> FuseView:
        if self._probe is None:
            self.apply()
            self._probe = fuse_mode.probe_joint(self.loaded.model).describe()
        return FuseView(mode=self._mode, saved=self._switch.saved, current=self._switch.current, probe=self._probe)

    def set_joint_mode(self, mode: str) -> FuseView:
        if mode not in fuse_mode.MODES:
            raise ValueError(f"unknown joint mode {mode!r}; choose one of {', '.join(fuse_mode.MODES)}")
        self._mode, self._probe = mode, None
        return self.fuse()

    def apply(self) -> None:
        """Put the shared model's joint in this comparison's mode (before each use: sessions share one model)."""
        self._switch.set(self._mode)

    def max_symbols(self) -> int | None:
        from rnnt_tui.core.nemo_decoding import max_symbols

        return max_symbols(self.loaded)

    def text(self, tokens: list[int]) -> str:
        from rnnt_tui.core.nemo_decoding import tokens_to_text

        return tokens_to_text(self.loaded, tokens)

    def pieces(self, tokens: list[int]) -> list[str]:
        from rnnt_tui.core.nemo_decoding import tokens_to_pieces

        return tokens_to_pieces(self.loaded, tokens)

    def nemo_greedy(self, encoded: np.ndarray, length: int) -> tuple[list[int] | None, str | None]:
        from rnnt_tui.core.nemo_decoding import nemo_greedy

        return nemo_greedy(self.loaded, encoded, length)
