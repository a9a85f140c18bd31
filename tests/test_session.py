"""The comparison engine on PyTorch: decode equality with NeMo, shapes, exact self-agreement, perturbations."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import factory
import numpy as np
import pytest
import torch
from perturbed_runtime import PerturbedRuntime

from rnnt_tui.core.audio import load_audio
from rnnt_tui.core.checkpoint import copy_model
from rnnt_tui.core.fuse import AS_SAVED, VALIDATION, fuse_mode_of
from rnnt_tui.core.names import Status
from rnnt_tui.core.pipeline.driver import prepare_session, run_steps
from rnnt_tui.core.pipeline.facts import NemoFacts
from rnnt_tui.core.pipeline.request import Settings
from rnnt_tui.core.pipeline.session import Session
from rnnt_tui.core.runtimes.torch_runtime import TorchRuntime
from rnnt_tui.paths import demo_dir

DONE, FAILED, MISMATCH = Status.DONE, Status.FAILED, Status.MISMATCH
FAST = Settings(runs=2, warmup=0)


def _session(loaded: Any, clip: Path, candidate: Any = None, settings: Settings = FAST) -> Session:
    audio = load_audio(clip, loaded.summary.sample_rate)
    return prepare_session(NemoFacts(loaded, settings.joint_mode), audio, TorchRuntime(loaded), candidate, settings)


@pytest.fixture(autouse=True)
def _restore_fuse(loaded_model: Callable[[str], Any]) -> Any:
    """Sessions switch the shared models to validation mode; give the next test the checkpoint's own mode."""
    modes = {kind: fuse_mode_of(loaded_model(kind).model) for kind in factory.KINDS}
    yield
    for mode in modes.values():
        mode.set(AS_SAVED)


