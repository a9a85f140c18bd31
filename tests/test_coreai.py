"""`--against coreai`: every factory kind converted once with coreai-torch and run on Apple's Core AI runtime through
the one pipeline, against NeMo/PyTorch (fp32 within 1e-4, transcripts equal to NeMo's); the decompositions the
preprocessor needs checked against torch's own ops; the platforms Core AI has wheels for (issue 19, point 1)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TRANSDUCER_KINDS

from rnnt_tui.core.coreai.platform import coreai_problem, platform_problem
from rnnt_tui.core.pipeline.driver import run_steps

needs_coreai = pytest.mark.skipif(coreai_problem(need_converter=True) is not None,
                                  reason=f"Core AI cannot run here: {coreai_problem(need_converter=True)}")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """0.6 s: Apple's Linux runtime is a verification runtime, not a fast one; untrained models emit many tokens."""
    from conftest import write_wav

    return write_wav(tmp_path_factory.mktemp("short") / "short.wav", seconds=0.6)


@pytest.mark.parametrize(("system", "machine", "python", "macos", "ok"), [
    ("Linux", "x86_64", (3, 11), None, True), ("Linux", "x86_64", (3, 13), None, True),
    ("Linux", "x86_64", (3, 14), None, False), ("Linux", "x86_64", (3, 10), None, False),
    ("Linux", "aarch64", (3, 12), None, False), ("Darwin", "arm64", (3, 12), (26, 0), True),
    ("Darwin", "arm64", (3, 12), (15, 4), False), ("Darwin", "x86_64", (3, 12), (26, 0), False),
    ("Windows", "AMD64", (3, 12), None, False)])
def test_core_ai_says_where_it_has_no_wheel(system: str, machine: str, python: tuple[int, int],
                                            macos: tuple[int, int] | None, ok: bool) -> None:
    problem = platform_problem(system, machine, python, macos)
    assert (problem is None) == ok, problem
    if problem is not None:
        assert "3.11–3.13" in problem or "macOS 26" in problem or "no wheel" in problem


def test_core_ai_is_a_candidate_with_an_honest_label() -> None:
    from rnnt_tui.core.names import CANDIDATE_RUNTIMES, RUNTIME_LABELS
    from rnnt_tui.core.pipeline.pipeline import check_runtimes
    from rnnt_tui.core.runtimes import CANDIDATES, get_runtime_class

    cls = get_runtime_class("coreai")
    assert "coreai" in CANDIDATES and "coreai" in CANDIDATE_RUNTIMES and RUNTIME_LABELS["coreai"] == "Core AI"
    choice = check_runtimes()["coreai"]
    assert choice.ok == (coreai_problem() is None) and choice.label == cls.label
    if coreai_problem() is None and cls.label.startswith("Core AI (Apple"):
        assert cls.label == "Core AI (Apple Core AI runtime, Linux CPU)"


def test_preprocessor_decompositions_equal_torchs_own_ops() -> None:
    import torch

    from rnnt_tui.core.coreai.export import _fft_r2c, _isnan, _unfold

    torch.manual_seed(0)
    x = torch.randn(1, 3 * 160 + 512)
    assert torch.equal(_unfold(x, -1, 512, 160), x.unfold(-1, 512, 160))
    y = torch.randn(2, 5, 7)
    assert torch.equal(_unfold(y, 1, 2, 2), y.unfold(1, 2, 2))
    frames = torch.randn(1, 4, 512, dtype=torch.float64)
    ours = _fft_r2c(frames, [2], 0, True)
    assert torch.allclose(ours, torch.fft.rfft(frames, dim=-1), atol=1e-9)
    z = torch.tensor([1.0, float("nan"), float("inf")])
    assert torch.equal(_isnan(z), torch.isnan(z))


@pytest.fixture(scope="module")
def sessions(loaded_model: Callable[[str], Any], short_clip: Path) -> Iterator[dict[str, Any]]:
    """kind -> an opened session against coreai (converted once per kind, cached); closed at the end."""
    from rnnt_tui.core.pipeline.pipeline import Pipeline
    from rnnt_tui.core.pipeline.request import Request, Settings
    from rnnt_tui.core.runtimes.base import RuntimeOptions

    pipelines: dict[str, Any] = {}

    def open_kind(kind: str) -> Any:
        if kind not in pipelines:
            loaded = loaded_model(kind)
            pipeline = Pipeline()
            pipeline.open(Request(loaded.path, short_clip, "coreai", RuntimeOptions(), Settings(runs=1, warmup=0)),
                          loaded=loaded)
            pipelines[kind] = pipeline
        return pipelines[kind].session

    yield open_kind  # type: ignore[misc]
    for pipeline in pipelines.values():
        pipeline.close()


