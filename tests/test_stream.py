"""Cache-aware streaming: NeMo's chunked loop against the ONNX and MIL streaming steps, chunk by chunk.

A small chunked_limited model (two lookaheads) is built from config here (random weights: the comparison is about
the port's arithmetic, so words are not needed); the bundled trained demo is checked in test_stream_demo.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import factory
import numpy as np
import pytest

CLIP = Path(__file__).parents[1] / "assets" / "demo" / "hello-world.wav"


def _run(loaded: Any, against: str = "onnx", context: str | None = None, events: list[Any] | None = None) -> Any:
    from rnnt_tui.core.stream.compare import run_stream
    from rnnt_tui.core.stream.config import StreamRequest

    sink = events if events is not None else []
    return run_stream(StreamRequest(loaded.path, CLIP, against, context), sink.append, loaded=loaded)


def test_streaming_cfg_and_refusal(streaming: Any, loaded_model: Any) -> None:
    from rnnt_tui.core.errors import BadInputError
    from rnnt_tui.core.stream.config import choose_contexts, streaming_problem

    assert streaming_problem(streaming.model.encoder) is None
    assert choose_contexts(streaming.path, streaming.model.encoder, "all") == factory.STREAMING_ATT_CONTEXTS
    assert choose_contexts(streaming.path, streaming.model.encoder, "70,1") == [[70, 1]]
    with pytest.raises(BadInputError, match="not one the model was trained with"):
        choose_contexts(streaming.path, streaming.model.encoder, "70,5")
    offline = loaded_model("rnnt-char")
    problem = streaming_problem(offline.model.encoder)
    assert problem is not None and "att_context_style 'regular'" in problem


def test_onnx_stream_matches_nemo_chunk_by_chunk(streaming: Any) -> None:
    from rnnt_tui.core.stream.compare import ChunkCompared
    from rnnt_tui.core.stream.reference import nemo_chunks, set_context

    events: list[Any] = []
    result = _run(streaming, events=events)
    report = result.to_json()
    assert set(report) >= {"chunks", "decode", "streaming_cfg", "att_context_size"}
    assert set(report["decode"]) >= {"reference_text", "offline_text", "candidate_text", "first_divergence"}
    assert report["att_context_size"] == factory.STREAMING_ATT_CONTEXTS[0]
    # as many chunks as NeMo's own loop makes, each announced as it finished
    set_context(streaming.model, factory.STREAMING_ATT_CONTEXTS[0])
    import soundfile as sf

    audio, _ = sf.read(str(CLIP), dtype="float32")
    nemo = list(nemo_chunks(streaming.eval(), audio, 16000))
    assert len(report["chunks"]) == len(nemo) >= 2
    assert [e.chunk.index for e in events if isinstance(e, ChunkCompared)] == list(range(len(nemo)))
    for chunk, ref in zip(report["chunks"], nemo, strict=True):
        assert chunk["ok"], chunk
        for feed in ("teacher_forced", "free_running"):
            lens = chunk[feed]["cache_last_channel_len"]
            assert lens["reference"] == lens["candidate"] == int(ref.caches_out["cache_last_channel_len"][0])
            assert [o["name"] for o in chunk[feed]["outputs"]] == ["encoded", "cache_last_channel",
                                                                   "cache_last_time"]
            assert 0 <= chunk[feed]["outputs"][0]["max_abs"] < 1e-3
    decode = report["decode"]
    assert decode["candidate_text"] == decode["reference_text"] and decode["first_divergence"] is None
    assert "".join(c["tokens"]["reference_text"] for c in report["chunks"]) == decode["reference_text"]
    assert report["algorithmic_latency_ms"] == pytest.approx((13 + 1) * 40.0)
    assert result.status == "ok"


class _DriftingStep:
    """A candidate whose time cache drifts a little each chunk: a port bug the free-running feed must show."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __call__(self, features: np.ndarray, length: int, caches: Any, first: bool) -> Any:
        encoded, n, out = self.inner(features, length, caches, first)
        out = dict(out)
        out["cache_last_time"] = out["cache_last_time"] + 0.05
        return encoded, n, out