@pytest.mark.parametrize("kind", factory.KINDS)
def test_pipeline_shapes_and_decode_equal_nemo(loaded_model: Callable[[str], Any], clip: Path, kind: str) -> None:
    loaded = loaded_model(kind)
    session = _session(loaded, clip)
    run_steps(session)
    s = loaded.summary
    up = session.ctx.upstream
    assert up.features is not None and up.encoded is not None
    features = up.features["features"]
    encoded = up.encoded["encoded"]
    assert features.shape[:2] == (1, s.n_mels)
    assert encoded.shape[:2] == (1, s.encoder.d_model)
    frames = int(up.encoded["encoded_length"][0])
    feature_frames = int(up.features["features_length"][0])
    assert frames == -(-feature_frames // s.encoder.subsampling_factor)
    joint = session.results["joint"]
    tokens = session.decode_comparison.reference_tokens
    assert joint.reference_outputs[0].shape == (1, frames, len(tokens) + 1, s.joint.num_classes_with_blank)
    assert session.decode_comparison.nemo_tokens == tokens
    assert session.decode_comparison.matches_nemo
    assert all(r.status == DONE for r in session.results.values()), {n: r.error for n, r in session.results.items()}


def test_demo_model_decodes_its_clips_from_components(loaded_model: Callable[[str], Any]) -> None:
    import json

    from rnnt_tui.core.checkpoint import restore

    loaded = restore(demo_dir() / "demo-rnnt.nemo")
    for clip in json.loads((demo_dir() / "clips.json").read_text()):
        session = _session(loaded, demo_dir() / clip["audio"])
        session.run_step("decode")
        assert session.decode_comparison.reference_text == clip["text"]
        assert session.decode_comparison.nemo_text == clip["text"]


def test_pytorch_against_itself_is_exactly_zero(loaded_model: Callable[[str], Any], clip: Path) -> None:
    loaded = loaded_model("tdt")
    session = _session(loaded, clip, TorchRuntime(loaded))
    run_steps(session)
    for name in ("preprocessor", "encoder", "decoder", "joint"):
        result = session.results[name]
        assert result.status == DONE
        for row in result.comparisons:
            assert row.stats is not None and row.stats.max_abs == 0.0, (name, row.name)
    assert session.decode_comparison.token_agreement == 1.0 and session.decode_comparison.wer == 0.0


@pytest.mark.parametrize(("target", "component"), [("joint.joint_net.2.weight", "joint"),
                                                    ("decoder.prediction.embed.weight", "decoder"),
                                                    ("encoder.layers.1.norm_out.bias", "encoder")])
def test_perturbed_candidate_is_caught_at_the_right_component(loaded_model: Callable[[str], Any], clip: Path,
                                                              target: str, component: str) -> None:
    loaded = loaded_model("rnnt-char")
    session = _session(loaded, clip, PerturbedRuntime(loaded, target=target, amount=0.05))
    run_steps(session)
    statuses = {name: session.results[name].status for name in ("preprocessor", "encoder", "decoder", "joint")}
    assert statuses[component] == MISMATCH
    assert all(status == DONE for name, status in statuses.items() if name != component), statuses


def test_chunked_joint_equals_whole_grid(loaded_model: Callable[[str], Any], clip: Path) -> None:
    """Same statistics chunked or whole (the stats themselves are proven chunk-exact in test_stats; here the
    logits of a chunked call may differ from a whole-grid call in the last ulp, as BLAS picks other kernels)."""
    loaded = loaded_model("tdt")
    results = []
    for chunk in (0, 5):
        session = _session(loaded, clip, PerturbedRuntime(loaded, target="joint.joint_net.2.weight", amount=1e-3),
                           Settings(runs=1, warmup=0, joint_chunk_frames=chunk))
        results.append(session.run_step("joint"))
    whole, chunked = (r.comparisons[0].stats for r in results)
    assert whole is not None and chunked is not None
    assert chunked.max_abs == pytest.approx(whole.max_abs, rel=1e-4)
    assert chunked.max_abs_index == whole.max_abs_index
    assert chunked.argmax_agreement == whole.argmax_agreement and chunked.count == whole.count
    assert chunked.rmse == pytest.approx(whole.rmse, rel=1e-4)
    assert chunked.cosine == pytest.approx(whole.cosine, abs=1e-9)
    np.testing.assert_allclose(results[0].maps["cell_max_abs"], results[1].maps["cell_max_abs"], rtol=1e-4)


def test_as_saved_fused_joint_fails_with_nemos_error_and_the_rest_goes_on(loaded_model: Callable[[str], Any],
                                                                          clip: Path) -> None:
    loaded = loaded_model("rnnt-bpe")
    session = _session(loaded, clip, TorchRuntime(loaded), Settings(runs=1, warmup=0, joint_mode=AS_SAVED))
    run_steps(session)
    joint = session.results["joint"]
    assert joint.status == FAILED and "fuse_loss_wer" in (joint.error or "")
    assert session.results["decode"].status == DONE
    session.set_joint_mode(VALIDATION)
    assert session.run_step("joint").status == DONE


class _Broken(TorchRuntime):
    name = "broken"
    label = "broken runtime"

    def bind(self, component: str, inputs: dict[str, np.ndarray]) -> Any:
        if component == "encoder":
            raise RuntimeError("the encoder graph failed to load")
        return super().bind(component, inputs)


def test_candidate_raising_marks_only_that_step_failed(loaded_model: Callable[[str], Any], clip: Path) -> None:
    loaded = loaded_model("rnnt-char")
    session = _session(loaded, clip, _Broken(loaded))
    run_steps(session)
    assert session.results["encoder"].status == FAILED
    assert "the encoder graph failed to load" in (session.results["encoder"].error or "")
    assert session.results["decoder"].status == DONE and session.results["joint"].status == DONE


def test_nan_from_candidate_is_a_mismatch(loaded_model: Callable[[str], Any], clip: Path) -> None:
    loaded = loaded_model("rnnt-char")
    model = copy_model(loaded.model)
    fuse_mode_of(model).set(VALIDATION)
    with torch.no_grad():
        model.joint.joint_net[2].bias[3] = float("nan")
    from dataclasses import replace

    session = _session(loaded, clip, TorchRuntime(replace(loaded, model=model)))
    joint = session.run_step("joint")
    stats = joint.comparisons[0].stats
    assert joint.status == MISMATCH and stats is not None
    assert stats.nan["candidate"] > 0 and stats.nan["reference"] == 0


def test_building_a_session_leaves_the_shared_model_as_saved(loaded_model: Callable[[str], Any], clip: Path) -> None:
    """The joint mode is applied when the joint runs, not when a session is built (sessions share one model)."""
    loaded = loaded_model("rnnt-char")
    switch = fuse_mode_of(loaded.model)
    _session(loaded, clip, TorchRuntime(loaded), Settings(runs=1, warmup=0, joint_mode=VALIDATION))
    assert switch.current == switch.saved and switch.saved.fuse_loss_wer


def test_joint_mode_is_named_not_guessed_from_flags(loaded_model: Callable[[str], Any], clip: Path) -> None:
    """A checkpoint saved in validation flags runs in validation mode: the report says validation, and NeMo's
    joint is never told to switch to a mode it is already in."""
    loaded = loaded_model("rnnt-char")
    switch = fuse_mode_of(loaded.model)
    switch.set(VALIDATION)
    saved = switch.saved
    try:
        object.__setattr__(switch, "saved", switch.current)  # as if the checkpoint had been saved this way
        session = _session(loaded, clip, TorchRuntime(loaded), Settings(runs=1, warmup=0, joint_mode=VALIDATION))
        joint = session.run_step("joint")
        assert session.fuse().mode == VALIDATION
        assert joint.notes[0].startswith("joint mode validation")
    finally:
        object.__setattr__(switch, "saved", saved)


def test_reference_joint_failure_in_validation_mode_does_not_suggest_validation(
        loaded_model: Callable[[str], Any], clip: Path) -> None:
    loaded = loaded_model("rnnt-char")

    class _BrokenJoint(TorchRuntime):
        def bind(self, component: str, inputs: dict[str, np.ndarray]) -> Any:
            if component == "joint":
                raise RuntimeError("joint exploded")
            return super().bind(component, inputs)

    audio = load_audio(clip, loaded.summary.sample_rate)
    settings = Settings(runs=1, warmup=0, joint_mode=VALIDATION)
    session = prepare_session(NemoFacts(loaded, VALIDATION), audio, _BrokenJoint(loaded), None, settings)
    joint = session.run_step("joint")
    assert joint.status == FAILED and "joint exploded" in (joint.error or "")
    assert not any("switch the joint to validation" in n for n in joint.notes)
    as_saved = _session(loaded, clip, None, Settings(runs=1, warmup=0, joint_mode=AS_SAVED)).run_step("joint")
    assert as_saved.status == FAILED
    assert any("switch the joint to validation" in n for n in as_saved.notes)


def test_step_json_has_one_output_shape_with_or_without_a_candidate(loaded_model: Callable[[str], Any],
                                                                    clip: Path) -> None:
    loaded = loaded_model("rnnt-char")
    alone = _session(loaded, clip).run_step("encoder").to_json()
    paired = _session(loaded, clip, TorchRuntime(loaded)).run_step("encoder").to_json()
    assert [set(o) for o in alone["outputs"]] == [set(o) for o in paired["outputs"]]
    assert alone["outputs"][0]["shape_candidate"] is None and alone["outputs"][0]["ok"] is None
    assert paired["outputs"][0]["shape_candidate"] == paired["outputs"][0]["shape_reference"]


def test_a_crashing_candidate_is_reported_with_its_traceback(loaded_model: Callable[[str], Any], clip: Path) -> None:
    from rnnt_tui.core.pipeline.events import CandidateFailed

    loaded = loaded_model("rnnt-char")

    class _Crashes(TorchRuntime):
        label = "crashing runtime"

        def prepare(self, progress: Any = None, cancel: Any = None) -> Any:
            raise ValueError("conversion crashed in op 'add_17'")

    events: list[object] = []
    audio = load_audio(clip, loaded.summary.sample_rate)
    session = prepare_session(NemoFacts(loaded, VALIDATION), audio, TorchRuntime(loaded), _Crashes(loaded), FAST,
                              events.append)
    failed = [e for e in events if isinstance(e, CandidateFailed)]
    assert len(failed) == 1 and "add_17" in failed[0].reason
    assert "Traceback" in failed[0].details and "add_17" in failed[0].details
    assert session.candidate_unavailable == failed[0].reason and session.candidate_failed
    assert session.run_step("encoder").status == Status.REFERENCE_ONLY
