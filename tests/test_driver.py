"""The one driver: every front end runs steps and prepares candidates the same way, with one verdict per input.

Each test here failed before the change it covers: a converter crash read as "cannot run here"; `compare` skipped
the reference when the candidate could not run; `compare --sweep --markdown` wrote nothing; the app's path and
`replay` judged the same fp16 bundle with different tolerances; `record` and `replay` kept every clip's session;
the precision tools decoded with a symbol cap of their own; `mil_dtype` swallowed a type it could not hold.
"""

from __future__ import annotations

import gc
import json
import weakref
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from rnnt_tui.cli import main
from rnnt_tui.exit_codes import ExitCode


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_compare_runs_the_reference_when_the_candidate_cannot_run(capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  checkpoints: dict[str, Path], clip: Path) -> None:
    from rnnt_tui.core import runtimes

    monkeypatch.setitem(runtimes.RUNTIMES, "unavailable", "perturbed_runtime:UnavailableRuntime")
    code, out, err = _run(capsys, "compare", str(checkpoints["rnnt-char"]), str(clip), "--against", "unavailable",
                          "--runs", "1", "--warmup", "0", "--json")
    assert code == ExitCode.UNAVAILABLE, err
    report = json.loads(out)
    assert report["status"] == "unavailable" and report["candidate"]["reason"] == "it needs a machine this is not"
    assert [c["name"] for c in report["components"]] == ["preprocessor", "encoder", "decoder", "joint"]
    assert all(c["status"] == "reference-only" and c["outputs"][0]["shape_reference"] for c in report["components"])
    assert report["decode"]["reference_text"] is not None


def test_compare_sweep_writes_its_markdown(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                          checkpoints: dict[str, Path], clip: Path, tmp_path: Path) -> None:
    from rnnt_tui.core import runtimes

    monkeypatch.setitem(runtimes.RUNTIMES, "coreml", "perturbed_runtime:SweepableRuntime")
    markdown = tmp_path / "report.md"
    code, out, err = _run(capsys, "compare", str(checkpoints["rnnt-char"]), str(clip), "--against", "coreml",
                          "--sweep", "--runs", "1", "--warmup", "0", "--json", "--markdown", str(markdown))
    assert code == ExitCode.OK, err
    assert [row["status"] for row in json.loads(out)["sweep"]] == ["ok"] * 4
    text = markdown.read_text()
    assert "# rnnt-tui comparison" in text and "## Compute-unit sweep" in text
    assert text.count("| CPU_AND_NE | ok |") == 4  # one row per component of that unit


def test_the_driver_emits_each_step_once_in_order(loaded_model: Any, clip: Path) -> None:
    from rnnt_tui.core.audio import load_audio
    from rnnt_tui.core.components import STEPS
    from rnnt_tui.core.pipeline import events as ev
    from rnnt_tui.core.pipeline.driver import prepare_session, run_steps
    from rnnt_tui.core.pipeline.facts import NemoFacts
    from rnnt_tui.core.pipeline.request import Settings
    from rnnt_tui.core.runtimes.torch_runtime import TorchRuntime

    loaded = loaded_model("rnnt-char")
    settings = Settings(runs=1, warmup=0)
    session = prepare_session(NemoFacts(loaded, settings.joint_mode), load_audio(clip, 16000), TorchRuntime(loaded),
                              None, settings)
    seen: list[ev.Event] = []
    run_steps(session, STEPS, seen.append)
    steps = [(type(e).__name__, e.name) for e in seen if isinstance(e, ev.StepStarted | ev.StepFinished)]
    assert steps == [(kind, name) for name in STEPS for kind in ("StepStarted", "StepFinished")]
    finished = [e for e in seen if isinstance(e, ev.StepFinished)]
    assert [e.result.name for e in finished] == list(STEPS) and finished[-1].decode is not None


