"""OnnxRuntime against the reference runtime on every transducer kind: real NeMo export, real onnxruntime."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TRANSDUCER_KINDS

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from rnnt_tui.core.audio import load_audio
from rnnt_tui.core.cache import ArtifactCache
from rnnt_tui.core.errors import CancelledError
from rnnt_tui.core.fuse import AS_SAVED, VALIDATION, fuse_mode_of
from rnnt_tui.core.pipeline.greedy import greedy_decode
from rnnt_tui.core.runtimes.base import RuntimeOptions
from rnnt_tui.core.runtimes.onnx_runtime import DECODER_JOINT_FILE, ENCODER_FILE, OnnxRuntime
from rnnt_tui.core.runtimes.torch_runtime import TorchRuntime


@dataclass
class Setup:
    loaded: Any
    ref: TorchRuntime
    onnx: OnnxRuntime
    features: dict[str, np.ndarray]
    encoded: dict[str, np.ndarray]


@pytest.fixture(scope="module")
def setup(loaded_model: Callable[[str], Any], clip: Path) -> Iterator[Callable[[str], Setup]]:
    """kind -> reference + prepared OnnxRuntime + the clip's reference features and encoder outputs."""
    memo: dict[str, Setup] = {}
    runtimes: list[OnnxRuntime] = []

    def get(kind: str) -> Setup:
        if kind not in memo:
            loaded = loaded_model(kind)
            ref = TorchRuntime(loaded)
            ref.prepare()
            audio = load_audio(clip, loaded.summary.sample_rate or 16000)
            features = ref.run("preprocessor", {"audio_signal": audio.samples[None, :],
                                                "length": np.array([len(audio.samples)], dtype=np.int64)})
            encoded = ref.run("encoder", features)
            onnx = OnnxRuntime(loaded)
            onnx.prepare()
            runtimes.append(onnx)
            memo[kind] = Setup(loaded, ref, onnx, features, encoded)
        return memo[kind]

    yield get
    for runtime in runtimes:
        runtime.close()


def _flags(model: Any) -> dict[str, Any]:
    """Every flag NeMo's export touches, plus module types, training modes and weights."""
    import torch

    joint, decoder = model.joint, model.decoder
    return {
        "fuse_loss_wer": joint.fuse_loss_wer,
        "fused_batch_size": joint.fused_batch_size,
        "log_softmax": joint.log_softmax,
        "loss": id(joint._loss) if joint._loss is not None else None,
        "wer": id(joint._wer) if joint._wer is not None else None,
        "decoder_rnnt_export": decoder._rnnt_export,
        "joint_rnnt_export": joint._rnnt_export,
        "modules": [(name, type(m).__name__, m.training) for name, m in model.named_modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "encoder_forward": type(model.encoder).forward,
        "state": {k: v.clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)},
    }


def _assert_same_flags(before: dict[str, Any], after: dict[str, Any]) -> None:
    state_before, state_after = before.pop("state"), after.pop("state")
    assert before == after
    assert state_before.keys() == state_after.keys()
    for key, value in state_before.items():
        assert bool((value == state_after[key]).all()), key


def test_availability_and_describe(setup: Callable[[str], Setup]) -> None:
    assert OnnxRuntime.availability().ok
    info = setup("rnnt-char").onnx.describe()
    assert info["name"] == "onnx" and info["label"] == "ONNX Runtime"
    assert info["onnxruntime"] and info["opset"] == 17
    assert "CPUExecutionProvider" in info["providers"]


def test_exported_graph_io(setup: Callable[[str], Setup]) -> None:
    meta = setup("rnnt-bpe").onnx._entry.meta  # type: ignore[union-attr]
    enc, dj = meta["graphs"][ENCODER_FILE], meta["graphs"][DECODER_JOINT_FILE]
    assert [(t["name"], t["dtype"]) for t in enc["inputs"]] == [("audio_signal", "float"), ("length", "int64")]
    assert [t["name"] for t in enc["outputs"]] == ["outputs", "encoded_lengths"]
    assert [(t["name"], t["dtype"]) for t in dj["inputs"]] == [
        ("encoder_outputs", "float"), ("targets", "int32"), ("target_length", "int32"),
        ("input_states_1", "float"), ("input_states_2", "float")]
    assert [t["name"] for t in dj["outputs"]] == ["outputs", "prednet_lengths", "output_states_1",
                                                  "output_states_2"]


