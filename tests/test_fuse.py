"""Fuse mode: reading it, switching to validation mode and back exactly, and what the joint does in each."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from rnnt_tui.core.fuse import AS_SAVED, VALIDATION, JointMode, explain, fuse_mode_of, probe_joint


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", ["rnnt-char", "tdt"])
def test_switch_to_validation_and_back(loaded_model: Callable[[str], object], checkpoints: dict[str, Path],
                                       kind: str) -> None:
    before = _sha(checkpoints[kind])
    loaded = loaded_model(kind)
    joint = loaded.model.joint  # type: ignore[attr-defined]
    loss, wer = joint.loss, joint.wer
    assert loss is not None and wer is not None
    mode = fuse_mode_of(loaded.model)  # type: ignore[attr-defined]
    assert mode.saved == JointMode(fuse_loss_wer=True, fused_batch_size=4, log_softmax=None)
    assert mode.name == AS_SAVED

    saved_probe = probe_joint(loaded.model, frames=5, steps=3)  # type: ignore[attr-defined]
    assert not saved_probe.ok
    assert "fuse_loss_wer" in (saved_probe.error or "")

    mode.set(VALIDATION)
    assert mode.current == JointMode(fuse_loss_wer=False, fused_batch_size=4, log_softmax=False)
    assert mode.name == VALIDATION
    probe = probe_joint(loaded.model, frames=5, steps=3)  # type: ignore[attr-defined]
    classes = loaded.summary.joint.num_classes_with_blank  # type: ignore[attr-defined]
    assert probe.ok and probe.shape == [1, 5, 3, classes]
    assert "raw logits" in probe.describe()

    mode.set(AS_SAVED)
    assert mode.current == mode.saved
    assert joint.loss is loss and joint.wer is wer
    assert not probe_joint(loaded.model).ok  # type: ignore[attr-defined]
    assert _sha(checkpoints[kind]) == before


def test_log_softmax_none_returns_log_probs_on_cpu(loaded_model: Callable[[str], object]) -> None:
    import torch

    loaded = loaded_model("rnnt-char")
    joint = loaded.model.joint  # type: ignore[attr-defined]
    mode = fuse_mode_of(loaded.model)  # type: ignore[attr-defined]
    try:
        joint.set_fuse_loss_wer(False)
        assert joint.log_softmax is None
        enc, dec = torch.randn(1, joint.encoder_hidden, 3), torch.randn(1, joint.pred_hidden, 2)
        out = joint(encoder_outputs=enc, decoder_outputs=dec)
        assert torch.allclose(out.exp().sum(-1), torch.ones(1, 3, 2), atol=1e-5)
        mode.set(VALIDATION)
        raw = joint(encoder_outputs=enc, decoder_outputs=dec)
        assert torch.allclose(raw.log_softmax(-1), out, atol=1e-5)
        assert not torch.allclose(raw, out)
    finally:
        mode.set(AS_SAVED)
    assert mode.current == mode.saved


def test_explanations_say_what_each_mode_means() -> None:
    fused = JointMode(True, 4, None)
    assert "loss/WER" in explain(AS_SAVED, fused)
    assert "raw logits" in explain(VALIDATION, fused)
    assert "log-softmax" in explain(AS_SAVED, JointMode(False, None, None))
