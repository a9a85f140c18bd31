"""`stream --cache-states`: the streaming step's cache_last_channel and cache_last_time in Core ML states
(`ct.StateType`, macOS 15 programs), run by the MIL interpreter here and by Core ML on a Mac (the Core ML test
stand-in elsewhere), against the same conversion with the caches as explicit inputs and outputs, and NeMo's loop.

The small cache-aware model is the session's `streaming` fixture (random weights: the comparison is arithmetic).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CLIP = Path(__file__).parents[1] / "assets" / "demo" / "hello-world.wav"


def _session(loaded: Any, against: str, cache_states: bool) -> Any:
    from rnnt_tui.core.stream.compare import StreamSession
    from rnnt_tui.core.stream.config import StreamRequest

    return StreamSession(StreamRequest(loaded.path, CLIP, against, cache_states=cache_states), lambda e: None,
                         loaded=loaded)


def _encoder_outputs(step: Any, loaded: Any, context: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each chunk's valid encoder output, teacher-forced and free-running, from `step` on NeMo's chunks."""
    from rnnt_tui.core.audio import load_audio
    from rnnt_tui.core.stream.reference import NemoStream

    reference = NemoStream(loaded, None)
    reference.begin(context)
    audio = load_audio(CLIP, 16000)
    caches = None
    out = []
    for ref in reference.chunks(audio.samples, 16000):
        first = ref.index == 0
        free = step(ref.features, ref.length, caches if caches is not None else ref.caches_in, first)
        teacher = step(ref.features, ref.length, ref.caches_in, first)
        caches = free[2]
        out.append((teacher[0][:, :, : teacher[1]], free[0][:, :, : free[1]]))
    return out


def _weights_bytes(package: Path) -> int:
    return sum(f.stat().st_size for f in package.rglob("*.bin") if f.parent.name == "weights")


def test_mil_cache_states_match_explicit_caches_and_nemo(streaming: Any) -> None:
    from rnnt_tui.core.coreml.spec import read_spec
    from rnnt_tui.core.stream.state_step import MULTIFUNCTION, MilStateStreamStep
    from rnnt_tui.core.stream.steps import MilStreamStep

    with _session(streaming, "mil", True) as session:
        stateful = session.compare(CLIP).to_json()
        step = session.steps[0]
        assert isinstance(step, MilStateStreamStep) and step.shared and step.path is not None
        context = list(stateful["att_context_size"])
        chunks = len(stateful["chunks"])
        # one state for the whole clip: chunk 0 writes the start caches into it, the first-chunk function's state is
        # the next-chunk function's, so it is carried from chunk 1 on; the teacher-forced feed writes the
        # reference's caches into the other state from chunk 1 on
        assert (step.carried, step.handovers, step.written) == (chunks - 1, 0, chunks)
        states = _encoder_outputs(step, streaming, context)
        package = step.path / MULTIFUNCTION
        assert sorted(p.name for p in step.path.iterdir() if p.suffix == ".mlpackage") == [MULTIFUNCTION]
        first, after = read_spec(package, "first"), read_spec(package, "next")
        assert first.functions == ("first", "next") and first.function == "first" and after.function == "next"
        assert first.state_names == after.state_names == ("cache_last_channel", "cache_last_time")
        assert first.input("features").shape[2] == step.frames["first"] != step.frames["next"]
        stateful_weights = _weights_bytes(package)
    with _session(streaming, "mil", False) as session:
        explicit = session.compare(CLIP).to_json()
        plain_step = session.steps[0]
        assert type(plain_step) is MilStreamStep and plain_step.path is not None
        plain = _encoder_outputs(plain_step, streaming, context)
        single = _weights_bytes(plain_step.path / "encoder-next.mlpackage")
    # the two functions' weights are stored once: about one single-phase package's, not two
    assert 0.9 * single < stateful_weights < 1.2 * single
    assert stateful["candidate"] == explicit["candidate"] == "Core ML program, MIL interpreter"
    assert stateful["caches_carried_in"].startswith("Core ML states")
    assert "multifunction package" in stateful["caches_carried_in"]
    assert explicit["caches_carried_in"] == "explicit inputs and outputs"
    assert stateful["status"] == explicit["status"] == "ok"
    assert len(states) == len(plain) == chunks >= 3
    for (tf_s, fr_s), (tf_p, fr_p) in zip(states, plain, strict=True):
        np.testing.assert_allclose(tf_s, tf_p, atol=1e-3, rtol=1e-3)
        np.testing.assert_allclose(fr_s, fr_p, atol=1e-3, rtol=1e-3)
    for chunk in stateful["chunks"]:
        assert chunk["ok"], chunk
        for feed in ("teacher_forced", "free_running"):
            assert chunk[feed]["outputs"][0]["max_abs"] < 1e-3
    d, e = stateful["decode"], explicit["decode"]
    assert d["candidate_text"] == e["candidate_text"] == d["reference_text"] and d["first_divergence"] is None


