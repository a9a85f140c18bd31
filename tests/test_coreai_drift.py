"""Where a Core AI conversion drifts, named with Apple's coreai_torch.debugging: a deliberately perturbed
conversion of the joint names the perturbed Linear (its NeMo module and the PyTorch line), a faithful one names
nothing, and `rnnt-tui coreai-drift` reports it in JSON (issue 19, point 3)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rnnt_tui.core.coreai.platform import coreai_problem
from rnnt_tui.exit_codes import ExitCode

pytestmark = [pytest.mark.skipif(coreai_problem(need_converter=True) is not None,
                                 reason=f"Core AI cannot run here: {coreai_problem(need_converter=True)}"),
              pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")]


def _joint_inputs(loaded: Any) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    model = loaded.model
    return {"encoded": rng.standard_normal((1, int(model.joint.encoder_hidden), 5)).astype(np.float32),
            "decoder_output": rng.standard_normal((1, int(model.decoder.pred_hidden), 3)).astype(np.float32)}


def test_a_planted_drift_is_named_by_op_module_and_source(loaded_model: Callable[[str], Any]) -> None:
    import torch

    from rnnt_tui.core.coreai.drift import find_drift

    loaded = loaded_model("rnnt-char")
    last = len(loaded.model.joint.joint_net) - 1

    def perturb(wrapper: Any) -> None:
        with torch.no_grad():
            wrapper.joint.joint_net[last].weight[0, 0] += 0.5

    faithful = find_drift(loaded, "joint", _joint_inputs(loaded))
    assert faithful.first is None and faithful.compared > 0 and not faithful.failing
    planted = find_drift(loaded, "joint", _joint_inputs(loaded), perturb=perturb)
    assert planted.first is not None, planted.summary
    assert planted.first.module == f"joint.joint_net.{last} (Linear)", planted.first
    assert planted.first.source is not None and "wrappers.py" in planted.first.source
    assert planted.first.max_diff is not None and planted.first.max_diff > 0.01
    assert "coreai_torch.debugging" in planted.tool
    assert json.loads(json.dumps(planted.to_json()))["first"]["module"] == planted.first.module


def test_coreai_drift_command_reports_in_json(capsys: pytest.CaptureFixture[str], checkpoints: dict[str, Path],
                                             clip: Path) -> None:
    from rnnt_tui.cli import main

    code = main(["coreai-drift", str(checkpoints["rnnt-char"]), str(clip), "--component", "joint", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == ExitCode.OK, report
    assert report["components"]["joint"] == "done" and report["drift"]["joint"]["first"] is None
    assert report["drift"]["joint"]["compared"] > 0
    assert report["candidate"]["label"].startswith("Core AI")
