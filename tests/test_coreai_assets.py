"""Core AI assets a user brings (`--packages DIR --against coreai`): every asset accounted for, and bad ones refused
- missing, truncated, tampered (metadata, bytecode, hash), a Core ML package given to coreai or the reverse, a
function whose signature does not fit its component - with one line naming the file, exit 2, nothing written into
the user's folder (issue 19, points 4 and 7)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import badfiles
import pytest

from rnnt_tui.cli import main
from rnnt_tui.core.coreai.platform import coreai_problem
from rnnt_tui.exit_codes import ExitCode

pytestmark = [pytest.mark.skipif(coreai_problem(need_converter=True) is not None,
                                 reason=f"Core AI cannot run here: {coreai_problem(need_converter=True)}"),
              pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def good_assets(loaded_model: Callable[[str], Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """decoder.aimodel and joint.aimodel of the char model, converted once."""
    from rnnt_tui.core.coreai.convert import convert_components

    folder = tmp_path_factory.mktemp("good-assets")
    for asset in convert_components(loaded_model("rnnt-char"), components=["decoder", "joint"]):
        shutil.copytree(asset.path, folder / asset.path.name)
    return folder


def _folder(good: Path, tmp_path: Path, damage: Callable[[Path], None] | None = None) -> Path:
    folder = tmp_path / "assets"
    shutil.copytree(good, folder)
    if damage is not None:
        damage(folder)
    return folder


def _compare(capsys: pytest.CaptureFixture[str], checkpoint: Path, clip: Path, folder: Path,
             against: str = "coreai", *extra: str) -> tuple[int, str, str]:
    before = badfiles.snapshot(folder)
    code = main(["compare", str(checkpoint), str(clip), "--against", against, "--packages", str(folder),
                 "--runs", "1", "--warmup", "0", *extra])
    captured = capsys.readouterr()
    assert badfiles.changes(before, badfiles.snapshot(folder)) == {"added": [], "removed": [], "modified": []}
    return code, captured.out, captured.err


def _truncate(folder: Path) -> None:
    code = folder / "joint.aimodel" / "main.mlirb"
    code.write_bytes(code.read_bytes()[:100])


def _flip(folder: Path) -> None:
    code = folder / "joint.aimodel" / "main.mlirb"
    data = bytearray(code.read_bytes())
    data[len(data) // 2] ^= 0xFF
    code.write_bytes(bytes(data))


def _bad_metadata(folder: Path) -> None:
    (folder / "joint.aimodel" / "metadata.json").write_text('{"assetVersion": "2.0", ')


def _no_hash(folder: Path) -> None:
    (folder / "joint.aimodel" / "main.hash").unlink()


def _misfit(folder: Path) -> None:
    """The joint's program, labelled an encoder by its metadata (not covered by the hash)."""
    meta_path = folder / "joint.aimodel" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["creatorDefinedMetadata"]["rnnt_tui.component"] = "encoder"
    meta_path.write_text(json.dumps(meta))


@pytest.mark.parametrize(("damage", "problem"), [
    (_truncate, "does not match main.hash"), (_flip, "does not match main.hash"),
    (_bad_metadata, "metadata.json is not readable JSON"), (_no_hash, "has no main.hash"),
    (_misfit, "it is a encoder asset but no function fits")])
