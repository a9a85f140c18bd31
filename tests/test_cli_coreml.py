"""`compare --against coreml` and `convert` from the command line: exit 3 after converting off macOS; on a Mac the
three tables fill and the sweep covers all four compute units."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from rnnt_tui.cli import main
from rnnt_tui.exit_codes import ExitCode

on_mac = sys.platform == "darwin"


@pytest.mark.skipif(on_mac, reason="the refusal path is for platforms without Core ML")
def test_compare_against_coreml_converts_then_exits_3(capsys: pytest.CaptureFixture[str],
                                                      checkpoints: dict[str, Path], clip: Path) -> None:
    code = main(["compare", str(checkpoints["rnnt-char"]), str(clip), "--against", "coreml", "--json"])
    captured = capsys.readouterr()
    assert code == ExitCode.UNAVAILABLE
    assert "Core ML predictions need macOS" in captured.err
    report = json.loads(captured.out)
    assert report["status"] == "unavailable" and report["candidate"]["available"] is False
    prepared = {p["component"]: p for p in report["candidate"]["prepare"]}
    assert set(prepared) == {"preprocessor", "encoder", "decoder", "joint"}
    for rep in prepared.values():
        assert rep["artifact"] and Path(rep["artifact"]).exists() and rep["prepare_ms"] > 0
    # the reference still ran; nothing is labelled Core ML that did not run in Core ML
    assert [c["name"] for c in report["components"]] == ["preprocessor", "encoder", "decoder", "joint"]
    assert all(c["status"] == "reference-only" for c in report["components"])


@pytest.mark.skipif(on_mac, reason="the refusal path is for platforms without Core ML")
def test_sweep_off_macos_exits_3(capsys: pytest.CaptureFixture[str], checkpoints: dict[str, Path],
                                 clip: Path) -> None:
    code = main(["compare", str(checkpoints["rnnt-char"]), str(clip), "--against", "coreml", "--sweep"])
    assert code == ExitCode.UNAVAILABLE and "macOS" in capsys.readouterr().err


def test_convert_writes_valid_packages(capsys: pytest.CaptureFixture[str], checkpoints: dict[str, Path],
                                       tmp_path: Path) -> None:
    import coremltools as ct

    out = tmp_path / "pkgs"
    code = main(["convert", str(checkpoints["tdt"]), "--out", str(out), "--json"])
    assert code == ExitCode.OK
    rows = json.loads(capsys.readouterr().out)
    assert {r["component"] for r in rows} == {"preprocessor", "encoder", "decoder", "joint"}
    spec = ct.utils.load_spec(str(out / "joint.mlpackage"))
    assert spec.description.metadata.userDefined["rnnt_tui.component"] == "joint"
    assert spec.WhichOneof("Type") == "mlProgram"


@pytest.mark.macos
def test_compare_against_coreml_on_a_mac_fills_every_table(capsys: pytest.CaptureFixture[str],
                                                           checkpoints: dict[str, Path], short_clip: Path) -> None:
    code = main(["compare", str(checkpoints["rnnt-char"]), str(short_clip), "--against", "coreml",
                 "--compute-units", "CPU_ONLY", "--runs", "2", "--json"])
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert code == ExitCode.OK, (report["status"], captured.err[-2000:])
    assert [c["name"] for c in report["components"]] == ["preprocessor", "encoder", "decoder", "joint"]
    for comp in report["components"]:
        assert comp["timings"]["candidate"]["median_ms"] > 0
        assert all(o["ok"] is not False for o in comp["outputs"])
    assert report["decode"]["candidate_text"] == report["decode"]["reference_text"]


@pytest.mark.macos
def test_sweep_with_drift_keeps_a_row_per_unit_on_a_mac(capsys: pytest.CaptureFixture[str],
                                                        checkpoints: dict[str, Path], short_clip: Path,
                                                        core_ml_bridge: Any) -> None:
    """Every unit keeps its row: a unit whose accelerator this Mac lacks is `unavailable` with the reason and no
    components (GitHub's runners have no Neural Engine; simulated here by a stand-in Mac without one), the others
    compare all four components; `--drift` (zero tolerances, so components mismatch) searches every mismatched
    component on the units other than CPU_ONLY; the exit code follows the rows."""
    from rnnt_tui.core.coreml.platform import UNIT_DEVICES, compute_devices
    from rnnt_tui.exit_codes import sweep_exit_code

    if core_ml_bridge is not None:
        core_ml_bridge.available_devices = ("CPU", "GPU")
    devices = compute_devices()
    code = main(["compare", str(checkpoints["rnnt-char"]), str(short_clip), "--against", "coreml", "--drift", "--runs",
                 "1", "--atol", "0", "--rtol", "0", "--json"])
    rows = json.loads(capsys.readouterr().out)["sweep"]
    assert [r["compute_units"] for r in rows] == ["CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL"]
    assert code == sweep_exit_code([r["status"] for r in rows])
    for row in rows:
        accelerators = [d for d in UNIT_DEVICES[row["compute_units"]] if d != "CPU"]
        if accelerators and not any(d in devices for d in accelerators):
            assert row["status"] == "unavailable" and "this Mac has no" in row["error"] and not row["components"]
            continue
        assert set(row["components"]) == {"preprocessor", "encoder", "decoder", "joint"}, row["error"]
        mismatched = {n for n, c in row["components"].items() if c["status"] == "mismatch"}
        if row["compute_units"] == "CPU_ONLY":
            assert row["drift"] == {}
            continue
        assert set(row["drift"]) == mismatched
        for entry in row["drift"].values():
            assert "error" in entry or entry["compared"] > 0, entry
    if core_ml_bridge is not None:
        assert rows[2]["status"] == "unavailable", "the stand-in Mac has no Neural Engine"


def test_sweep_with_onnx_is_refused_before_any_work(capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch, checkpoints: dict[str, Path],
                                                    clip: Path) -> None:
    from rnnt_tui.core import checkpoint

    def no_restore(*_: object, **__: object) -> None:
        raise AssertionError("the model was restored before --sweep was refused")

    monkeypatch.setattr(checkpoint, "restore", no_restore)
    code = main(["compare", str(checkpoints["rnnt-char"]), str(clip), "--against", "onnx", "--sweep"])
    assert code == ExitCode.BAD_INPUT
    assert "--sweep compares Core ML compute units" in capsys.readouterr().err


def test_sweep_exit_code_follows_the_worst_unit() -> None:
    from rnnt_tui.exit_codes import sweep_exit_code

    assert sweep_exit_code(["ok", "ok", "ok", "ok"]) == ExitCode.OK
    assert sweep_exit_code(["ok", "mismatch", "ok", "ok"]) == ExitCode.MISMATCH
    assert sweep_exit_code(["ok", "failed", "ok", "ok"]) == ExitCode.FAILED
    assert sweep_exit_code(["unavailable"] * 4) == ExitCode.UNAVAILABLE
    assert sweep_exit_code(["ok", "unavailable", "ok", "ok"]) == ExitCode.OK