@needs_coreai
@pytest.mark.parametrize("kind", TRANSDUCER_KINDS)
def test_fp32_conversion_matches_pytorch_and_decodes_like_nemo(kind: str, sessions: Any) -> None:
    session = sessions(kind)
    assert session.candidate_unavailable is None, session.candidate_unavailable
    run_steps(session)
    described = session.candidate.describe()
    assert described["runs_on"] == "Apple Core AI runtime, Linux CPU" or not described["runs_on"].startswith("Apple")
    assert described["precision"] == "fp32" and set(described["assets"]) == {"preprocessor", "encoder", "decoder",
                                                                               "joint"}
    features = session.ctx.upstream.features["features"]
    span = float(features.max() - features.min())
    worst = {}
    for name in ("preprocessor", "encoder", "decoder", "joint"):
        result = session.results[name]
        assert result.status == "done", (name, result.error, result.notes[-1:])
        worst[name] = max(c.stats.max_abs for c in result.comparisons if c.stats is not None)
        assert result.timings["candidate"].median_ms > 0
    assert worst["preprocessor"] <= 1e-3 * span, worst
    assert max(worst["encoder"], worst["decoder"], worst["joint"]) <= 1e-4, worst
    decode = session.decode_comparison
    assert decode is not None and decode.nemo_tokens and decode.candidate_tokens == decode.nemo_tokens


@needs_coreai
def test_encoder_time_axis_is_padded_to_its_multiple_and_cropped_exactly(sessions: Any) -> None:
    from rnnt_tui.core.coreai.convert import time_multiple

    session = sessions("rnnt-char")
    runtime, reference = session.candidate, session.reference
    multiple = time_multiple(runtime.loaded, "encoder")
    assert multiple > 1
    rng = np.random.default_rng(0)
    for frames in (multiple * 7 + 1, multiple * 11 + multiple - 1):  # neither a multiple: padded, then cropped
        inputs = {"features": rng.standard_normal((1, 80, frames)).astype(np.float32),
                  "features_length": np.array([frames])}
        ours, ref = runtime.run("encoder", inputs), reference.run("encoder", inputs)
        assert ours["encoded"].shape == ref["encoded"].shape
        assert float(np.abs(ours["encoded"] - ref["encoded"]).max()) <= 1e-4
        assert int(ours["encoded_length"][0]) == int(ref["encoded_length"][0])
        assert any("zero-padded" in n for n in runtime.bind_notes["encoder"])
    signature = runtime.maps["encoder"][0].function.input("features")
    assert signature.shape[2] == -1  # one flexible entrypoint, not a bucket per length


@needs_coreai
def test_fp16_joint_asset_computes_in_fp16_with_fp16_tolerances(loaded_model: Callable[[str], Any], clip: Path,
                                                                 tmp_path: Path) -> None:
    import shutil

    from rnnt_tui.core.coreai.convert import convert_components
    from rnnt_tui.core.pipeline.pipeline import open_session
    from rnnt_tui.core.pipeline.request import Request, Settings
    from rnnt_tui.core.runtimes.base import RuntimeOptions
    from rnnt_tui.core.tolerances import FP16, FP32

    loaded = loaded_model("tdt")
    for asset in convert_components(loaded, precision="fp16", components=["joint"]):
        shutil.copytree(asset.path, tmp_path / asset.path.name)
    session = open_session(Request(loaded.path, clip, "coreai", RuntimeOptions(packages_dir=str(tmp_path)),
                                   Settings(runs=1, warmup=0)), loaded=loaded)
    runtime = session.candidate
    try:
        assert runtime.compute_precision() == {"joint": "fp16"}
        assert runtime.tolerances()["joint"] == FP16["joint"] and runtime.tolerances()["encoder"] == FP32["encoder"]
        assert session.settings.tolerances["joint"] == FP16["joint"]
        result = session.run_step("joint")
        logits = result.comparisons[0]
        assert logits.candidate is not None and logits.candidate.dtype == "float16"
        assert logits.stats is not None and 1e-5 < logits.stats.max_abs < 0.1  # fp16 rounding shows, and is small
        assert result.status == "done"
    finally:
        runtime.close()


@pytest.mark.parametrize("kind", TRANSDUCER_KINDS)
def test_the_frames_rule_an_asset_carries_equals_nemos_arithmetic(kind: str,
                                                                   loaded_model: Callable[[str], Any]) -> None:
    """Replays crop padded outputs without the model, by the rule stored in the asset: it must be NeMo's."""
    import json

    from rnnt_tui.core.coreai.convert import frames_by_rule, frames_rule
    from rnnt_tui.core.coreml.convert import expected_frames

    loaded = loaded_model(kind)
    for component, sizes in (("preprocessor", range(160, 20000, 397)), ("encoder", range(1, 700, 7))):
        rule = json.loads(json.dumps(frames_rule(loaded, component)))  # as it comes back from metadata.json
        assert [frames_by_rule(rule, n) for n in sizes] == [expected_frames(loaded, component, n) for n in sizes]
