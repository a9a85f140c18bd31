"""A bundle recorded in the suite (with the tool's own fp32 conversion inside) replayed against Core ML itself, and
against the MIL interpreter on the same packages: both pass, decode like NeMo, and the Core ML run is labelled Core
ML. Skipped elsewhere: Core ML predictions only run on Apple platforms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from rnnt_tui.paths import demo_checkpoint, demo_dir

pytestmark = [
    pytest.mark.macos,
]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rnnt_tui.cli.bundle_cmd import record

    out = tmp_path_factory.mktemp("bundle") / "demo.rnntb"
    result = CliRunner().invoke(record, [str(demo_checkpoint()), str(demo_dir() / "hello-world.wav"), "--out",
                                         str(out), "--convert", "fp32", "--runs", "1", "--warmup", "0"])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("against", ["coreml", "mil"])
def test_replay_recorded_bundle(bundle: Path, against: str, core_ml_label: str) -> None:
    from rnnt_tui.cli.bundle_cmd import replay

    result = CliRunner().invoke(replay, [str(bundle), "--against", against, "--json", "--runs", "1", "--warmup", "0"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "ok"
    want = core_ml_label if against == "coreml" else "Core ML program, MIL interpreter"
    assert report["candidate"]["label"] == want
    assert report["decode"]["candidate_text"] == report["decode"]["nemo_text"] == "hello world"
    assert report["bundle"]["warnings"] == []
