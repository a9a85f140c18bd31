"""The joint's fuse mode: read it, switch to validation mode and back, and show what the joint returns.

`RNNTJoint.fuse_loss_wer` True (how NeMo's example configs save checkpoints) makes
`joint(encoder_outputs=, decoder_outputs=)` compute loss and WER in sub-batches instead of returning logits, and
`log_softmax=None` applies log-softmax on CPU but not on CUDA. Exported joints (ONNX, Core ML) emit raw logits.
Validation mode (fuse off, log_softmax False) is what NeMo's own export sets; it makes the reference joint
return the same quantity the exported one does. Switching back restores exactly what the checkpoint had,
including the loss and WER modules that `set_fuse_loss_wer(False)` would otherwise drop.
"""

from __future__ import annotations

import weakref
from dataclasses import asdict, dataclass
from typing import Any

AS_SAVED = "as-saved"
VALIDATION = "validation"
MODES = (AS_SAVED, VALIDATION)


@dataclass(frozen=True)
class JointMode:
    """The joint's mode flags."""

    fuse_loss_wer: bool
    fused_batch_size: int | None
    log_softmax: bool | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def returns(self) -> str:
        """What `joint(encoder_outputs=, decoder_outputs=)` returns in this mode, in words."""
        if self.fuse_loss_wer:
            return "loss and WER (fused training step); without lengths and transcripts it raises"
        if self.log_softmax is None:
            return "log-probabilities on CPU (log_softmax=None applies it off CUDA), raw logits on CUDA"
        return "log-probabilities" if self.log_softmax else "raw logits"


def explain(mode_name: str, saved: JointMode | None) -> str:
    """One line on what a mode means for the comparison (validation mode's does not depend on the saved flags)."""
    if mode_name == VALIDATION:
        return ("Validation mode: fuse off, log_softmax off - the reference joint returns raw logits, "
                "the same quantity NeMo's export and Core ML joints emit, so the diff is like for like.")
    if saved is None:
        return "As saved: the joint keeps the flags the checkpoint was saved with."
    if saved.fuse_loss_wer:
        return ("As saved: fuse_loss_wer is on, so NeMo's joint wants lengths and transcripts and returns "
                "loss/WER, not logits - the joint cannot be compared in this mode (greedy decode still works).")
    if saved.log_softmax is not False:
        return ("As saved: the joint applies log-softmax on CPU while exported joints emit raw logits - expect "
                "a large joint diff with full argmax agreement.")
    return "As saved: the checkpoint is already in validation mode (fuse off, raw logits)."


def read_mode(joint: Any) -> JointMode:
    """The joint module's current flags."""
    return JointMode(
        fuse_loss_wer=bool(joint.fuse_loss_wer),
        fused_batch_size=joint.fused_batch_size,
        log_softmax=joint.log_softmax,
    )


class FuseMode:
    """Switches one restored model's joint between the mode it was saved with and validation mode."""

    def __init__(self, model: Any) -> None:
        self._joint = model.joint
        self.saved = read_mode(self._joint)
        self._loss = self._joint.loss
        self._wer = self._joint.wer

    @property
    def current(self) -> JointMode:
        return read_mode(self._joint)

    @property
    def name(self) -> str:
        return AS_SAVED if self.current == self.saved else VALIDATION

    def set(self, mode_name: str) -> JointMode:
        """Switch to `as-saved` or `validation`; returns the mode now in force."""
        if mode_name == VALIDATION:
            self._joint.set_fuse_loss_wer(False)
            self._joint.log_softmax = False
        elif mode_name == AS_SAVED:
            if self.saved.fuse_loss_wer:
                self._joint.set_fuse_loss_wer(True, loss=self._loss, metric=self._wer)
            else:
                self._joint.set_fuse_loss_wer(False)
            self._joint.set_fused_batch_size(self.saved.fused_batch_size)
            self._joint.log_softmax = self.saved.log_softmax
        else:
            raise ValueError(f"unknown joint mode {mode_name!r}; choose one of {', '.join(MODES)}")
        return self.current


_MODES: weakref.WeakKeyDictionary[Any, FuseMode] = weakref.WeakKeyDictionary()


def fuse_mode_of(model: Any) -> FuseMode:
    """The one FuseMode of a model, created the first time it is asked for - by `restore`, before anything
    switches the joint - so every later Session knows what the checkpoint really had."""
    mode = _MODES.get(model.joint)
    if mode is None:
        mode = _MODES[model.joint] = FuseMode(model)
    return mode


@dataclass(frozen=True)
class JointProbe:
    """What calling `joint(encoder_outputs=, decoder_outputs=)` did in the current mode."""

    mode: JointMode
    ok: bool
    shape: list[int] | None
    error: str | None

    def describe(self) -> str:
        if self.ok and self.shape is not None:
            return f"logits of shape [{', '.join(map(str, self.shape))}] ({self.mode.returns})"
        return f"raises: {self.error}"


def probe_joint(model: Any, frames: int = 4, steps: int = 2) -> JointProbe:
    """Call the joint the way a validation script would, on small random inputs, and report what happened."""
    import torch  # heavy: only once a model is restored

    joint = model.joint
    enc = torch.randn(1, joint.encoder_hidden, frames)
    dec = torch.randn(1, joint.pred_hidden, steps)
    mode = read_mode(joint)
    try:
        with torch.inference_mode():
            out = joint(encoder_outputs=enc, decoder_outputs=dec)
    except Exception as exc:  # noqa: BLE001 - NeMo's own error text is the finding
        return JointProbe(mode=mode, ok=False, shape=None, error=f"{type(exc).__name__}: {exc}")
    if isinstance(out, torch.Tensor):
        return JointProbe(mode=mode, ok=True, shape=list(out.shape), error=None)
    return JointProbe(mode=mode, ok=False, shape=None, error=f"returned {type(out).__name__}, not logits")
