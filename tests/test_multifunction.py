"""Multifunction ML programs (`ct.utils.save_multifunction`, macOS 15+): each function's I/O read apart, either
function run by the MIL interpreter, and one state shared by functions that declare the same states, as an app
loads them (`function_name`, one `make_state()`). On a Mac Core ML opens them; elsewhere the test stand-in for its
native layer does ([simulated]).

The packages are two tiny stateful programs (an accumulator, in fp16 as coremltools' states are) converted here
with different input lengths and merged, plus one whose state has another shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

FUNCTIONS = {"first": (3, 1.0), "next": (5, 2.0)}  # function -> (input length, output scale)


def _accumulator(width: int, scale: float) -> Any:
    import torch

    class Accumulator(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("acc", torch.zeros(1, width))
            self.lin = torch.nn.Linear(4, width)
            with torch.no_grad():
                self.lin.weight.copy_(torch.arange(4.0 * width).reshape(width, 4) / 10)
                self.lin.bias.fill_(0.5)

        def forward(self, x: Any) -> Any:
            y = self.lin(x).mean(1) + self.acc
            self.acc[:] = y
            return y * scale

    return Accumulator().eval()


def _convert(width: int, length: int, scale: float, out: Path) -> Path:
    import coremltools as ct
    import torch

    traced = torch.jit.trace(_accumulator(width, scale), (torch.zeros(1, length, 4),))
    mlmodel = ct.convert(traced, inputs=[ct.TensorType(name="x", shape=(1, length, 4))],
                         outputs=[ct.TensorType(name="y")], minimum_deployment_target=ct.target.macOS15,
                         states=[ct.StateType(wrapped_type=ct.TensorType(shape=(1, width), dtype=np.float16),
                                              name="acc")],
                         compute_precision=ct.precision.FLOAT32, skip_model_load=True)
    mlmodel.save(str(out))
    return out


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the two-function package, a single-function package whose state is [1, 8])."""
    import coremltools as ct

    root = tmp_path_factory.mktemp("multifunction")
    descriptor = ct.utils.MultiFunctionDescriptor()
    for name, (length, scale) in FUNCTIONS.items():
        part = _convert(4, length, scale, root / f"{name}.mlpackage")
        descriptor.add_function(str(part), src_function_name="main", target_function_name=name)
    descriptor.default_function_name = "next"
    ct.utils.save_multifunction(descriptor, str(root / "both.mlpackage"))
    return root / "both.mlpackage", _convert(8, 3, 1.0, root / "wide.mlpackage")


def _expected(inputs: list[tuple[str, np.ndarray]]) -> list[np.ndarray]:
    """The accumulator's outputs over the calls, its state rounded to fp16 between calls (a Core ML state's type)."""
    weight, acc, out = np.arange(16.0, dtype=np.float32).reshape(4, 4) / 10, np.zeros((1, 4), np.float32), []
    for name, x in inputs:
        y = (x @ weight.T + 0.5).mean(1) + acc
        acc = y.astype(np.float16).astype(np.float32)
        out.append(y * FUNCTIONS[name][1])
    return out


def _inputs() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [(name, rng.standard_normal((1, FUNCTIONS[name][0], 4)).astype(np.float32))
            for name in ("first", "next", "next")]


def test_each_function_is_read_apart(packages: tuple[Path, Path]) -> None:
    from rnnt_tui.core.coreml.spec import read_spec
    from rnnt_tui.core.errors import BadInputError

    both, wide = packages
    default, first = read_spec(both), read_spec(both, "first")
    assert default.functions == first.functions == ("first", "next")
    assert (default.function, default.input("x").shape) == ("next", (1, 5, 4))  # the package's default function
    assert (first.function, first.input("x").shape) == ("first", (1, 3, 4))
    assert first.state_names == ("acc",) and first.state("acc").shape == (1, 4)
    assert read_spec(wide).functions == () and read_spec(wide).function == "main"
    with pytest.raises(BadInputError) as refused:
        read_spec(both, "third")
    assert "both.mlpackage" in str(refused.value) and "its functions: first, next" in str(refused.value)
    with pytest.raises(BadInputError, match="it has one function, main"):
        read_spec(wide, "first")


def test_the_mil_interpreter_runs_both_functions_on_one_state(packages: tuple[Path, Path]) -> None:
    from rnnt_tui.core.errors import BadInputError
    from rnnt_tui.core.mil.program import MilProgram

    both, wide = packages
    programs = {name: MilProgram.load(both, name) for name in FUNCTIONS}
    assert MilProgram.load(both).function == "next" and programs["first"].function == "first"
    state = programs["first"].make_state()
    inputs = _inputs()
    outputs = [programs[name].run({"x": x}, state=state)["y"] for name, x in inputs]
    for got, want in zip(outputs, _expected(inputs), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(BadInputError) as refused:  # a state of another shape is no state of this function
        programs["next"].run({"x": inputs[1][1]}, state=MilProgram.load(wide).make_state())
    assert "function next" in str(refused.value) and "[1, 8]" in str(refused.value)


def test_a_users_multifunction_step_is_refused_not_guessed(packages: tuple[Path, Path]) -> None:
    """`stream --step` maps a package per phase; a multifunction one is named and refused, never run with its
    default function standing in for both phases."""
    from rnnt_tui.core.errors import BadInputError
    from rnnt_tui.core.stream.package_io import package_roles

    both, _ = packages
    with pytest.raises(BadInputError) as refused:
        package_roles((both,), None, "mil")
    assert "both.mlpackage" in str(refused.value) and "multifunction package (functions first, next)" in str(
        refused.value)


@pytest.mark.macos
def test_core_ml_opens_each_function_and_shares_one_state(packages: tuple[Path, Path], core_ml_label: str) -> None:
    """What an app does: the package compiled once, each function loaded by name, one `make_state()` for both;
    the predictions equal the MIL interpreter's arithmetic. A function the package lacks fails the load by name."""
    from rnnt_tui.core.coreml.load import CoreMLLoader, CoreMLLoadError
    from rnnt_tui.core.coreml.platform import macos_version, version_text

    version = macos_version() or (0,)
    if version < (15, 0):
        pytest.skip(f"multifunction models and Core ML states need macOS 15+ (this Mac runs {version_text(version)})")
    both, _ = packages
    loader = CoreMLLoader(use_cache=False)
    try:
        opened = {name: loader.load(both, "CPU_ONLY", function=name) for name in FUNCTIONS}
        assert opened["first"].compiled_now and opened["next"].compiled_now
        state = opened["first"].model.make_state()
        inputs = _inputs()
        outputs = [opened[name].model.predict({"x": x}, state=state)["y"] for name, x in inputs]
        for got, want in zip(outputs, _expected(inputs), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
        with pytest.raises(CoreMLLoadError) as refused:
            loader.load(both, "CPU_ONLY", function="third")
        assert "its function third" in str(refused.value) and "both.mlpackage" in str(refused.value)
    finally:
        opened = {}
        loader.close()