def test_mil_dtype_names_a_type_it_cannot_hold() -> None:
    from coremltools.converters.mil.mil import types

    from rnnt_tui.core.mil.kernels_base import mil_dtype

    class Unheard:
        """A MIL scalar type with no numpy counterpart."""

    assert mil_dtype(SimpleNamespace(name="y", sym_type=types.tensor(types.fp16, (2,)), dtype=types.fp16)) == \
        np.float16
    with pytest.raises(ValueError, match="'odd_out'"):  # was None: the output silently kept the kernel's dtype
        mil_dtype(SimpleNamespace(name="odd_out", sym_type=types.tensor(types.fp16, (2,)), dtype=Unheard))


def test_program_decoding_caps_symbols_per_frame_as_told() -> None:
    """The precision tools' program decode takes the model's own cap (`compare` uses it too), not a constant."""
    from rnnt_tui.core.precision.runs import ProgramDecoder, program_decode

    class NeverBlank(ProgramDecoder):
        def decoder_step(self, token: int, state: Any) -> tuple[Any, Any]:
            return np.zeros((1, 4, 1), np.float32), state

        def joint_step(self, frame: np.ndarray, decoder_output: Any) -> np.ndarray:
            return np.array([0.0, 1.0, 0.0], np.float32)  # token 1 always beats blank (0)

    encoded = np.zeros((1, 4, 3), np.float32)
    for cap in (2, 3):
        decoder = NeverBlank(None, None, 0, (1, 1, 4), max_symbols=cap)
        assert len(program_decode(decoder, encoded, 3, None)) == 3 * cap


