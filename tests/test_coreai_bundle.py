"""`record --convert coreai` and `replay --against coreai`: the tool's Core AI assets travel in the bundle and a
replay runs them on Apple's Core AI runtime without importing torch, NeMo or coreai-torch (the light install), with
the same report as `compare` (issue 19, point 5)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from rnnt_tui.core.coreai.platform import coreai_problem

pytestmark = [pytest.mark.skipif(coreai_problem(need_converter=True) is not None,
                                 reason=f"Core AI cannot run here: {coreai_problem(need_converter=True)}"),
              pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, checkpoints: dict[str, Path]) -> Path:
    from conftest import write_wav

    from rnnt_tui.cli.bundle_cmd import record

    root = tmp_path_factory.mktemp("coreai-bundle")
    clip = write_wav(root / "short.wav", seconds=0.6)
    out = root / "bundle"
    result = CliRunner().invoke(record, [str(checkpoints["rnnt-char"]), str(clip), "--out", str(out), "--runs", "1",
                                         "--warmup", "0", "--convert", "coreai", "--json"])
    assert result.exit_code == 0, result.output
    return out


def test_record_keeps_the_core_ai_assets(bundle: Path) -> None:
    meta = json.loads((bundle / "bundle.json").read_text()) if (bundle / "bundle.json").exists() else None
    assets = sorted(p.name for p in (bundle / "coreai" / "fp32").iterdir())
    assert assets == ["decoder.aimodel", "encoder.aimodel", "joint.aimodel", "preprocessor.aimodel"]
    if meta is not None:
        assert meta["coreai"]["dir"] == "coreai/fp32"


def test_replay_against_coreai_needs_neither_torch_nor_nemo(bundle: Path) -> None:
    code = (
        "import sys, json\n"
        "from rnnt_tui.cli import main\n"
        f"rc = main(['replay', {str(bundle)!r}, '--against', 'coreai', '--runs', '1', '--warmup', '0', '--json'])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'nemo', 'lightning', 'coreai_torch'))\n"
        "print('HEAVY', rc, json.dumps(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    report_text, tail = done.stdout.split("HEAVY", 1)
    rc, heavy = tail.split(" ", 2)[1], json.loads(tail.split(" ", 2)[2])
    assert heavy == [] and rc == "0", (rc, heavy, done.stderr[-1500:])
    report = json.loads(report_text)
    report = report[0] if isinstance(report, list) else report
    assert report["candidate"]["label"].startswith("Core AI")
    assert {c["name"]: c["status"] for c in report["components"]} == {
        "preprocessor": "done", "encoder": "done", "decoder": "done", "joint": "done"}
    assert report["decode"]["candidate_text"] == report["decode"]["reference_text"]
