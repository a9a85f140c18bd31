"""Reading Core ML packages on any OS and matching a folder of them to components: our own packages (by metadata,
and renamed with a mapping file), the common parakeet-export layout (tiny stand-in packages converted here with
that layout's tensor names), joint-decision heads recognised as such, and `.mlmodelc` metadata."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor to a Python boolean")

D, H, MELS, LAYERS = 24, 16, 20, 2


@pytest.fixture(scope="module")
def ours(loaded_model: Callable[[str], Any], tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """The rnnt-char model and a folder with its four packages (fp32)."""
    from rnnt_tui.core.coreml.convert import convert_components

    loaded = loaded_model("rnnt-char")
    folder = tmp_path_factory.mktemp("ours")
    convert_components(loaded, out_dir=folder)
    return loaded, folder


def _convert(module: Any, example: tuple[Any, ...], inputs: list[tuple[str, tuple[int, ...], Any]],
             outputs: list[str], path: Path) -> Path:
    import coremltools as ct
    import torch

    with torch.no_grad():
        traced = torch.jit.trace(module.eval(), example, check_trace=False)
    model = ct.convert(traced, convert_to="mlprogram", minimum_deployment_target=ct.target.macOS14,
                       compute_precision=ct.precision.FLOAT32,
                       inputs=[ct.TensorType(name=n, shape=s, dtype=d) for n, s, d in inputs],
                       outputs=[ct.TensorType(name=n) for n in outputs])
    model.save(str(path))
    return path


@pytest.fixture(scope="module")
def parakeet_style(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny packages with the parakeet-export names and layouts (random weights; only their I/O matters)."""
    import torch

    folder = tmp_path_factory.mktemp("parakeet")
    f32, i32 = np.float32, np.int32
    torch.manual_seed(0)

    class Pre(torch.nn.Module):
        def forward(self, audio: torch.Tensor, length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            frames = audio[:, : (audio.shape[1] // 160) * 160].reshape(1, -1, 160)[:, :, :MELS].transpose(1, 2)
            return frames.abs().log1p(), (length // 160).to(torch.int32)

    class Enc(torch.nn.Module):  # time-major output, as some exports write it
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(MELS, D)

        def forward(self, mel: torch.Tensor, length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.proj(mel.transpose(1, 2)), (length // 4).to(torch.int32)

    class Dec(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed, self.lstm = torch.nn.Embedding(11, H), torch.nn.LSTM(H, H, LAYERS)

        def forward(self, targets: torch.Tensor, target_length: torch.Tensor, h_in: torch.Tensor,
                    c_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            g, (h, c) = self.lstm(self.embed(targets.long()).transpose(0, 1), (h_in, c_in))
            return g.permute(1, 2, 0), h, c

    class Joint(torch.nn.Module):
        def __init__(self, decision: bool) -> None:
            super().__init__()
            self.enc, self.pred, self.out, self.decision = torch.nn.Linear(D, 8), torch.nn.Linear(H, 8), \
                torch.nn.Linear(8, 16), decision

        def forward(self, encoder_step: torch.Tensor, decoder_step: torch.Tensor) -> Any:
            x = self.enc(encoder_step.transpose(1, 2)).unsqueeze(2) \
                + self.pred(decoder_step.transpose(1, 2)).unsqueeze(1)
            logits = self.out(torch.relu(x))
            if not self.decision:
                return logits
            token = logits[..., :11].argmax(-1).to(torch.int32)
            return token, logits[..., :11].softmax(-1).amax(-1), logits[..., 11:].argmax(-1).to(torch.int32)

    _convert(Pre(), (torch.randn(1, 1600), torch.tensor([1600], dtype=torch.int32)),
             [("audio_signal", (1, 16000), f32), ("audio_length", (1,), i32)], ["mel", "mel_length"],
             folder / "Preprocessor.mlpackage")
    _convert(Enc(), (torch.randn(1, MELS, 100), torch.tensor([100], dtype=torch.int32)),
             [("mel", (1, MELS, 100), f32), ("mel_length", (1,), i32)], ["encoder", "encoder_length"],
             folder / "Encoder.mlpackage")
    state = (LAYERS, 1, H)
    _convert(Dec(), (torch.zeros(1, 1, dtype=torch.int32), torch.ones(1, dtype=torch.int32), torch.zeros(state),
                     torch.zeros(state)),
             [("targets", (1, 1), i32), ("target_length", (1,), i32), ("h_in", state, f32), ("c_in", state, f32)],
             ["decoder", "h_out", "c_out"], folder / "Decoder.mlpackage")
    step = (torch.randn(1, D, 1), torch.randn(1, H, 1))
    _convert(Joint(False), step, [("encoder_step", (1, D, 1), f32), ("decoder_step", (1, H, 1), f32)], ["logits"],
             folder / "JointStep.mlpackage")
    _convert(Joint(True), step, [("encoder_step", (1, D, 1), f32), ("decoder_step", (1, H, 1), f32)],
             ["token_id", "token_prob", "duration"], folder / "JointDecision.mlpackage")
    return folder


def test_read_spec_of_our_packages(ours: tuple[Any, Path]) -> None:
    from rnnt_tui.core.coreml.spec import read_spec

    _, folder = ours
    spec = read_spec(folder / "encoder.mlpackage")
    features = spec.input("features")
    assert (features.dtype, features.shape[:2], features.flexible) == ("float32", (1, 80), True)
    assert features.bounds(2)[1] == int(spec.ours("max_feature_frames") or 0)
    assert features.bounds(2)[0] > 1  # one encoder frame's worth of features at least
    assert spec.input("features_length").dtype == "int32" and not spec.input("features_length").flexible
    assert spec.output("encoded").shape[1:] == (64, -1) and spec.output("encoded_length").dtype == "int32"
    assert spec.to_json()["metadata"]["rnnt_tui.component"] == "encoder"
    json.dumps(spec.to_json())


def test_match_our_packages_by_metadata(ours: tuple[Any, Path]) -> None:
    from rnnt_tui.core.coreml.matching import match_packages

    loaded, folder = ours
    found = match_packages(folder, loaded.summary)
    assert sorted(found) == ["decoder", "encoder", "joint", "preprocessor"]
    assert all(info.source == "metadata" and info.comparable and not info.per_step for info in found.values())
    assert found["decoder"].inputs == {"targets": "targets", "h": "h", "c": "c"}
    assert found["decoder"].outputs == {"decoder_output": "decoder_output", "h_out": "h_out", "c_out": "c_out"}
    assert found["joint"].outputs == {"logits": "logits"} and found["encoder"].layouts == {}


def test_renamed_packages_with_a_mapping_file(ours: tuple[Any, Path], tmp_path: Path) -> None:
    from rnnt_tui.core.coreml.matching import match_packages
    from rnnt_tui.core.errors import BadInputError

    loaded, folder = ours
    for component, name in (("encoder", "A.mlpackage"), ("joint", "B.mlpackage"), ("decoder", "C.mlpackage")):
        shutil.copytree(folder / f"{component}.mlpackage", tmp_path / name)
    shutil.copytree(folder / "joint.mlpackage", tmp_path / "Spare.mlpackage")
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("components:\n  encoder: A.mlpackage\n  joint: {file: B.mlpackage, per_step: false}\n"
                       "  decoder:\n    file: C.mlpackage\n    inputs: {targets: targets}\n"
                       "    outputs: {h: h_out, c: c_out}\n"
                       "ignore: [Spare.mlpackage]\n")
    found = match_packages(tmp_path, loaded.summary, mapping)
    assert {k: v.path.name for k, v in found.items()} == {"encoder": "A.mlpackage", "joint": "B.mlpackage",
                                                          "decoder": "C.mlpackage",
                                                          "ignored:Spare.mlpackage": "Spare.mlpackage"}
    assert all(v.source == "mapping" for v in found.values())
    assert not found["ignored:Spare.mlpackage"].comparable  # listed with why, never used
    assert found["decoder"].outputs == {"decoder_output": "decoder_output", "h_out": "h_out", "c_out": "c_out"}
    json_mapping = tmp_path / "mapping.json"
    json_mapping.write_text(json.dumps({"encoder": "A.mlpackage"}))
    found = match_packages(tmp_path, loaded.summary, json_mapping)
    assert found["encoder"].source == "mapping" and found["joint"].source == "metadata"
    assert not found["joint:Spare.mlpackage"].comparable  # a second joint is reported, not used
    json_mapping.write_text(json.dumps({"vocoder": "A.mlpackage"}))
    with pytest.raises(BadInputError, match="unknown component"):
        match_packages(tmp_path, loaded.summary, json_mapping)
    json_mapping.write_text(json.dumps({"encoder": "Missing.mlpackage"}))
    with pytest.raises(BadInputError, match="not in the folder"):
        match_packages(tmp_path, loaded.summary, json_mapping)


def test_match_parakeet_style_packages(parakeet_style: Path) -> None:
    from rnnt_tui.core.coreml.matching import match_packages

    summary = SimpleNamespace(encoder=SimpleNamespace(d_model=D), n_mels=MELS)
    found = match_packages(parakeet_style, summary)
    assert sorted(found) == ["decoder", "encoder", "joint", "joint_decision_step", "preprocessor"]
    assert all(found[c].source == "names" and found[c].comparable for c in ("decoder", "encoder", "joint"))
    pre = found["preprocessor"]
    assert pre.inputs == {"audio_signal": "audio_signal", "length": "audio_length"}
    assert pre.outputs == {"features": "mel", "features_length": "mel_length"}
    assert pre.spec.input("audio_signal").bounds(1) == (16000, 16000)  # a fixed window: the runtime pads
    enc = found["encoder"]
    assert enc.inputs == {"features": "mel", "features_length": "mel_length"}
    assert enc.outputs == {"encoded": "encoder", "encoded_length": "encoder_length"}
    assert enc.layouts == {"encoded": "BTD"}
    dec = found["decoder"]
    assert dec.inputs == {"targets": "targets", "h": "h_in", "c": "c_in"} and dec.feeds == {"target_length": 1}
    assert dec.outputs == {"decoder_output": "decoder", "h_out": "h_out", "c_out": "c_out"}
    joint = found["joint"]
    assert joint.per_step and joint.inputs == {"encoded": "encoder_step", "decoder_output": "decoder_step"}
    decision = found["joint_decision_step"]
    assert decision.comparable and decision.per_step and decision.path.name == "JointDecision.mlpackage"
    assert decision.inputs == {"encoded": "encoder_step", "decoder_output": "decoder_step"}
    assert decision.outputs == {"token_id": "token_id", "token_prob": "token_prob", "duration": "duration"}


def test_read_compiled_model_metadata(tmp_path: Path) -> None:
    """A .mlmodelc is read from the metadata.json Core ML's compiler writes (coremltools' FeatureType fields)."""
    from rnnt_tui.core.coreml.matching import match_packages
    from rnnt_tui.core.coreml.spec import read_spec

    compiled = tmp_path / "Encoder.mlmodelc"
    compiled.mkdir()
    row = {"name": "mel", "type": "MultiArray", "dataType": "Float32", "isOptional": "0", "shape": "[1, 80, 100]",
           "hasShapeFlexibility": "1", "shapeRange": "[[1, 1], [80, 80], [1, 3000]]"}
    (compiled / "metadata.json").write_text(json.dumps([{
        "specificationVersion": 8, "modelType": {"name": "MLModelType_mlProgram"},
        "inputSchema": [row, {"name": "mel_length", "dataType": "Int32", "shape": "[1]"}],
        "outputSchema": [{"name": "encoder", "dataType": "Float16", "shape": "[]"},
                         {"name": "encoder_length", "dataType": "Int32", "shape": "[1]"}],
        "userDefinedMetadata": {"note": "x"}}]))
    spec = read_spec(compiled)
    assert spec.input("mel").ranges == ((1, 1), (80, 80), (1, 3000)) and spec.input("mel").dtype == "float32"
    assert spec.output("encoder").dtype == "float16" and spec.deployment_target == "macOS14"
    assert spec.model_type == "mlProgram" and spec.metadata == {"note": "x"}
    found = match_packages(tmp_path, SimpleNamespace(encoder=SimpleNamespace(d_model=64), n_mels=80))
    assert found["encoder"].inputs == {"features": "mel", "features_length": "mel_length"}


def test_unreadable_inputs_are_refused(tmp_path: Path) -> None:
    from rnnt_tui.core.coreml.matching import match_packages
    from rnnt_tui.core.coreml.spec import read_spec
    from rnnt_tui.core.errors import BadInputError

    with pytest.raises(BadInputError, match="no such"):
        read_spec(tmp_path / "nothing.mlpackage")
    (tmp_path / "Broken.mlmodelc").mkdir()
    with pytest.raises(BadInputError, match=r"metadata\.json"):
        read_spec(tmp_path / "Broken.mlmodelc")
    with pytest.raises(BadInputError, match="not a folder"):
        match_packages(tmp_path / "absent")


@pytest.mark.skipif(sys.platform == "darwin", reason="checks the refusal off macOS")
def test_plans_and_drift_searches_refused_off_macos(ours: tuple[Any, Path]) -> None:
    from rnnt_tui.core.coreml.plan import compute_plan, first_drifting_op
    from rnnt_tui.core.errors import RuntimeUnavailableError

    _, folder = ours
    with pytest.raises(RuntimeUnavailableError, match=r"compute plans need macOS \(coremltools can convert"):
        compute_plan(folder / "encoder.mlmodelc", "encoder")
    with pytest.raises(RuntimeUnavailableError, match="need macOS"):
        first_drifting_op(folder / "joint.mlpackage", {})


def test_plan_summary_shares() -> None:
    from rnnt_tui.core.coreml.plan import OpPlacement, summarize_placements

    ops = [OpPlacement("const", "w", "CPU", ("CPU",), None),
           OpPlacement("conv", "a", "NE", ("CPU", "GPU", "NE"), 0.6),
           OpPlacement("lstm", "b", "CPU", ("CPU",), 0.3),
           OpPlacement("add", "c", "GPU", ("CPU", "GPU"), 0.1),
           OpPlacement("lstm", "d", "CPU", ("CPU",), 0.0)]
    plan = summarize_placements("decoder", "ALL", ops)
    assert plan.ops == 4 and plan.op_share == {"CPU": 0.5, "GPU": 0.25, "NE": 0.25}
    assert plan.cost_share == pytest.approx({"CPU": 0.3, "GPU": 0.1, "NE": 0.6})
    assert plan.cpu_fallbacks == {"lstm": 2} and plan.cpu_only == {"lstm": 2}
    assert summarize_placements("decoder", "CPU_ONLY", ops).cpu_fallbacks == {}


def test_enumerated_shapes_take_the_smallest_shape_that_holds_the_clip() -> None:
    """An input with enumerated shapes is not fixed at its default: a clip longer than the default is padded to the
    smallest enumerated shape that holds it, and refused (naming the largest) only when none does."""
    from types import SimpleNamespace

    from rnnt_tui.core.coreml.spec import TensorSpec
    from rnnt_tui.core.errors import BadInputError
    from rnnt_tui.core.runtimes.mil_runtime import MilRuntime

    spec = TensorSpec("features", (1, 8, 100), "float32",
                      enumerated=((1, 8, 100), (1, 8, 300), (1, 8, 500), (1, 16, 900)))
    assert spec.fit_bounds(2, (1, 8, 50)) == (100, 100)
    assert spec.fit_bounds(2, (1, 8, 250)) == (300, 300)
    assert spec.fit_bounds(2, (1, 8, 600)) == (500, 500)
    info = SimpleNamespace(feeds={}, inputs={"features": "features"}, layouts={},
                           spec=SimpleNamespace(input=lambda name: spec, ours=lambda key: None),
                           path=SimpleNamespace(name="encoder.mlpackage"))
    runtime = object.__new__(MilRuntime)
    feed, padded = runtime._feed("encoder", info, {"features": np.ones((1, 8, 250), np.float32)})  # type: ignore[arg-type]
    assert feed["features"].shape == (1, 8, 300) and padded == {"features": (250, 300)}
    assert not feed["features"][:, :, 250:].any()
    with pytest.raises(BadInputError, match="accepts at most 500"):
        runtime._feed("encoder", info, {"features": np.ones((1, 8, 600), np.float32)})  # type: ignore[arg-type]


def test_a_stateful_package_is_recognised_and_said_so(tmp_path: Path) -> None:
    """A package with Core ML states (`ct.StateType`, macOS 15+) that are not a prediction net's h and c is named
    as stateful with its states, never matched to a component and called without its state (a stateful decoder
    is matched and run: `tests/test_stateful_decoder.py`)."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    from rnnt_tui.core.coreml.matching import package_info
    from rnnt_tui.core.coreml.spec import load_coremltools, read_spec
    from rnnt_tui.core.quiet import quiet

    ct, _ = load_coremltools()

    @mb.program(input_specs=[mb.TensorSpec((1, 4), dtype=types.fp16), mb.StateTensorSpec((1, 4), dtype=types.fp16)],
                opset_version=ct.target.iOS18)
    def prog(x, h):  # type: ignore[no-untyped-def]
        y = mb.add(x=x, y=mb.read_state(input=h))
        mb.coreml_update_state(state=h, value=y)
        return y

    path = tmp_path / "stateful.mlpackage"
    with quiet():
        ct.convert(prog, minimum_deployment_target=ct.target.iOS18).save(str(path))
    spec = read_spec(path)
    assert spec.state_names == ("h",) and spec.state("h").shape == (1, 4) and spec.state("h").dtype == "float16"
    info = package_info(path)
    assert info.component == "stateful" and not info.comparable and "states h" in info.reason
    from rnnt_tui.core.mil.program import MilProgram  # the MIL interpreter runs read_state / coreml_update_state

    program = MilProgram.load(path)
    assert program.input_names == ("x",) and set(program.states) == {"h"}
    x = {"x": np.full((1, 4), 1.5, np.float16)}
    first = next(iter(program.run(x).values()))
    second = next(iter(program.run({**x, "h": program.last_states["h"]}).values()))
    np.testing.assert_array_equal(first, np.full((1, 4), 1.5))
    np.testing.assert_array_equal(second, np.full((1, 4), 3.0))
    np.testing.assert_array_equal(program.last_states["h"], np.full((1, 4), 3.0))