def test_cache_states_report_says_so(streaming: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rnnt_tui.cli import main

    md = tmp_path / "report.md"
    code = main(["stream", str(streaming.path), str(CLIP), "--against", "mil", "--cache-states", "--no-offline",
                 "--markdown", str(md)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "carried in Core ML states" in " ".join(out.split())
    assert "carried in Core ML states" in md.read_text()


@pytest.mark.parametrize("args", [["--against", "onnx"], ["--against", "mil", "--window", "2"]])
def test_cache_states_refused_where_it_cannot_work(streaming: Any, args: list[str],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Refused in one message (Rich may wrap it), exit 2, before NeMo restores anything."""
    from rnnt_tui.cli import main

    code = main(["stream", str(streaming.path), str(CLIP), *args, "--cache-states", "--json"])
    captured = capsys.readouterr()
    assert code == 2, captured
    assert captured.out == "" and captured.err.startswith("error: ") and captured.err.count("error:") == 1
    assert "Traceback" not in captured.err and "--cache-states" in captured.err


@pytest.mark.macos
def test_coreml_cache_states_through_core_ml(streaming: Any, core_ml_label: str) -> None:
    """The stateful packages predicted by Core ML: states made with `make_state`, `predict(..., state=)`."""
    from rnnt_tui.core.stream.state_step import CoreMLStateStreamStep

    with _session(streaming, "coreml", True) as session:
        report = session.compare(CLIP).to_json()
        step = session.steps[0]
        assert isinstance(step, CoreMLStateStreamStep) and step.shared
        # each function opened as its own model from the one package, one state made for both
        assert (step.carried, step.handovers) == (len(report["chunks"]) - 1, 0)
        assert any("(function first)" in n for n in step.notes) and any("(function next)" in n for n in step.notes)
    assert report["candidate"] == core_ml_label
    assert report["caches_carried_in"].startswith("Core ML states")
    for chunk in report["chunks"]:
        assert chunk["ok"] and chunk["free_running"]["outputs"][0]["max_abs"] < 1e-3, chunk
    assert report["decode"]["candidate_text"] == report["decode"]["reference_text"]


@pytest.fixture(scope="module")
def state_bundle(streaming: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`record --stream --cache-states` of the small model on one clip: the stateful programs recorded too."""
    from rnnt_tui.core.bundle.corpus_input import read_clips
    from rnnt_tui.core.bundle.record import record
    from rnnt_tui.core.pipeline.request import Settings

    clips, bad = read_clips(CLIP)
    assert len(clips) == 1 and not bad
    return record(streaming.path, clips, tmp_path_factory.mktemp("state-bundle") / "b", convert="fp32",
                  export_onnx=True, settings=Settings(runs=1, warmup=0), stream=True, cache_states=True)


def _replayed(bundle: Path, against: str, cache_states: bool) -> dict[str, Any]:
    from rnnt_tui.core.bundle.stream_replay import replay_stream

    report: dict[str, Any] = replay_stream(str(bundle), against, lambda e: None, cache_states=cache_states).to_json()
    return report


def test_recorded_stateful_step_replays_through_the_mil_interpreter(streaming: Any, state_bundle: Path) -> None:
    """The recorded stateful programs replay (no NeMo needed) with the caches in states, and the same bundle's
    explicit-cache programs as before; both against the recorded NeMo chunks, close to each other."""
    import json

    block = json.loads((state_bundle / "bundle.json").read_text())["stream"]
    steps = block["contexts"][0]["steps"]
    assert sorted(steps) == ["mil", "mil-states", "onnx"]
    # format 3: the stateful step is one multifunction package (an older rnnt-tui says to upgrade, not "missing")
    assert block["format"] == 3
    stateful, explicit = _replayed(state_bundle, "mil", True), _replayed(state_bundle, "mil", False)
    assert stateful["candidate"] == explicit["candidate"] == "Core ML program, MIL interpreter"
    assert stateful["caches_carried_in"].startswith("Core ML states")
    assert explicit["caches_carried_in"] == "explicit inputs and outputs"
    assert len(stateful["chunks"]) == len(explicit["chunks"]) >= 3
    for s, e in zip(stateful["chunks"], explicit["chunks"], strict=True):
        assert s["ok"] and e["ok"]
        assert s["free_running"]["outputs"][0]["max_abs"] < 1e-3
        assert s["teacher_forced"]["outputs"][0]["max_abs"] == pytest.approx(
            e["teacher_forced"]["outputs"][0]["max_abs"], abs=1e-3)
    assert stateful["decode"]["candidate_text"] == stateful["decode"]["reference_text"]


def test_replay_cache_states_refusals(state_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One line, exit 2: a candidate with no states, a streaming bundle recorded without them, an offline bundle;
    recording states without --stream is a usage error."""
    import json
    import shutil

    from rnnt_tui.cli import main

    def refused(*args: str) -> str:
        code = main(list(args))
        captured = capsys.readouterr()
        assert code == 2 and captured.out == "" and captured.err.count("error:") == 1, captured
        return " ".join(captured.err.split())

    assert "--cache-states needs a Core ML program" in refused("replay", str(state_bundle), "--against", "onnx",
                                                               "--cache-states")
    plain = tmp_path / "plain"
    shutil.copytree(state_bundle, plain)
    meta = json.loads((plain / "bundle.json").read_text())
    for context in meta["stream"]["contexts"]:
        del context["steps"]["mil-states"]
    (plain / "bundle.json").write_text(json.dumps(meta))
    line = refused("replay", str(plain), "--against", "mil", "--cache-states")
    assert "plain" in line and "recorded without --cache-states" in line
    del meta["stream"]
    (plain / "bundle.json").write_text(json.dumps(meta))
    assert "holds no streaming record" in refused("replay", str(plain), "--against", "mil", "--cache-states")
    if sys.platform != "darwin":  # Core ML predicts on macOS only: the reason, exit 3, never a made-up result
        assert main(["replay", str(state_bundle), "--against", "coreml", "--cache-states"]) == 3
        captured = capsys.readouterr()
        assert "macOS" in captured.err and "Core ML states" not in captured.out
    assert main(["record", str(CLIP), str(CLIP), "--out", str(tmp_path / "x"), "--cache-states"]) == 2
    assert "--cache-states records the stateful streaming step: it needs --stream" in capsys.readouterr().err


@pytest.mark.macos
def test_recorded_stateful_step_replays_through_core_ml(state_bundle: Path, core_ml_label: str) -> None:
    """On a Mac, Core ML predicts the recorded stateful programs (`make_state`, `predict(..., state=)`)."""
    report = _replayed(state_bundle, "coreml", True)
    assert report["candidate"] == core_ml_label and report["caches_carried_in"].startswith("Core ML states")
    for chunk in report["chunks"]:
        assert chunk["ok"] and chunk["free_running"]["outputs"][0]["max_abs"] < 1e-3, chunk
    assert report["decode"]["candidate_text"] == report["decode"]["reference_text"]


def test_two_stateful_packages_recorded_before_the_multifunction_one_still_run(streaming: Any,
                                                                               tmp_path: Path) -> None:
    """A folder with a stateful package per phase (what `record --cache-states` wrote before the multifunction
    package) still runs: its caches are handed over once, from the first-chunk program's state to the next one's."""
    from rnnt_tui.core.stream.state_step import CARRIES_TWO_PACKAGES, MilStateStreamStep
    from rnnt_tui.core.stream.steps import MilStreamStep

    context = [int(x) for x in streaming.eval().encoder.att_context_size]
    MilStreamStep._build(MilStateStreamStep(streaming, context, False), tmp_path)  # converted, not merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encoder-first.mlpackage", "encoder-next.mlpackage"]
    step = MilStateStreamStep.from_folder(tmp_path, context)
    assert not step.shared and step.carries == CARRIES_TWO_PACKAGES
    outputs = _encoder_outputs(step, streaming, context)
    chunks = len(outputs)
    # written: the start caches by both feeds on chunk 0, then the reference's by the teacher-forced feed
    assert chunks >= 3 and (step.carried, step.handovers, step.written) == (chunks - 2, 1, chunks + 1)
    for teacher, free in outputs:
        np.testing.assert_allclose(teacher, free, atol=1e-3, rtol=1e-3)
