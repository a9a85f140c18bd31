"""The MIL interpreter refuses what it cannot run with one clear message naming the file (or op) and the problem:
missing files, compiled models, neural-network models, broken specs and weights, unsupported ops, bad feeds."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rnnt_tui.core.errors import BadInputError, StepFailedError


@pytest.fixture(scope="session")
def joint_package(loaded_model: Callable[[str], Any]) -> Path:
    from rnnt_tui.core.coreml.convert import convert_components

    return convert_components(loaded_model("tdt"), precision="fp32", max_frames=200, components=("joint",))[0].path


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _weights(package: Path) -> Path:
    return next(package.glob("Data/com.apple.CoreML/weights/*.bin"))


def test_missing_file(tmp_path: Path) -> None:
    from rnnt_tui.core.mil import MilProgram

    with pytest.raises(BadInputError, match="no such Core ML package") as info:
        MilProgram.load(tmp_path / "nothing.mlpackage")
    assert info.value.path == tmp_path / "nothing.mlpackage"


def test_compiled_model_asks_for_the_package(tmp_path: Path) -> None:
    from rnnt_tui.core.mil import MilProgram

    compiled = tmp_path / "joint.mlmodelc"
    compiled.mkdir()
    (compiled / "model.mil").write_text("program(1.0)\n")
    with pytest.raises(BadInputError, match=r"compiled model cannot be read back; give the \.mlpackage"):
        MilProgram.load(compiled)


def test_neural_network_model_is_refused(tmp_path: Path) -> None:
    import coremltools as ct
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder

    from rnnt_tui.core.mil import MilProgram

    builder = NeuralNetworkBuilder([("x", datatypes.Array(3))], [("y", datatypes.Array(3))])
    builder.add_activation("relu", "RELU", "x", "y")
    path = tmp_path / "nn.mlmodel"
    ct.utils.save_spec(builder.spec, str(path))
    with pytest.raises(BadInputError, match="neuralNetwork model, not an ML program"):
        MilProgram.load(path)


def test_garbage_spec(joint_package: Path, tmp_path: Path) -> None:
    from rnnt_tui.core.mil import MilProgram

    broken = _copy(joint_package, tmp_path / "garbage.mlpackage")
    (broken / "Data/com.apple.CoreML/model.mlmodel").write_bytes(b"\x08\x07garbage, not a protobuf" * 10)
    with pytest.raises(BadInputError) as info:
        MilProgram.load(broken)
    assert str(broken) in str(info.value)


@pytest.mark.parametrize("cut", ["truncated", "empty", "missing"])
def test_broken_weights(joint_package: Path, tmp_path: Path, cut: str) -> None:
    from rnnt_tui.core.mil import MilProgram

    broken = _copy(joint_package, tmp_path / f"{cut}.mlpackage")
    weights = _weights(broken)
    before = {p: p.stat().st_mtime for p in joint_package.rglob("*")}
    if cut == "missing":
        weights.unlink()
    else:
        data = weights.read_bytes()
        weights.write_bytes(data[: len(data) // 2] if cut == "truncated" else b"")
    with pytest.raises(BadInputError, match="weight") as info:
        MilProgram.load(broken)
    assert info.value.path == broken
    assert {p: p.stat().st_mtime for p in joint_package.rglob("*")} == before  # the source was not touched


def test_bad_feeds(joint_package: Path) -> None:
    from rnnt_tui.core.mil import MilProgram

    program = MilProgram.load(joint_package)
    enc = np.zeros((1, 64, 5), np.float32)
    dec = np.zeros((1, 64, 2), np.float32)
    with pytest.raises(BadInputError, match="missing input"):
        program.run({"encoded": enc})
    with pytest.raises(BadInputError, match="rank 2"):
        program.run({"encoded": enc[0], "decoder_output": dec})
    with pytest.raises(BadInputError, match="shape"):
        program.run({"encoded": np.zeros((1, 63, 5), np.float32), "decoder_output": dec})
    with pytest.raises(BadInputError, match="unknown input"):
        program.run({"encoded": enc, "decoder_output": dec, "extra": enc})
    upper = program.input_shape("encoded")
    assert upper == (1, 64, None)
    with pytest.raises(BadInputError, match=r"accepts 1\.\.\d+ on axis 2"):  # beyond the RangeDim Core ML declares
        program.run({"encoded": np.zeros((1, 64, 5000), np.float32), "decoder_output": dec})
    assert program.run({"encoded": enc, "decoder_output": dec})["logits"].shape[:3] == (1, 5, 2)
    assert program.load_ms > 0 and program.plan_ms > 0


def _tiny_program(tmp_path: Path, build: Callable[[Any], Any], name: str) -> Path:
    import coremltools as ct
    from coremltools.converters.mil.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4, 3, 3))], opset_version=ct.target.macOS14)
    def prog(x: Any) -> Any:
        return build(x)

    model = ct.convert(prog, convert_to="mlprogram", compute_precision=ct.precision.FLOAT32,
                       minimum_deployment_target=ct.target.macOS14)
    path = tmp_path / f"{name}.mlpackage"
    model.save(str(path))
    return path


def test_unsupported_op_names_type_name_and_package(tmp_path: Path) -> None:
    from coremltools.converters.mil.mil import Builder as mb

    from rnnt_tui.core.mil import MilProgram, UnsupportedOpError

    path = _tiny_program(tmp_path, lambda x: mb.local_response_norm(x=mb.relu(x=x), size=3, name="lrn_0"), "lrn")
    program = MilProgram.load(path)
    assert program.unsupported_ops == (("local_response_norm", "lrn_0"),)
    with pytest.raises(UnsupportedOpError) as info:
        program.run({program.input_names[0]: np.ones((1, 4, 3, 3), np.float32)})
    message = str(info.value)
    assert "local_response_norm" in message and "lrn_0" in message and str(path) in message
    assert isinstance(info.value, StepFailedError)


def test_value_inference_fallback_runs_an_op_without_a_kernel(tmp_path: Path) -> None:
    """An op with no native kernel but with coremltools' value inference still runs, with coremltools' numbers."""
    from coremltools.converters.mil.mil import Builder as mb

    from rnnt_tui.core.mil import MilProgram
    from rnnt_tui.core.mil.kernels_base import KERNELS

    assert "thresholded_relu" not in KERNELS
    path = _tiny_program(tmp_path, lambda x: mb.thresholded_relu(x=x, alpha=0.5), "thr")
    program = MilProgram.load(path)
    x = np.linspace(-1, 1, 36, dtype=np.float32).reshape(1, 4, 3, 3)
    out = next(iter(program.run({program.input_names[0]: x}).values()))
    np.testing.assert_array_equal(out, np.where(x > 0.5, x, 0))
