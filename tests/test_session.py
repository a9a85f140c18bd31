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
from rnnt_tui.core.results import DONE, FAILED, MISMATCH
from rnnt_tui.core.runtimes.torch_runtime import TorchRuntime
from rnnt_tui.core.session import Session, SessionSettings
from rnnt_tui.paths import demo_dir

FAST = SessionSettings(runs=2, warmup=0)


def _session(loaded: Any, clip: Path, candidate: Any = None, settings: SessionSettings = FAST) -> Session:
    audio = load_audio(clip, loaded.summary.sample_rate)
    session = Session(loaded, audio, TorchRuntime(loaded), candidate, settings)
    session.prepare()
    return session


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
    session.run_all()
    s = loaded.summary
    features = session.data["preprocessor.reference"]["features"]
    encoded = session.data["encoder.reference"]["encoded"]
    assert features.shape[:2] == (1, s.n_mels)
    assert encoded.shape[:2] == (1, s.encoder.d_model)
    frames = int(session.data["encoder.reference"]["encoded_length"][0])
    feature_frames = int(session.data["preprocessor.reference"]["features_length"][0])
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
    session.run_all()
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
    session.run_all()
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
                           SessionSettings(runs=1, warmup=0, joint_chunk_frames=chunk))
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
    session = _session(loaded, clip, TorchRuntime(loaded), SessionSettings(runs=1, warmup=0, joint_mode=AS_SAVED))
    session.run_all()
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
    session.run_all()
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
