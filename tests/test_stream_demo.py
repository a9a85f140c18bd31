"""The bundled streaming demo: a small cache-aware checkpoint that `rnnt-tui stream` runs on a fresh clone.

Regenerate it with ``python scripts/train_stream_demo.py --out assets/demo`` (see that script for the note on
how long it trained).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DEMO = Path(__file__).parents[1] / "assets" / "demo"
CLIPS = json.loads((DEMO / "stream-clips.json").read_text())


@pytest.fixture(scope="module")
def demo() -> Any:
    from rnnt_tui.core.checkpoint import restore
    from rnnt_tui.core.stream.config import stream_demo

    ckpt, _ = stream_demo()
    return restore(ckpt)


def test_demo_is_small_and_cache_aware(demo: Any) -> None:
    from rnnt_tui.core.stream.config import streaming_contexts

    assert demo.path.stat().st_size < 5 * 1024 * 1024
    assert demo.model.encoder.att_context_style == "chunked_limited"
    assert len(streaming_contexts(demo.path, demo.model.encoder)) == 2  # multi-lookahead
    assert all((DEMO / c["audio"]).is_file() for c in CLIPS)


def test_onnx_streams_the_demo_like_nemo(demo: Any) -> None:
    from rnnt_tui.core.stream.compare import run_stream
    from rnnt_tui.core.stream.config import StreamRequest, stream_demo

    ckpt, clip = stream_demo()
    report = run_stream(StreamRequest(ckpt, clip, "onnx"), lambda e: None, loaded=demo).to_json()
    assert report["status"] == "ok"
    assert len(report["chunks"]) >= 5
    decode = report["decode"]
    assert decode["candidate_text"] == decode["reference_text"] != ""
    assert decode["reference_text"] == decode["offline_text"] == CLIPS[-1]["text"]


@pytest.mark.parametrize("context", [[70, 13], [70, 1]])
def test_demo_streams_every_clip_exactly(demo: Any, context: list[int]) -> None:
    import soundfile as sf

    from rnnt_tui.core.nemo_decoding import tokens_to_text
    from rnnt_tui.core.stream.reference import nemo_chunks, set_context

    model = demo.eval()
    set_context(model, context)
    try:
        for clip in CLIPS:
            audio, rate = sf.read(str(DEMO / clip["audio"]), dtype="float32")
            *_, last = nemo_chunks(model, audio, rate)
            assert tokens_to_text(demo, last.tokens) == clip["text"], (context, clip)
    finally:
        set_context(model, [70, 13])


def test_windowed_offline_transcript_merges_to_the_one_pass(demo: Any) -> None:
    """Windows of the demo clip (5.3 s in windows of 2.8 s, 1.1 s overlap) merge by time into NeMo's one-pass
    transcript: no word lost or doubled at a seam, in order."""
    import soundfile as sf

    from rnnt_tui.core.stream.config import stream_demo
    from rnnt_tui.core.stream.offline import offline_tokens, offline_transcript
    from rnnt_tui.core.stream.reference import set_context

    _, clip = stream_demo()
    audio, rate = sf.read(str(clip), dtype="float32")
    model = demo.eval()
    set_context(model, [70, 13])
    windowed = offline_transcript(model, audio, [70, 13], 2.5, rate)
    assert windowed.how.mode == "windowed" and windowed.how.windows == 3
    assert windowed.tokens == offline_tokens(model, audio) != []
    assert offline_transcript(model, audio, [70, 13], 10.0, rate).how.mode == "full"
