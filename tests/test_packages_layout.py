"""Packages as users ship them, through `--packages` on the MIL runtime: the common Parakeet exporter's layout
(built here by `thirdparty_layout`: a fixed 2.5 s window, fp16 compute with fp32 I/O, decision heads, fused
mel+encoder, a metadata.json that says FLOAT32) for a TDT model (the factory's) and an RNNT model (the bundled demo,
trained, on one of its clips), plus bad packages."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rnnt_tui.core.pipeline.driver import run_steps

pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor to a Python boolean")


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """The reference runs one tiny LSTM step per token: on a shared 2-core runner extra threads only contend."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

KINDS = ("tdt", "demo")
DEMO = Path(__file__).parent.parent / "assets" / "demo"
WINDOW_SECONDS = 2.5
PACKAGES = ("decoder", "encoder", "joint", "joint_decision", "joint_decision_single_step", "mel_encoder",
            "preprocessor")


@pytest.fixture(scope="session")
def model_and_clip(loaded_model: Callable[[str], Any], clip: Path) -> Callable[[str], tuple[Any, Path]]:
    """kind -> (LoadedModel, clip): the factory's TDT model on the test clip, or the demo RNNT on its own clip."""
    from rnnt_tui.core.checkpoint import restore

    memo: dict[str, tuple[Any, Path]] = {}

    def get(kind: str) -> tuple[Any, Path]:
        if kind not in memo:
            memo[kind] = (restore(DEMO / "demo-rnnt.nemo"), DEMO / "core-ml-on-a-mac.wav") if kind == "demo" \
                else (loaded_model(kind), clip)
        return memo[kind]

    return get