def test_record_and_replay_release_each_clip_session(checkpoints: dict[str, Path], clip: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """While the third clip's session is made, the second's is gone (the first is the pipeline's own)."""
    from rnnt_tui.core.bundle.corpus_input import ClipInput
    from rnnt_tui.core.bundle.record import record
    from rnnt_tui.core.pipeline.pipeline import Pipeline
    from rnnt_tui.core.pipeline.request import Settings

    made: list[weakref.ref[Any]] = []
    alive_when_made: list[int] = []
    original = Pipeline.session_for

    def tracked(self: Pipeline, which: Any, settings: Any = None) -> Any:
        gc.collect()
        alive_when_made.append(sum(ref() is not None for ref in made))
        session = original(self, which, settings)
        made.append(weakref.ref(session))
        return session

    monkeypatch.setattr(Pipeline, "session_for", tracked)
    bundle = record(checkpoints["rnnt-char"], [ClipInput(clip)] * 3, tmp_path / "b", joint="full",
                    export_onnx=True, settings=Settings(runs=1, warmup=0))
    assert alive_when_made == [0, 0]
    made.clear()
    alive_when_made.clear()
    code, out, err = _run(capsys, "replay", str(bundle), "--against", "onnx", "--json")
    assert code == ExitCode.OK, err
    assert len(json.loads(out)["clips"]) == 3
    assert alive_when_made == [0, 0]


def test_an_fp16_bundle_gets_one_verdict_from_replay_and_from_the_app(checkpoints: dict[str, Path], clip: Path,
                                                                     tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 23, 1: a bundle recorded with `--convert fp16`, replayed against `mil` by `rnnt-tui replay` and opened
    the app's way (`Pipeline.open` with the recording as reference, options as the Runtimes tab sends them): the
    same fp16 tolerances, the same statuses."""
    from rnnt_tui.core.bundle.corpus_input import ClipInput
    from rnnt_tui.core.bundle.record import record
    from rnnt_tui.core.bundle.replay import recording_for
    from rnnt_tui.core.options import RuntimeOptions
    from rnnt_tui.core.pipeline.driver import run_steps
    from rnnt_tui.core.pipeline.pipeline import Pipeline
    from rnnt_tui.core.pipeline.request import Request, Settings
    from rnnt_tui.core.report import build_report
    from rnnt_tui.core.tolerances import FP16

    bundle = record(checkpoints["rnnt-char"], [ClipInput(clip)], tmp_path / "fp16", joint="full", convert="fp16",
                    settings=Settings(runs=1, warmup=0))
    code, out, _ = _run(capsys, "replay", str(bundle), "--against", "mil", "--json")
    replayed = json.loads(out)

    request = Request(bundle, bundle, "mil", RuntimeOptions(precision="fp32"), Settings(runs=1, warmup=0))
    pipeline = Pipeline()
    try:
        app = build_report(run_steps(pipeline.open(request, reference=recording_for(request))))
    finally:
        pipeline.close()

    fp16 = {name: {"atol": t.atol, "rtol": t.rtol} for name, t in FP16.items()}
    assert replayed["settings"]["tolerances"] == app["settings"]["tolerances"] == fp16
    assert [c["status"] for c in replayed["components"]] == [c["status"] for c in app["components"]]
    assert replayed["status"] == app["status"] and code == ExitCode(
        {"ok": 0, "mismatch": 1, "failed": 4, "unavailable": 3}[app["status"]])


def test_compare_corpus_replay_and_the_app_give_one_verdict(checkpoints: dict[str, Path], clip: Path,
                                                           tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """One checkpoint, one clip, ONNX Runtime: `compare`, `corpus` (a one-clip manifest), `record` then `replay`, and
    the app's way (`Pipeline.open` then `run_steps`, what the engine process runs) give the same status and the
    same worst |Δ| per component, the same transcripts and one verdict."""
    from rnnt_tui.core.bundle.corpus_input import ClipInput
    from rnnt_tui.core.bundle.record import record
    from rnnt_tui.core.components import COMPONENTS
    from rnnt_tui.core.pipeline.driver import run_steps
    from rnnt_tui.core.pipeline.pipeline import Pipeline
    from rnnt_tui.core.pipeline.request import Request, Settings
    from rnnt_tui.core.report import build_report

    checkpoint, once = checkpoints["rnnt-char"], ("--runs", "1", "--warmup", "0")

    def worst(report: dict[str, Any]) -> dict[str, tuple[str, float | None]]:
        """Per component: its status and the largest max |Δ| over its compared outputs (None: none compared)."""
        return {c["name"]: (c["status"], max((o["stats"]["max_abs"] for o in c["outputs"] if o.get("stats")),
                                             default=None))
                for c in report["components"]}

    code, out, err = _run(capsys, "compare", str(checkpoint), str(clip), "--against", "onnx", *once, "--json")
    compared = json.loads(out)
    assert code == ExitCode({"ok": 0, "mismatch": 1}[compared["status"]]), err

    pipeline = Pipeline()
    try:
        app = build_report(run_steps(pipeline.open(Request(checkpoint, clip, "onnx",
                                                           settings=Settings(runs=1, warmup=0)))))
    finally:
        pipeline.close()

    manifest = tmp_path / "one.json"
    manifest.write_text(json.dumps({"audio_filepath": str(clip)}) + "\n")
    code, out, err = _run(capsys, "corpus", str(checkpoint), str(manifest), "--against", "onnx",
                          "--out", str(tmp_path / "corpus"), "--json")
    assert code == ExitCode.OK, err
    [row] = json.loads(out)["utterances"]

    bundle = record(checkpoint, [ClipInput(clip)], tmp_path / "bundle", joint="full", export_onnx=True,
                    settings=Settings(runs=1, warmup=0))
    code, out, err = _run(capsys, "replay", str(bundle), "--against", "onnx", "--json")
    replayed = json.loads(out)  # one clip: its report itself
    assert code == ExitCode({"ok": 0, "mismatch": 1}[replayed["status"]]), err

    assert worst(compared).keys() == set(COMPONENTS)
    assert [max_abs is not None for _, max_abs in worst(compared).values()] == [False, True, True, True]
    for name, (status, max_abs) in worst(compared).items():
        for other in (worst(app), worst(replayed)):
            assert other[name][0] == status and other[name][1] == pytest.approx(max_abs, rel=1e-5, abs=1e-7), name
        if name != "preprocessor":  # (ONNX Runtime has no preprocessor: NeMo's export starts at the features)
            assert row[f"{name}_max_abs"] == pytest.approx(max_abs, rel=1e-5, abs=1e-7), name
    assert row["within_tolerance"] == all(s in ("done", "reference-only") for s, _ in worst(compared).values())
    texts = {(r["decode"]["reference_text"], r["decode"]["candidate_text"]) for r in (compared, app, replayed)}
    assert texts == {(row["reference_text"], row["candidate_text"])}
    assert compared["status"] == app["status"] == replayed["status"]
