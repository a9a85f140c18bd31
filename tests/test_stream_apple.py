"""Streaming against Apple's runtimes: the streaming encoder step converted with coreai-torch and run by the Core AI
runtime, and the step's Core ML packages predicted by Core ML (on a Mac; the Core ML test stand-in elsewhere, and
off a Mac without it: converted, then refused with the reason).

The small cache-aware model is the session's `streaming` fixture (random weights: the comparison is about the
port's arithmetic). Core AI conversion is the slow part: one run here converts both phases once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from rnnt_tui.core.coreai.platform import coreai_problem

CLIP = Path(__file__).parents[1] / "assets" / "demo" / "hello-world.wav"


def _run(loaded: Any, against: str) -> Any:
    from rnnt_tui.core.stream.compare import run_stream
    from rnnt_tui.core.stream.config import StreamRequest

    return run_stream(StreamRequest(loaded.path, CLIP, against), lambda e: None, loaded=loaded)


def _bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _judged_chunks_close(report: dict[str, Any]) -> None:
    chunks = report["chunks"]
    assert len(chunks) >= 2
    for chunk in chunks:
        for feed in ("teacher_forced", "free_running"):
            assert chunk[feed]["outputs"][0]["max_abs"] < 1e-3, (chunk["index"], feed)
            lens = chunk[feed]["cache_last_channel_len"]
            assert lens["equal"] or chunk["notes"], chunk  # the padded last chunk's caches are shown, not judged
        assert chunk["ok"], chunk
    assert any("zero-padded" in n for n in chunks[-1]["notes"])  # fixed-shape programs: the short last chunk
    decode = report["decode"]
    assert decode["candidate_text"] == decode["reference_text"] and decode["first_divergence"] is None


@pytest.mark.skipif(coreai_problem(need_converter=True) is not None,
                    reason=f"Core AI cannot run here: {coreai_problem(need_converter=True)}")
def test_coreai_stream_matches_nemo(streaming: Any) -> None:
    from rnnt_tui.core.coreai.platform import where_it_runs
    from rnnt_tui.core.progress import no_progress
    from rnnt_tui.core.stream.coreai_step import CoreAIStreamStep

    result = _run(streaming, "coreai")
    report = result.to_json()
    assert report["candidate"].startswith("Core AI (") and where_it_runs() in report["candidate"]
    assert report["status"] == "ok"
    _judged_chunks_close(report)
    assert any("built in" in n for n in report["candidate_notes"])
    # cached like the other conversions: a second step for the same context is served from the cache
    again = CoreAIStreamStep(streaming, list(report["att_context_size"]))
    try:
        again.prepare(no_progress)
        assert again.cached and set(again.frames) == {"first", "next"}
        assert report["chunks"][0]["feature_frames"] <= again.frames["first"]
    finally:
        again.close()


@pytest.mark.skipif(coreai_problem(need_converter=True) is not None,
                    reason=f"Core AI cannot run here: {coreai_problem(need_converter=True)}")
def test_coreai_cache_states_carry_the_caches_in_core_ai_states(streaming: Any,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """`--cache-states --against coreai`: the two float caches in Core AI states (the function's state arrays,
    updated in place by the runtime), one state for the whole clip across the first-chunk and next-chunk functions.
    Core AI keeps them in fp32, so the caches stay as close to NeMo as the explicit step's (Core ML's fp16 states
    drift to ~1e-3); the report says Core AI states, never Core ML."""
    from rnnt_tui.cli import main
    from rnnt_tui.core.coreai.assets import read_asset
    from rnnt_tui.core.progress import no_progress
    from rnnt_tui.core.stream.compare import StreamSession
    from rnnt_tui.core.stream.config import StreamRequest
    from rnnt_tui.core.stream.coreai_step import MULTIFUNCTION, CoreAIStateStreamStep, CoreAIStreamStep

    with StreamSession(StreamRequest(streaming.path, CLIP, "coreai", cache_states=True), lambda e: None,
                       loaded=streaming) as session:
        report = session.compare(CLIP).to_json()
        step = session.steps[0]
        assert isinstance(step, CoreAIStateStreamStep) and step.shared
        chunks = len(report["chunks"])
        assert (step.carried, step.handovers, step.written) == (chunks - 1, 0, chunks)
        for phase in ("first", "next"):
            desc = step.functions[phase].desc
            assert list(desc.input_names) == ["features", "length", "cache_last_channel_len"]
            assert sorted(desc.state_names) == ["cache_last_channel", "cache_last_time"]
        # one asset, a function per phase, the weights stored once (about one explicit single-phase asset's bytes)
        assert step.path is not None and [p.name for p in step.path.glob("*.aimodel")] == [MULTIFUNCTION]
        assert sorted(read_asset(step.path / MULTIFUNCTION).functions) == ["first", "next"]
        explicit = CoreAIStreamStep(streaming, list(report["att_context_size"]))
        try:
            explicit.prepare(no_progress)
            assert explicit.path is not None
            single = _bytes(explicit.path / "encoder-next.aimodel")
        finally:
            explicit.close()
        assert single < _bytes(step.path / MULTIFUNCTION) < 1.2 * single
    assert report["candidate"].startswith("Core AI (")
    assert report["caches_carried_in"].startswith("Core AI states") and "Core ML" not in report["caches_carried_in"]
    _judged_chunks_close(report)
    for chunk in report["chunks"][:-1]:  # the padded last chunk's caches are shown, not judged
        for feed in ("teacher_forced", "free_running"):
            assert max(o["max_abs"] for o in chunk[feed]["outputs"]) < 1e-4, (chunk["index"], feed)
    assert main(["stream", str(streaming.path), str(CLIP), "--against", "coreai", "--cache-states",
                 "--no-offline"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "carried in Core AI states" in out and "Core ML states" not in out


@pytest.mark.macos
def test_coreml_stream_predicts_the_step(streaming: Any, core_ml_label: str) -> None:
    report = _run(streaming, "coreml").to_json()
    assert report["candidate"] == core_ml_label
    _judged_chunks_close(report)
    assert any("chunk:" in n and "loaded on" in n for n in report["candidate_notes"])


@pytest.mark.skipif(sys.platform == "darwin", reason="Core ML runs on a Mac: nothing to refuse")
def test_coreml_stream_off_macos_converts_then_refuses(streaming: Any, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from rnnt_tui.core.errors import RuntimeUnavailableError
    from rnnt_tui.core.progress import no_progress
    from rnnt_tui.core.stream.config import choose_contexts
    from rnnt_tui.core.stream.steps import MilStreamStep

    monkeypatch.setenv("RNNT_TUI_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(RuntimeUnavailableError, match="macOS"):
        _run(streaming, "coreml")
    # the step's packages were converted before the refusal (and are the ones the MIL interpreter runs)
    step = MilStreamStep(streaming, choose_contexts(streaming.path, streaming.model.encoder, None)[0])
    step.prepare(no_progress)
    assert step.cached and set(step.frames) == {"first", "next"}