@pytest.fixture(scope="session")
def layout(model_and_clip: Callable[[str], tuple[Any, Path]],
           tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """kind -> a folder in the third-party layout (built once per session), with one unrecognised package."""
    import thirdparty_layout

    built: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in built:
            folder = thirdparty_layout.build(model_and_clip(kind)[0], tmp_path_factory.mktemp(f"layout-{kind}"),
                                             WINDOW_SECONDS)
            vocoder = folder / "Vocoder.mlmodelc"  # a compiled package of no known kind: listed, skipped
            vocoder.mkdir()
            (vocoder / "metadata.json").write_text(json.dumps([{
                "specificationVersion": 8, "modelType": {"name": "MLModelType_mlProgram"},
                "inputSchema": [{"name": "spectrogram", "dataType": "Float32", "shape": "[1, 80, 100]"}],
                "outputSchema": [{"name": "waveform", "dataType": "Float32", "shape": "[1, 16000]"}]}]))
            built[kind] = folder
        return built[kind]

    return get


@pytest.fixture(scope="session")
def opened(layout: Callable[[str], Path], model_and_clip: Callable[[str], tuple[Any, Path]]) -> Callable[[str], Any]:
    """kind -> a session against `mil --packages <layout>`, run with the tolerances the programs call for."""
    from rnnt_tui.core.pipeline.pipeline import open_session
    from rnnt_tui.core.pipeline.request import Request, Settings
    from rnnt_tui.core.runtimes.base import RuntimeOptions

    sessions: dict[str, Any] = {}

    def get(kind: str) -> Any:
        if kind not in sessions:
            loaded, clip = model_and_clip(kind)
            request = Request(loaded.path, clip, "mil", RuntimeOptions(packages_dir=str(layout(kind))),
                              Settings(runs=1, warmup=0))
            session = open_session(request, loaded=loaded)
            assert session.candidate_unavailable is None
            session.ctx.settings = replace(session.settings, tolerances=session.candidate.tolerances())
            run_steps(session)
            sessions[kind] = session
        return sessions[kind]

    return get


@pytest.mark.parametrize("kind", KINDS)
def test_every_package_accounted_for(kind: str, opened: Callable[[str], Any]) -> None:
    session = opened(kind)
    runtime = session.candidate
    rows = {Path(e.path).name: e for e in runtime.inventory}
    assert sorted(rows) == sorted([f"{p}.mlpackage" for p in PACKAGES] + ["Vocoder.mlmodelc"])
    assert rows["Vocoder.mlmodelc"].mapped_to is None and "match no component" in rows["Vocoder.mlmodelc"].reason
    assert all(rows[f"{p}.mlpackage"].mapped_to for p in PACKAGES)
    assert "U=1" in str(rows["joint.mlpackage"].mapped_to) and "decision head" in str(
        rows["joint_decision.mlpackage"].mapped_to)
    assert "decoded through it" in str(rows["joint_decision_single_step.mlpackage"].mapped_to)
    assert "decoded through it" not in str(rows["joint_decision.mlpackage"].mapped_to)
    described = runtime.describe()
    json.dumps(described)
    assert len(described["inventory"]) == len(PACKAGES) + 1 and described["decodes_through"] == "decision head"
    assert described["label"] == "Core ML program, MIL interpreter" and described["compute_units"] is None


@pytest.mark.parametrize("kind", KINDS)
def test_fp16_compute_detected_and_its_tolerances_applied(kind: str, opened: Callable[[str], Any]) -> None:
    from rnnt_tui.core.components import COMPONENTS
    from rnnt_tui.core.tolerances import FP16

    session = opened(kind)
    runtime = session.candidate
    assert set(runtime.compute_precision()) == {"preprocessor", "encoder", "decoder", "joint", "mel_encoder",
                                                 "joint_decision", "joint_decision_step"}
    assert set(runtime.compute_precision().values()) <= {"fp16", "mixed"}
    assert runtime.tolerances() == {c: FP16[c] for c in COMPONENTS}
    flagged = [w for w in runtime.warnings if "metadata.json (compute_precision FLOAT32) says fp32" in w]
    assert len(flagged) == len(PACKAGES)
    assert any("audio_signal is flexible" in w and "default shape is [1, 1]" in w for w in runtime.warnings)
    for component in COMPONENTS:
        result = session.results[component]
        assert result.status == "done", (component, result.error, [c.to_json() for c in result.comparisons])
        floats = [c for c in result.comparisons if not c.name.endswith("length")]  # lengths compare exactly
        assert floats and all(c.atol == FP16[component].atol for c in floats)


@pytest.mark.parametrize("kind", KINDS)
def test_fixed_window_padded_and_said_joint_called_per_decoder_step(kind: str, opened: Callable[[str], Any],
                                                                   model_and_clip: Callable[[str], Any]) -> None:
    from rnnt_tui.core.coreml.convert import expected_frames

    loaded = model_and_clip(kind)[0]
    window = expected_frames(loaded, "preprocessor", int(WINDOW_SECONDS * 16000))
    session = opened(kind)
    runtime = session.candidate
    features = session.ctx.upstream.features
    bound = runtime.bind("encoder", features)
    n = features["features"].shape[2]
    assert bound.notes and f"features padded from {n:,} to {window} feature frames" in bound.notes[0]
    out = bound.outputs(bound())
    assert out["encoded"].shape == session.ctx.upstream.encoded["encoded"].shape  # cropped back to the clip
    encoded, length = session.ctx.upstream.encoded_frames
    g = session.ctx.upstream.decoder["decoder_output"]
    steps = g.shape[2]
    assert steps > 1
    joint = runtime.bind("joint", {"encoded": encoded[:, :, :length], "decoder_output": g})
    frames = expected_frames(loaded, "encoder", window)
    assert f"called {steps} times: 1 x {steps} tiles" in joint.notes[0]
    assert f"padded to {frames} frames" in joint.notes[1]
    logits = joint.outputs(joint())["logits"]
    reference = session.reference.run("joint", {"encoded": encoded[:, :, :length], "decoder_output": g})["logits"]
    assert logits.shape == reference.shape
    assert float(np.abs(logits.astype(np.float32) - reference).max()) < 0.1  # fp16 joint, every (t, u) cell
    assert "joint" in session.results and session.results["joint"].status == "done"


@pytest.mark.parametrize("kind", KINDS)
def test_decision_heads_compared_with_the_reference_decision(kind: str, opened: Callable[[str], Any]) -> None:
    from rnnt_tui.core.decision import Decisions, compare_decisions

    session = opened(kind)
    runtime, summary = session.candidate, session.facts.summary
    encoded, length = session.ctx.upstream.encoded_frames
    g = session.ctx.upstream.decoder["decoder_output"]
    inputs = {"encoded": encoded[:, :, :length], "decoder_output": g}
    reference = session.reference.run("joint", inputs)["logits"]
    shape = reference.shape[:-1]
    for head in ("joint_decision", "joint_decision_step"):
        decisions = Decisions.from_outputs(runtime.run(head, inputs), shape)
        found = compare_decisions(reference, decisions, summary.durations)
        assert found.cells == length * g.shape[2]
        assert found.token_agreement is not None and found.token_agreement >= 0.95, found.to_json()
        assert found.prob_max_abs < 0.05 and found.invalid_durations == 0
        if summary.durations:
            assert found.duration_cells == found.cells and found.duration_agreement is not None
            assert found.duration_agreement >= 0.95
        else:
            assert found.duration_cells == 0
        if head == "joint_decision_step":
            assert found.top_k == 8 and found.top_k_overlap is not None and found.top_k_overlap >= 0.95
            assert found.top_k_logit_max_abs is not None and found.top_k_logit_max_abs < 0.1
        json.dumps(found.to_json())
    wrong = Decisions(token_id=(decisions.token_id + 1) % reference.shape[-1])  # every token off by one
    assert compare_decisions(reference, wrong, summary.durations).token_agree == 0


@pytest.mark.parametrize("kind", KINDS)
def test_transcript_decoded_through_the_single_step_head(kind: str, opened: Callable[[str], Any]) -> None:
    from rnnt_tui.core.pipeline.greedy import greedy_decode

    session = opened(kind)
    runtime, summary = session.candidate, session.facts.summary
    encoded, length = session.ctx.upstream.encoded_frames
    decoded = greedy_decode(runtime, encoded, length, summary.blank_id, summary.durations,
                            session.facts.max_symbols())
    assert decoded.via == "decision head"
    nemo_tokens, nemo_text = session.facts.nemo_greedy(encoded, length)
    assert decoded.tokens == nemo_tokens
    comparison = session.decode_comparison  # the candidate's own chain: its fp16 preprocessor, encoder, head
    assert comparison is not None and comparison.candidate_tokens == comparison.nemo_tokens
    if kind == "demo":
        assert comparison.candidate_text == nemo_text == "core ml on a mac"


@pytest.mark.parametrize("kind", KINDS)
def test_fused_mel_encoder_against_reference_preprocessor_then_encoder(kind: str,
                                                                       opened: Callable[[str], Any]) -> None:
    from rnnt_tui.core.tolerances import FP16

    session = opened(kind)
    samples = session.audio.samples[None, :].astype(np.float32)
    bound = session.candidate.bind("mel_encoder", {"audio_signal": samples,
                                                   "length": np.array([samples.shape[1]], dtype=np.int64)})
    assert f"audio_signal padded from {samples.shape[1]:,} to {int(WINDOW_SECONDS * 16000):,} samples" in \
        bound.notes[0]
    out = bound.outputs(bound())
    reference = session.ctx.upstream.encoded
    assert out["encoded"].shape == reference["encoded"].shape
    assert int(out["encoded_length"].reshape(-1)[0]) == int(reference["encoded_length"].reshape(-1)[0])
    tol = FP16["encoder"]
    assert np.allclose(out["encoded"].astype(np.float32), reference["encoded"], atol=tol.atol, rtol=tol.rtol)


def test_compiled_and_neural_network_packages_refused_in_one_line(layout: Callable[[str], Path],
                                                                  model_and_clip: Callable[[str], Any],
                                                                  tmp_path: Path) -> None:
    import coremltools as ct
    from coremltools.models.neural_network import NeuralNetworkBuilder

    from rnnt_tui.core.errors import BadInputError
    from rnnt_tui.core.runtimes.base import RuntimeOptions
    from rnnt_tui.core.runtimes.mil_runtime import MilRuntime

    loaded = model_and_clip("demo")[0]
    array = ct.models.datatypes.Array
    builder = NeuralNetworkBuilder([("mel", array(1, 80, 10)), ("mel_length", array(1))],
                                   [("encoder", array(1, 80, 10)), ("encoder_length", array(1))])
    builder.add_activation("relu", "RELU", "mel", "encoder")
    builder.add_activation("same", "LINEAR", "mel_length", "encoder_length", params=[1.0, 0.0])
    network = tmp_path / "nn"
    network.mkdir()
    ct.models.MLModel(builder.spec).save(str(network / "encoder.mlmodel"))
    with pytest.raises(BadInputError) as raised:
        MilRuntime(loaded, RuntimeOptions(packages_dir=str(network))).prepare()
    message = str(raised.value)
    assert "\n" not in message and "encoder.mlmodel" in message and "not an ML program" in message

    compiled = tmp_path / "compiled"
    compiled.mkdir()
    shutil.copytree(layout("demo") / "Vocoder.mlmodelc", compiled / "decoder.mlmodelc")
    meta = json.loads((compiled / "decoder.mlmodelc" / "metadata.json").read_text())
    meta[0]["inputSchema"] = [{"name": n, "dataType": "Float32", "shape": "[1, 1, 64]"} for n in ("h_in", "c_in")]
    meta[0]["outputSchema"] = [{"name": n, "dataType": "Float32", "shape": "[1, 1, 64]"}
                               for n in ("decoder", "h_out", "c_out")]
    meta[0]["inputSchema"].append({"name": "targets", "dataType": "Int32", "shape": "[1, 1]"})
    (compiled / "decoder.mlmodelc" / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(BadInputError) as raised:
        MilRuntime(loaded, RuntimeOptions(packages_dir=str(compiled))).prepare()
    message = str(raised.value)
    assert "\n" not in message and "decoder.mlmodelc" in message and "give the .mlpackage" in message
    shutil.copytree(layout("demo") / "decoder.mlpackage", compiled / "decoder.mlpackage")
    runtime = MilRuntime(loaded, RuntimeOptions(packages_dir=str(compiled)))
    runtime.prepare()  # the readable package of the same kind is chosen; the compiled one is listed as skipped
    rows = {Path(e.path).name: e for e in runtime.inventory}
    assert rows["decoder.mlpackage"].mapped_to and rows["decoder.mlmodelc"].mapped_to is None
    assert "compiled" in rows["decoder.mlmodelc"].reason


def test_decision_comparison_counts_and_merges() -> None:
    """Pure: the reference's own decisions agree everywhere; injected faults are found where they are; chunks
    merge to the whole-grid numbers."""
    from rnnt_tui.core.decision import Decisions, compare_decisions, reference_decisions

    rng = np.random.default_rng(0)
    durations = [0, 1, 2, 3, 4]
    logits = rng.standard_normal((1, 6, 3, 11 + len(durations))).astype(np.float32)
    ref = reference_decisions(logits, len(durations), k=4)
    same = compare_decisions(logits, ref, durations)
    assert same.ok and same.token_agreement == 1.0 and same.duration_agreement == 1.0 and same.top_k_overlap == 1.0
    assert same.prob_max_abs < 1e-6 and same.top_k_logit_max_abs == 0.0
    tokens = ref.token_id.copy()
    tokens[0, 4, 1] = (tokens[0, 4, 1] + 1) % 11
    bins = ref.duration.copy() if ref.duration is not None else None
    assert bins is not None
    bins[0, 2, 0] = 7  # no such bin
    faulty = Decisions(token_id=tokens, token_prob=ref.token_prob, duration=bins)
    whole = compare_decisions(logits, faulty, durations)
    assert whole.token_agree == 17 and whole.first_token_disagreement == (0, 4, 1)
    assert whole.invalid_durations == 1 and whole.duration_agree == 17 and not whole.ok
    halves = [compare_decisions(logits[:, a:b], Decisions(token_id=tokens[:, a:b], token_prob=ref.token_prob[:, a:b],
                                                          duration=bins[:, a:b]), durations, origin=(0, a, 0))
              for a, b in ((0, 3), (3, 6))]
    assert halves[0].merge(halves[1]) == whole
    rnnt = compare_decisions(logits[..., :11], Decisions(token_id=ref.token_id, duration=np.ones_like(ref.token_id)))
    assert rnnt.duration_cells == 0 and rnnt.invalid_durations == 18  # an RNNT head's duration must be 0
