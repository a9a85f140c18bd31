"""What `precision --against coreai` refuses: the CLI (a usage error, exit 2, before anything is read) and the app's
engine (a refusal the precision screen shows) say the same sentence for the same combination, the one
`core.precision.refusals` words. No model is restored and no Core AI wheel is needed: refusals come first."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from rnnt_tui.core.errors import RuntimeUnavailableError
from rnnt_tui.core.precision.refusals import certification_problem
from rnnt_tui.exit_codes import ExitCode

BAD = [("mixed", None), ("fp16-all", None), ("fp16", "int8"), ("mixed", "palettize4")]


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    """A checkpoint and a clip that exist but are not read (refusals come before reading them)."""
    (tmp_path / "model.nemo").write_bytes(b"not read")
    (tmp_path / "clip.wav").write_bytes(b"not read")
    return tmp_path / "model.nemo", tmp_path / "clip.wav"


def _cli_says(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    from rnnt_tui.cli import main

    assert main(argv) == ExitCode.BAD_INPUT
    return " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize(("precision", "weights"), BAD)
def test_the_cli_and_the_engine_refuse_core_ai_in_the_same_words(precision: str, weights: str | None,
                                                                  inputs: tuple[Path, Path],
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from rnnt_tui.app.engine import Engine, precision_problem

    expected = certification_problem("coreai", precision, weights)
    assert expected is not None and expected.startswith("Core AI certifies its fp16 conversion here, not ")
    argv = ["precision", *map(str, inputs), "--against", "coreai", "--precision", precision]
    said = _cli_says([*argv, *(["--weights", weights] if weights else [])], capsys)
    assert f"Error: {expected}" in said, said
    assert precision_problem("coreai", precision, weights) == expected
    with pytest.raises(RuntimeUnavailableError) as refused:  # the engine call the app's worker makes
        Engine().precision(precision, weights, "coreai", lambda _envelope: None, threading.Event())
    assert str(refused.value) == expected


def test_weights_are_named_before_precision_and_packages_are_refused(inputs: tuple[Path, Path],
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert "not int8 weights" in (certification_problem("coreai", "mixed", "int8") or "")
    packages = certification_problem("coreai", packages=".")
    assert packages is not None and "--packages" in packages
    said = _cli_says(["precision", *map(str, inputs), "--against", "coreai", "--packages", "."], capsys)
    assert f"Error: {packages}" in said, said


@pytest.mark.parametrize(("precision", "weights"), [("fp16", None), *BAD])
def test_the_mil_interpreter_certifies_every_combination(precision: str, weights: str | None) -> None:
    from rnnt_tui.app.engine import precision_problem

    assert certification_problem("mil", precision, weights) is None
    assert precision_problem("mil", precision, weights) is None


def test_an_unknown_runtime_is_refused_and_component_needs_core_ai(inputs: tuple[Path, Path],
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from rnnt_tui.app.engine import precision_problem

    refused = precision_problem("onnx")
    assert refused == certification_problem("onnx") and refused is not None and "not onnx" in refused
    said = _cli_says(["precision", *map(str, inputs), "--component", "joint"], capsys)
    assert "--component chooses Core AI components" in said