@pytest.mark.parametrize("kind", TRANSDUCER_KINDS)
def test_encoder_matches_reference(setup: Callable[[str], Setup], kind: str) -> None:
    s = setup(kind)
    out = s.onnx.run("encoder", s.features)
    assert out["encoded"].shape == s.encoded["encoded"].shape
    assert np.abs(out["encoded"] - s.encoded["encoded"]).max() <= 1e-4
    assert out["encoded_length"].dtype == np.int64
    np.testing.assert_array_equal(out["encoded_length"], s.encoded["encoded_length"])


@pytest.mark.parametrize("kind", TRANSDUCER_KINDS)
def test_decoder_step_matches_reference(setup: Callable[[str], Setup], kind: str) -> None:
    s = setup(kind)
    rng = np.random.default_rng(1)
    shape = (s.onnx.layers, 1, s.onnx.hidden)
    h, c = rng.standard_normal(shape).astype(np.float32), rng.standard_normal(shape).astype(np.float32)
    for token in (s.ref.blank_id, 2):
        inputs = {"targets": np.array([[token]], dtype=np.int64), "h": h, "c": c}
        ref, got = s.ref.run("decoder", inputs), s.onnx.run("decoder", inputs)
        assert "decoder_output" not in got
        for name in ("h", "c"):
            assert got[name].shape == ref[name].shape
            assert np.abs(got[name] - ref[name]).max() <= 1e-5, (token, name)


@pytest.mark.parametrize("kind", TRANSDUCER_KINDS)
def test_joint_grid_matches_reference_in_validation_mode(setup: Callable[[str], Setup], kind: str) -> None:
    import torch

    s = setup(kind)
    model = s.loaded.model
    targets = [s.ref.blank_id, 1, 5, 7]
    state, steps = s.ref.initial_state(), []
    for token in targets:
        g, state = s.ref.decoder_step(token, state)
        steps.append(g)
    decoder_output = torch.cat(steps, dim=1).transpose(1, 2)
    mode = fuse_mode_of(model)
    try:
        mode.set(VALIDATION)
        with torch.inference_mode():
            ref = model.joint(encoder_outputs=torch.from_numpy(s.encoded["encoded"]),
                              decoder_outputs=decoder_output).numpy()
    finally:
        mode.set(AS_SAVED)
    got = s.onnx.run("joint", {"encoded": s.encoded["encoded"], "decoder_output": decoder_output.numpy(),
                               "targets": np.array([targets], dtype=np.int64)})["logits"]
    durations = s.loaded.summary.durations or []
    vocab = s.ref.blank_id
    assert got.shape == (1, s.encoded["encoded"].shape[2], len(targets), vocab + 1 + len(durations))
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-4


