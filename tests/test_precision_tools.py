"""Lint, compressed weights, mixed precision, the edge sweep and the two CLI commands, on the TDT factory model
(its packages come from the session's cache when test_precision_fp16 ran first). Numbers are "Core ML program,
MIL interpreter"."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import write_wav

pytestmark = [pytest.mark.filterwarnings("ignore:Converting a tensor to a Python boolean"),
              pytest.mark.filterwarnings("ignore::RuntimeWarning")]

_packages: dict[str, dict[str, Path]] = {}


@pytest.fixture(scope="module")
def tdt(loaded_model: Callable[[str], Any]) -> Callable[[str], dict[str, Path]]:
    from rnnt_tui.core.coreml.convert import convert_components

    def get(precision: str) -> dict[str, Path]:
        if precision not in _packages:
            _packages[precision] = {p.component: p.path for p in convert_components(loaded_model("tdt"), precision)}
        return _packages[precision]

    return get


def test_lint_finds_fp16_index_arithmetic_only_where_it_is(tdt: Callable[[str], dict[str, Path]]) -> None:
    from rnnt_tui.core.precision.lint import lint_package

    plain = lint_package(tdt("fp16-all")["encoder"])
    checks = {(f.check, f.module) for f in plain.findings if f.severity == "error"}
    assert ("fp16-index-arithmetic", "encoder.pos_enc") in checks
    pre = lint_package(tdt("fp16-all")["preprocessor"])
    assert any(f.check == "fp16-flexible-statistic" and f.module == "preprocessor.featurizer"
               for f in pre.findings)
    fixed = lint_package(tdt("fp16")["encoder"])
    assert not fixed.count("error") and fixed.compute_dtypes.get("fp32")
    info = [f for f in lint_package(tdt("fp16")["decoder"]).findings if f.check == "not-on-neural-engine"]
    assert info and all(f.severity == "info" and "informational" in f.message for f in info)


def test_our_fp16_packages_pass_our_own_lint_and_say_what_each_is_meant_for(
        tdt: Callable[[str], dict[str, Path]], loaded_model: Callable[[str], Any]) -> None:
    """Within the Neural Engine's limits (encoder: <= 16384 feature frames, at least one encoder frame), and the
    preprocessor (raw samples) plainly meant for the CPU: no warning, no error; the expected ones are info."""
    from rnnt_tui.core.coreml.spec import read_spec
    from rnnt_tui.core.precision.lint import NE_DIM_LIMIT, lint_package

    reports = {c: lint_package(p) for c, p in tdt("fp16").items()}
    for component, report in reports.items():
        assert not report.failing, (component, [f for f in report.findings if f.severity != "info"])
        assert report.intended_units and report.intended_why, component
    assert reports["preprocessor"].intended_units == "CPU_ONLY"
    assert "16384" in (reports["preprocessor"].intended_why or "")
    expected = [f for f in reports["preprocessor"].findings if f.check == "dim-over-16384"]
    assert expected and all(f.severity == "info" and f.message.startswith("expected") for f in expected)
    features = next(t for t in read_spec(tdt("fp16")["encoder"]).inputs if t.name == "features")
    lo, hi = features.bounds(2)
    factor = loaded_model("tdt").model.encoder.subsampling_factor
    assert lo == factor and hi <= NE_DIM_LIMIT


def test_lint_bad_input_is_one_line_and_the_rest_goes_on(tdt: Callable[[str], dict[str, Path]],
                                                        tmp_path: Path) -> None:
    import shutil

    from rnnt_tui.core.errors import BadInputError
    from rnnt_tui.core.precision.lint import lint

    folder = tmp_path / "pkgs"
    folder.mkdir()
    shutil.copytree(tdt("fp16")["joint"], folder / "joint.mlpackage")
    (folder / "broken.mlpackage").mkdir()
    (folder / "Model.mlmodelc").mkdir()
    reports = {r.path.name: r for r in lint(folder)}
    assert reports["joint.mlpackage"].error is None and reports["joint.mlpackage"].ops > 0
    assert "broken.mlpackage" in (reports["broken.mlpackage"].error or "")
    assert "cannot be read back" in (reports["Model.mlmodelc"].error or "")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="not a Core ML package"):
        lint(tmp_path / "empty")


@pytest.mark.parametrize("weights", ["int8", "palettize4"])
def test_compressed_weights_run_and_stay_close(weights: str, tdt: Callable[[str], dict[str, Path]],
                                               loaded_model: Callable[[str], Any], tmp_path: Path) -> None:
    from rnnt_tui.core.coreml.weights import compress_package
    from rnnt_tui.core.errors import BadInputError
    from rnnt_tui.core.mil import MilProgram

    source = tdt("fp16")["joint"]
    before = sorted((p.relative_to(source), p.stat().st_size) for p in source.rglob("*") if p.is_file())
    packed = compress_package(source, weights)
    assert packed != source and packed.is_dir()
    assert sorted((p.relative_to(source), p.stat().st_size) for p in source.rglob("*") if p.is_file()) == before
    program = MilProgram.load(packed)
    assert program.weight_compression
    rng = np.random.default_rng(0)
    feeds = {"encoded": rng.standard_normal((1, 64, 9)).astype(np.float32),
             "decoder_output": rng.standard_normal((1, 64, 1)).astype(np.float32)}
    ref = MilProgram.load(tdt("fp32")["joint"]).run(feeds)["logits"].astype(np.float64)
    got = program.run(feeds)["logits"].astype(np.float64)
    assert np.isfinite(got).all() and 0 < np.abs(got - ref).max() < 0.25 * (ref.max() - ref.min())
    with pytest.raises(BadInputError, match="over the package itself"):
        compress_package(source, weights, out_dir=source.parent)
    with pytest.raises(BadInputError, match=r"\.mlpackage"):
        compress_package(tmp_path, weights)


def test_mixed_precision_meets_the_bounds_and_prints_a_reusable_selector(
        loaded_model: Callable[[str], Any], tmp_path: Path) -> None:
    from rnnt_tui.core.cache import ArtifactCache
    from rnnt_tui.core.precision.mixed import find_mixed_precision

    clip = write_wav(tmp_path / "one.wav", seconds=1.0)
    result = find_mixed_precision(loaded_model("tdt"), [clip])
    assert result.passed and result.decode_identical and all(result.component_ok.values())
    assert 0 < result.share <= 0.05 and result.search_s <= 3 * result.baseline_s
    kept = result.keep_by_component()
    assert {"start_pos", "end_pos"} <= set(kept["encoder"])
    namespace: dict[str, Any] = {}
    exec(result.snippet, namespace)  # the printed snippet is runnable Python

    class Op:
        name, op_type = "start_pos", "sub"

    assert namespace["compute_precision"]("encoder").op_selector(Op()) is False
    Op.name = "linear_0"
    assert namespace["compute_precision"]("encoder").op_selector(Op()) is True
    builds = ArtifactCache.stats.builds
    again = find_mixed_precision(loaded_model("tdt"), [clip])
    assert ArtifactCache.stats.builds == builds and again.keep == result.keep
    assert result.to_json()["label"] == "Core ML program, MIL interpreter"


def test_edge_sweep_lists_every_bound(tdt: Callable[[str], dict[str, Path]],
                                      loaded_model: Callable[[str], Any]) -> None:
    from rnnt_tui.core.precision.edges import sweep

    samples = np.resize(np.sin(np.arange(4000) * 0.03), 16000).astype(np.float32) * 0.2
    packages = {c: p for c, p in tdt("fp16").items() if c in ("encoder", "joint")}
    result = {s.component: s for s in sweep(loaded_model("tdt"), packages, samples, max_seconds=1.0)}
    encoder = result["encoder"]
    lo, hi = encoder.bounds["features"]
    lengths = {p.length: p.status for p in encoder.points}
    assert lo == loaded_model("tdt").model.encoder.subsampling_factor  # one encoder frame's worth at least
    assert {lo, lo + 1, hi} <= set(lengths) and lengths[hi] == "skipped"
    assert lengths[lo + 1] in ("ok", "drift", "fail", "nemo-fails")
    joint = result["joint"]
    assert not joint.problems and {p.status for p in joint.points} <= {"ok", "skipped"}
    assert joint.bounds["decoder_output"][1] in {p.length for p in joint.points if p.status == "ok"}


def test_cli_lint_and_precision_exit_codes(tdt: Callable[[str], dict[str, Path]], checkpoints: dict[str, Path],
                                           tmp_path: Path, loaded_model: Callable[[str], Any]) -> None:
    import json

    from click.testing import CliRunner

    from rnnt_tui.cli.precision_cmd import lint, precision

    runner = CliRunner()
    bad = runner.invoke(lint, [str(tdt("fp16-all")["encoder"]), "--json"])
    assert bad.exit_code == 1, bad.output
    data = json.loads(bad.stdout)
    assert any(f["check"] == "fp16-index-arithmetic" for f in data["packages"][0]["findings"])
    import shutil

    from rnnt_tui.core.coreml.convert import convert_components

    wide = convert_components(loaded_model("tdt"), "fp16", components=["encoder"], max_frames=8000)[0].path
    warned = runner.invoke(lint, [str(wide), "--json"])  # 8000 x 4 feature frames: over the Neural Engine's limit
    assert warned.exit_code == 1, warned.output
    assert {f["check"] for f in json.loads(warned.stdout)["packages"][0]["findings"]
            if f["severity"] == "warning"} == {"dim-over-16384"}

    loose = tmp_path / "loose"
    loose.mkdir()
    shutil.copytree(tdt("fp16")["joint"], loose / "joint.mlpackage")
    assert runner.invoke(lint, [str(loose)]).exit_code == 0  # only expected findings: info
    missing = runner.invoke(lint, [str(tmp_path / "none")])
    assert missing.exit_code == 2 and "no such package or folder" in " ".join(missing.output.split())
    no_clip = runner.invoke(precision, [str(checkpoints["tdt"]), str(tmp_path / "none.wav")])
    assert no_clip.exit_code == 2 and "none.wav" in no_clip.output


def test_convert_lists_the_fp32_ops_by_type_and_reason_not_by_tracer_number() -> None:
    from rnnt_tui.cli.convert_cmd import _kept

    kept = [{"name": "105", "op_type": "reduce_mean", "reason": "normalisation statistic"},
            {"name": "108", "op_type": "reduce_mean", "reason": "normalisation statistic"},
            {"name": "start_pos", "op_type": "sub", "reason": "index arithmetic"}]
    text = _kept(kept)
    assert text == "3: reduce_mean x2 (normalisation statistic), sub x1 (index arithmetic)"
    assert "105" not in text and _kept([]) == "-"