def test_a_bad_asset_is_refused_naming_it(damage: Callable[[Path], None], problem: str, good_assets: Path,
                                          tmp_path: Path, checkpoints: dict[str, Path], clip: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    folder = _folder(good_assets, tmp_path, damage)
    code, out, err = _compare(capsys, checkpoints["rnnt-char"], clip, folder)
    flat = "".join(err.split())
    assert code == ExitCode.BAD_INPUT, err
    assert "".join(str(folder / "joint.aimodel").split()) in flat and "".join(problem.split()) in flat, err
    assert err.count("error:") == 1 and "Traceback" not in err and out == ""


def test_a_core_ml_package_is_not_a_core_ai_asset_and_the_reverse(good_assets: Path, tmp_path: Path,
                                                                  checkpoints: dict[str, Path], clip: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    core_ml = tmp_path / "coreml"
    (core_ml / "joint.mlpackage").mkdir(parents=True)
    code, _, err = _compare(capsys, checkpoints["rnnt-char"], clip, core_ml)
    assert code == ExitCode.BAD_INPUT and "holds Core ML packages (joint.mlpackage)" in " ".join(err.split())
    code, _, err = _compare(capsys, checkpoints["rnnt-char"], clip, core_ml / "joint.mlpackage")
    assert code == ExitCode.BAD_INPUT and "not a Core AI asset" in " ".join(err.split())
    for against in ("mil", "coreml"):
        code, _, err = _compare(capsys, checkpoints["rnnt-char"], clip, good_assets, against)
        assert code == ExitCode.BAD_INPUT and "use --against coreai" in " ".join(err.split()), (against, err)
    missing = tmp_path / "nowhere"
    code = main(["compare", str(checkpoints["rnnt-char"]), str(clip), "--against", "coreai", "--packages",
                 str(missing)])
    err = capsys.readouterr().err
    assert code == ExitCode.BAD_INPUT and "no such folder of Core AI assets" in " ".join(err.split())
    assert not missing.exists()


def test_a_folder_of_assets_runs_and_every_file_is_accounted_for(good_assets: Path, tmp_path: Path,
                                                                 checkpoints: dict[str, Path], clip: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    folder = _folder(good_assets, tmp_path)
    (folder / "README.txt").write_text("notes")
    code, out, err = _compare(capsys, checkpoints["rnnt-char"], clip, folder, "coreai", "--json")
    report = json.loads(out)
    inventory = {(Path(e["path"]).name, e["mapped_to"]) for e in report["candidate"]["inventory"]}
    assert inventory == {("decoder.aimodel", "decoder"), ("joint.aimodel", "joint"), ("README.txt", None)}
    statuses = {c["name"]: c["status"] for c in report["components"]}
    assert statuses == {"preprocessor": "reference-only", "encoder": "reference-only", "decoder": "done",
                        "joint": "done"}
    assert report["candidate"]["functions"]["joint"] == [
        "main(encoded float32[1x64x?], decoder_output float32[1x64x?]) -> logits float32[1x?x?x29]"]
    # the candidate's own end-to-end decode needs its encoder: with none in the folder the pipeline says so
    assert code == ExitCode.FAILED and "encoder is loaded" in " ".join(err.split()), err


def test_one_asset_with_several_functions_maps_each_by_its_signature(loaded_model: Callable[[str], Any],
                                                                     tmp_path: Path) -> None:
    """A multi-function asset (two static-shape joint entrypoints) is read and both functions are kept."""
    import torch

    from rnnt_tui.core.coreai.export import export_program, load_coreai_torch
    from rnnt_tui.core.coreai.matching import match_assets
    from rnnt_tui.core.coreml.wrappers import wrap

    coreai_torch = load_coreai_torch()
    joint = wrap(loaded_model("rnnt-char").eval(), "joint")
    converter = coreai_torch.TorchConverter()
    for frames in (4, 8):
        program = export_program(joint, (torch.randn(1, 64, frames), torch.randn(1, 64, 1)))
        converter.add_exported_program(program, input_names=["encoded", "decoder_output"], output_names=["logits"],
                                       entrypoint_name=f"joint_{frames}")
    converter.to_coreai().save_asset(tmp_path / "heads.aimodel")
    matched = match_assets(tmp_path)
    assert [m.function.name for m in matched.used["joint"]] == ["joint_4", "joint_8"]
    assert {e.function: e.mapped_to for e in matched.entries} == {"joint_4": "joint", "joint_8": "joint"}