class _Recording:
    """Wraps a runtime and keeps every joint row greedy decoding asked for."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.rows: list[np.ndarray] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.runtime, name)

    def joint_step(self, frame: np.ndarray, decoder_output: Any) -> np.ndarray:
        row = self.runtime.joint_step(frame, decoder_output)
        self.rows.append(row)
        return row


@pytest.mark.parametrize("kind", TRANSDUCER_KINDS)
def test_greedy_decode_matches_reference(setup: Callable[[str], Setup], kind: str) -> None:
    s = setup(kind)
    length = int(s.encoded["encoded_length"][0])
    durations = s.loaded.summary.durations
    noise = 3 * np.random.default_rng(0).standard_normal(s.encoded["encoded"].shape).astype(np.float32)
    mode = fuse_mode_of(s.loaded.model)
    for encoded in (s.encoded["encoded"], noise):  # random weights: the noise input also makes blank decisions
        as_saved = greedy_decode(s.ref, encoded, length, s.ref.blank_id, durations, 10)
        ref, got = _Recording(s.ref), _Recording(s.onnx)
        try:
            mode.set(VALIDATION)  # raw logits on the reference too, so the rows compare like for like
            ref_result = greedy_decode(ref, encoded, length, s.ref.blank_id, durations, 10)  # type: ignore[arg-type]
        finally:
            mode.set(AS_SAVED)
        got_result = greedy_decode(got, encoded, length, s.ref.blank_id, durations, 10)  # type: ignore[arg-type]
        assert got_result.steps > 0
        assert got_result.tokens == ref_result.tokens == as_saved.tokens
        assert got_result.frames == ref_result.frames == as_saved.frames
        assert got_result.durations == ref_result.durations == as_saved.durations
        assert np.abs(np.stack(got.rows) - np.stack(ref.rows)).max() <= 1e-4


@pytest.mark.parametrize("kind", TRANSDUCER_KINDS)
def test_export_leaves_loaded_model_untouched(loaded_model: Callable[[str], Any], kind: str) -> None:
    loaded = loaded_model(kind)
    before = _flags(loaded.model)
    assert before["fuse_loss_wer"] is True and before["loss"] is not None  # saved fused: export would flip it
    runtime = OnnxRuntime(loaded, RuntimeOptions(use_cache=False))  # always exports
    try:
        reports = runtime.prepare()
    finally:
        runtime.close()
    assert [r.action for r in reports] == ["export (NeMo model.export)"] * 3
    _assert_same_flags(before, _flags(loaded.model))


def test_second_prepare_is_a_cache_hit(setup: Callable[[str], Setup]) -> None:
    s = setup("tdt")
    builds = ArtifactCache.stats.builds
    runtime = OnnxRuntime(s.loaded)
    messages: list[str] = []
    try:
        reports = runtime.prepare(lambda message, fraction=None: messages.append(message))
        assert ArtifactCache.stats.builds == builds
        assert {r.component for r in reports} == {"encoder", "decoder", "joint"}
        assert all(r.cached and r.action == "cache hit" and r.load_ms is not None for r in reports)
        assert reports[0].artifact == s.onnx.reports["encoder"].artifact
        assert messages and not any("exporting" in m for m in messages)
        out = runtime.run("encoder", s.features)
        assert np.abs(out["encoded"] - s.encoded["encoded"]).max() <= 1e-4
    finally:
        runtime.close()


def _entry_dir(runtime: OnnxRuntime) -> Path:
    return Path(runtime.reports["encoder"].artifact).parent  # type: ignore[arg-type]


def test_truncated_cache_entry_is_rebuilt(setup: Callable[[str], Setup]) -> None:
    s = setup("hybrid")
    target = _entry_dir(s.onnx) / DECODER_JOINT_FILE
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    builds, corrupt = ArtifactCache.stats.builds, ArtifactCache.stats.rebuilt_corrupt
    runtime = OnnxRuntime(s.loaded)
    try:
        reports = runtime.prepare()
        assert ArtifactCache.stats.builds == builds + 1
        assert ArtifactCache.stats.rebuilt_corrupt == corrupt + 1
        assert not any(r.cached for r in reports)
        assert greedy_decode(runtime, s.encoded["encoded"], int(s.encoded["encoded_length"][0]),
                             s.ref.blank_id).tokens == \
            greedy_decode(s.ref, s.encoded["encoded"], int(s.encoded["encoded_length"][0]), s.ref.blank_id).tokens
    finally:
        runtime.close()


def test_same_size_garbage_in_cache_entry_is_rebuilt(setup: Callable[[str], Setup]) -> None:
    """A corruption the manifest cannot see (sizes unchanged) fails to load and is rebuilt once."""
    s = setup("rnnt-char")
    target = _entry_dir(s.onnx) / ENCODER_FILE
    target.write_bytes(b"\x07" * target.stat().st_size)
    builds = ArtifactCache.stats.builds
    runtime = OnnxRuntime(s.loaded)
    try:
        reports = runtime.prepare()
        assert ArtifactCache.stats.builds == builds + 1
        assert reports[0].action == "export (NeMo model.export)" and not reports[0].cached
        out = runtime.run("encoder", s.features)
        assert np.abs(out["encoded"] - s.encoded["encoded"]).max() <= 1e-4
    finally:
        runtime.close()


def test_cancel_before_export_raises(loaded_model: Callable[[str], Any]) -> None:
    cancel = threading.Event()
    cancel.set()
    runtime = OnnxRuntime(loaded_model("rnnt-char"), RuntimeOptions(use_cache=False))
    with pytest.raises(CancelledError):
        runtime.prepare(cancel=cancel)
    runtime.close()


def test_bind_before_prepare_says_so(loaded_model: Callable[[str], Any]) -> None:
    runtime = OnnxRuntime(loaded_model("rnnt-char"))
    with pytest.raises(Exception, match="prepare"):
        runtime.bind("encoder", {})
