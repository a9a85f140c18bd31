"""The bundled demo checkpoint really transcribes its clips, and is saved in NeMo's fused joint mode.

Regenerate the assets with ``python scripts/train_demo.py --out assets/demo``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DEMO_DIR = Path(__file__).parents[1] / "assets" / "demo"
NEMO_PATH = DEMO_DIR / "demo-rnnt.nemo"
CLIPS = json.loads((DEMO_DIR / "clips.json").read_text())


@pytest.fixture(scope="module")
def demo_model():
    from nemo.collections.asr.models import ASRModel

    model = ASRModel.restore_from(str(NEMO_PATH), map_location="cpu")
    model.eval()
    return model


def _texts(result):
    if isinstance(result, tuple):  # older NeMo: (best, all)
        result = result[0]
    return [r.text if hasattr(r, "text") else str(r) for r in result]


def test_assets_present_and_small():
    assert NEMO_PATH.is_file()
    assert NEMO_PATH.stat().st_size < 5 * 1024 * 1024
    assert len(CLIPS) >= 3
    for clip in CLIPS:
        assert (DEMO_DIR / clip["audio"]).is_file()
        assert clip["text"] and clip["text"] == clip["text"].strip().lower()


@pytest.mark.parametrize("clip", CLIPS, ids=[c["audio"] for c in CLIPS])
def test_demo_transcribes_clip_exactly(demo_model, clip):
    demo_model.eval()
    texts = _texts(demo_model.transcribe([str(DEMO_DIR / clip["audio"])], batch_size=1, verbose=False))
    demo_model.eval()  # transcribe() leaves the modules in training mode
    assert texts == [clip["text"]]


def test_demo_transcribes_all_clips_in_one_batch(demo_model):
    demo_model.eval()
    paths = [str(DEMO_DIR / c["audio"]) for c in CLIPS]
    texts = _texts(demo_model.transcribe(paths, batch_size=len(paths), verbose=False))
    demo_model.eval()
    assert texts == [c["text"] for c in CLIPS]


def test_demo_joint_saved_in_fused_mode(demo_model):
    joint_cfg = demo_model.cfg.joint
    assert joint_cfg.fuse_loss_wer == True  # noqa: E712 - the config value itself must be true
    assert joint_cfg.fused_batch_size == 4
    assert joint_cfg.log_softmax is None
    assert demo_model.joint.fuse_loss_wer is True
