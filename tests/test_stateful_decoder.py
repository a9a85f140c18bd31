"""A stateful decoder package (`ct.StateType`, macOS 15+: h and c in Core ML states) through `PackageRuntime`,
run by the MIL interpreter here (the same runtime code drives Core ML's `make_state` / `predict(state=)` on a Mac:
`tests/test_stateful_macos.py`): matched as the decoder, its state made once per decode, carried across steps and
rolled back when a step starts from an earlier state, and the greedy decode equal to NeMo's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor to a Python boolean")

def test_a_stateful_decoder_is_matched_with_its_states(stateful_packages: tuple[Any, Path]) -> None:
    from rnnt_tui.core.coreml.matching import package_info

    loaded, folder = stateful_packages
    info = package_info(folder / "Decoder.mlpackage", loaded.summary)
    assert info.component == "decoder" and info.comparable, info.reason
    assert info.states == {"h": "h_state", "c": "c_state"} and "Core ML states" in info.reason
    assert info.inputs == {"targets": "targets"} and info.outputs == {"decoder_output": "decoder"}
    assert info.feeds == {"target_length": 1}
    assert [s.dtype for s in info.spec.states] == ["float16", "float16"]


def test_the_decode_carries_the_state_and_equals_nemo(stateful_packages: tuple[Any, Path]) -> None:
    from stateful_decoder import check_carried_state, open_stateful

    loaded, folder = stateful_packages
    check_carried_state(open_stateful(loaded, folder, "mil"))


def test_a_step_from_an_earlier_state_rolls_the_state_back(stateful_packages: tuple[Any, Path]) -> None:
    from stateful_decoder import check_rollback

    from rnnt_tui.core.runtimes.base import RuntimeOptions
    from rnnt_tui.core.runtimes.mil_runtime import MilRuntime

    loaded, folder = stateful_packages
    runtime = MilRuntime(loaded, RuntimeOptions(packages_dir=str(folder)))
    runtime.prepare()
    check_rollback(runtime, loaded)
