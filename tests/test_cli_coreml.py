"""`compare --against coreml` and `convert` from the command line: exit 3 after converting off macOS; on a Mac the
three tables fill and the sweep covers all four compute units."""

from __future__ import annotations

import json
import sys
from pathlib import Path

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
    assert report["components"] == []  # nothing is labelled Core ML that did not run in Core ML


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
                                                           checkpoints: dict[str, Path], clip: Path) -> None:
    code = main(["compare", str(checkpoints["rnnt-char"]), str(clip), "--against", "coreml",
                 "--compute-units", "CPU_ONLY", "--runs", "2", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == ExitCode.OK, report["status"]
    assert [c["name"] for c in report["components"]] == ["preprocessor", "encoder", "decoder", "joint"]
    for comp in report["components"]:
        assert comp["timings"]["candidate"]["median_ms"] > 0
        assert all(o["ok"] is not False for o in comp["outputs"])
    assert report["decode"]["candidate_text"] == report["decode"]["reference_text"]


@pytest.mark.macos
def test_sweep_compares_all_four_units_on_a_mac(capsys: pytest.CaptureFixture[str], checkpoints: dict[str, Path],
                                                clip: Path) -> None:
    main(["compare", str(checkpoints["rnnt-char"]), str(clip), "--against", "coreml", "--sweep", "--runs", "1",
          "--json"])
    rows = json.loads(capsys.readouterr().out)["sweep"]
    assert [r["compute_units"] for r in rows] == ["CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL"]
    for row in rows:
        assert set(row["components"]) == {"preprocessor", "encoder", "decoder", "joint"}


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


@pytest.mark.macos
def test_sweep_exit_code_on_a_mac_matches_its_rows(capsys: pytest.CaptureFixture[str], checkpoints: dict[str, Path],
                                                   clip: Path) -> None:
    from rnnt_tui.exit_codes import sweep_exit_code

    code = main(["compare", str(checkpoints["rnnt-char"]), str(clip), "--against", "coreml", "--sweep", "--runs",
                 "1", "--json"])
    rows = json.loads(capsys.readouterr().out)["sweep"]
    assert code == sweep_exit_code([r["status"] for r in rows])
