"""A stateful decoder package through Core ML on a Mac (macOS 15+: `MLModel.make_state`, `predict(state=)`,
`MLState.read_state` / `write_state` of coremltools 9.0), via the same `PackageRuntime` code the MIL interpreter
runs in `tests/test_stateful_decoder.py`: one state per decode, carried across steps, rolled back with
`write_state`, and the greedy decode equal to NeMo's. Off a Mac it runs against the test stand-in ([simulated]),
which also counts its `newState` calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.macos,
    pytest.mark.filterwarnings("ignore:Converting a tensor to a Python boolean"),
]


def test_core_ml_carries_a_stateful_decoders_state(stateful_packages: tuple[Any, Path], core_ml_bridge: Any,
                                                   core_ml_label: str) -> None:
    from stateful_decoder import check_carried_state, check_rollback, open_stateful

    from rnnt_tui.core.coreml.platform import macos_version, version_text

    version = macos_version() or (0,)
    if version < (15, 0):
        pytest.skip(f"Core ML states need macOS 15+ (this Mac runs {version_text(version)})")
    loaded, folder = stateful_packages
    session = open_stateful(loaded, folder, "coreml")
    assert session.candidate.label == core_ml_label
    made = core_ml_bridge.new_states if core_ml_bridge is not None else 0
    check_carried_state(session)
    check_rollback(session.candidate, loaded)
    if core_ml_bridge is not None:  # every state the runtime made came from the bridge's newState (make_state)
        assert core_ml_bridge.new_states - made == session.candidate.states_made - 1  # 1: primed at prepare