def test_drift_shows_in_free_running_not_teacher_forced(streaming: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from rnnt_tui.core.stream import compare, steps

    def drifting(loaded: Any, context: list[int], use_cache: bool = True) -> Any:
        return _DriftingStep(steps.OnnxStreamStep(loaded, context, use_cache))

    monkeypatch.setitem(compare.STEPS, "onnx", drifting)
    report = _run(streaming).to_json()
    assert report["status"] == "mismatch"
    chunks = report["chunks"]
    # each chunk's own caches out are off by the drift under both feeds ...
    assert all(c["teacher_forced"]["outputs"][2]["max_abs"] == pytest.approx(0.05, abs=1e-3) for c in chunks)
    # ... but only free-running feeds the drifted caches back in: the encoder output after chunk 0 moves
    assert chunks[0]["free_running"]["outputs"][0]["max_abs"] < 1e-3
    assert max(c["free_running"]["outputs"][0]["max_abs"] for c in chunks[1:]) > 1e-3
    assert all(c["teacher_forced"]["outputs"][0]["max_abs"] < 1e-3 for c in chunks)


def test_every_lookahead_gets_a_row(streaming: Any) -> None:
    report = _run(streaming, context="all").to_json()
    rows = report["contexts"]
    assert [r["att_context_size"] for r in rows] == factory.STREAMING_ATT_CONTEXTS
    assert rows[0]["latency_ms"] > rows[1]["latency_ms"]
    assert rows[1]["chunks"] > rows[0]["chunks"]
    assert all(r["identical_transcript"] for r in rows)
    assert report["per_context"][0]["att_context_size"] == [70, 1]
    from rnnt_tui.core.textmetrics import wer

    for row, context in zip(rows, [report, *report["per_context"]], strict=True):  # WER vs NeMo's offline text
        decode = context["decode"]
        assert row["wer_vs_offline"] == decode["wer_vs_offline"] == {
            "candidate": wer(decode["offline_text"], decode["candidate_text"]),
            "nemo_streaming": wer(decode["offline_text"], decode["reference_text"])}


def test_mil_stream_matches_nemo(streaming: Any) -> None:
    report = _run(streaming, against="mil").to_json()
    assert report["candidate"] == "Core ML program, MIL interpreter"
    chunks = report["chunks"]
    for chunk in chunks[:-1]:
        assert chunk["ok"] and chunk["free_running"]["outputs"][0]["max_abs"] < 1e-3
    last = chunks[-1]  # shorter than the fixed program: zero-padded, its caches shown but not judged
    assert last["free_running"]["outputs"][0]["max_abs"] < 1e-3
    assert any("zero-padded" in n for n in last["notes"])
    assert report["decode"]["candidate_text"] == report["decode"]["reference_text"]


def test_offline_transcript_windowed_above_the_threshold_or_skipped(streaming: Any) -> None:
    """A clip longer than the offline window gets NeMo's offline transcript in chunk-aligned windows, and every
    output says so; `offline=False` (`--no-offline`) skips it and says that instead."""
    from rnnt_tui.core.stream.compare import run_stream
    from rnnt_tui.core.stream.config import StreamRequest
    from rnnt_tui.core.stream.markdown import to_markdown

    windowed = run_stream(StreamRequest(streaming.path, CLIP, offline_window_s=0.5), lambda e: None,
                          loaded=streaming)
    how = windowed.contexts[0].offline_how
    assert how.mode == "windowed" and how.windows >= 2  # a 1.26 s clip in windows of two 0.56 s chunks
    assert how.window_s == pytest.approx(2 * 0.56) and how.overlap_s == pytest.approx(0.56)
    report = windowed.to_json()
    assert report["decode"]["offline"] == how.to_json() and report["decode"]["offline"]["mode"] == "windowed"
    assert f"windowed: {how.windows} windows of 1.12 s" in to_markdown(report)
    assert report["decode"]["streaming_equals_offline"] == (report["decode"]["reference_text"]
                                                            == report["decode"]["offline_text"])

    skipped = run_stream(StreamRequest(streaming.path, CLIP, offline=False), lambda e: None, loaded=streaming)
    context = skipped.contexts[0]
    assert context.offline_how.mode == "skipped" and context.offline_text == "" and context.wer_vs_offline is None
    assert context.offline_vs_streaming is None and context.streaming_equals_offline is None
    decode = skipped.to_json()["decode"]
    assert decode["offline"]["mode"] == "skipped" and decode["streaming_equals_offline"] is None
    assert "skipped (--no-offline)" in to_markdown(skipped.to_json())
    # the streaming side does not depend on how the offline transcript was made
    assert context.reference_text == windowed.contexts[0].reference_text


def test_streaming_buffer_reuses_its_preprocessor_and_cuts_nemos_chunks(streaming: Any) -> None:
    """The reference's buffer builds NeMo's streaming preprocessor once per model, and its chunks are exactly the
    ones NeMo's own `CacheAwareStreamingAudioBuffer` cuts."""
    import soundfile as sf
    import torch
    from nemo.collections.asr.parts.utils.streaming_utils import CacheAwareStreamingAudioBuffer

    from rnnt_tui.core.stream.reference import streaming_buffer

    audio, _ = sf.read(str(CLIP), dtype="float32")
    model = streaming.eval()
    ours, again = streaming_buffer(model), streaming_buffer(model)
    assert ours.preprocessor is again.preprocessor
    nemo = CacheAwareStreamingAudioBuffer(model, online_normalization=False, pad_and_drop_preencoded=False)
    assert nemo.preprocessor is not ours.preprocessor
    for buffer in (ours, nemo):
        buffer.append_audio(audio, stream_id=-1)
    pairs = list(zip(ours, nemo, strict=True))
    assert len(pairs) > 2
    for (chunk, length), (expected, expected_length) in pairs:
        assert torch.equal(chunk, expected) and torch.equal(length, expected_length)
