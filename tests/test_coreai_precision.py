"""`rnnt-tui precision --against coreai`: the Core AI fp16 conversion certified on Apple's runtime against PyTorch
fp32 with coreai_torch.debugging's pieces - a planted fp16 overflow is named with its op, NeMo module and PyTorch
line and fails certification; the demo model's decoder and joint pass and decode identically (issue 19, point 2).
The encoder is left out (its conversion takes minutes here)."""

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

DEMO = Path(__file__).parent.parent / "assets" / "demo"


def test_an_fp16_overflow_is_named_with_module_and_source(loaded_model: Callable[[str], Any]) -> None:
    from rnnt_tui.core.precision.coreai import analyse_component
    from rnnt_tui.core.precision.hazards import FAILING_KINDS

    loaded = loaded_model("rnnt-char")
    model = loaded.model
    rng = np.random.default_rng(0)
    signs = np.sign(rng.standard_normal((1, int(model.decoder.pred_hidden), 2)))
    big = (6e4 * signs + rng.standard_normal(signs.shape)).astype(np.float32)
    feeds = {"encoded": rng.standard_normal((1, int(model.joint.encoder_hidden), 6)).astype(np.float32),
             "decoder_output": big}  # within fp16's range; the prediction projection's sums are not
    report = analyse_component(loaded, "joint", feeds)
    assert report.error is None and report.ops > 0
    assert "Core AI" in report.label
    overflow = [h for h in report.hazards if h.kind == "overflow"]
    assert overflow, [h.to_json() for h in report.hazards]
    first = overflow[0]
    assert first.module == "joint.pred (Linear)", first
    assert first.source is not None and ".py:" in first.source
    assert first.value is not None and first.value > 65504
    assert any(h.kind in FAILING_KINDS for h in report.hazards)
    effects = [h.effect for h in report.hazards if h.effect is not None]
    assert effects == sorted(effects, reverse=True)  # ranked by effect
    assert json.loads(json.dumps(report.to_json()))["hazards"][0]["source"] is not None or effects


def test_the_demo_decoder_and_joint_certify_and_decode_identically(capsys: pytest.CaptureFixture[str]) -> None:
    from rnnt_tui.cli import main

    code = main(["precision", str(DEMO / "demo-rnnt.nemo"), str(DEMO / "the-quick-brown-fox.wav"),
                 "--against", "coreai", "--component", "decoder", "--component", "joint", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == ExitCode.OK, report
    assert report["status"] == "ok" and report["label"].startswith("Core AI (")
    assert [c["component"] for c in report["components"]] == ["decoder", "joint"]
    for comp in report["components"]:
        assert comp["error"] is None and comp["ops"] > 0
        assert 0 < comp["max_diff"] < 0.01 * comp["output_range"]  # fp16, not fp32: it differs, a little
    assert report["decode"]["identical"] and len(report["decode"]["candidate_tokens"]) > 5
