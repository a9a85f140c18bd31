"""The `mil` runtime: the tool's own fp32 conversions of the demo and every factory kind, run by the MIL
interpreter through the one pipeline, against NeMo/PyTorch; an fp16 conversion that shows its drift; and the
feeds and output dtypes the Core ML and MIL runtimes hand over (issue 16, points 5 and 6)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TRANSDUCER_KINDS

from rnnt_tui.core.pipeline.driver import run_steps

pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor to a Python boolean")


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """The reference runs one tiny LSTM step per token: on a shared 2-core runner extra threads only contend."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

DEMO = Path(__file__).parent.parent / "assets" / "demo"


@pytest.fixture(scope="module")
def demo_loaded() -> Any:
    from rnnt_tui.core.checkpoint import restore

    return restore(DEMO / "demo-rnnt.nemo")


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """0.6 s: untrained factory models emit up to 10 tokens a frame, and every token is a step on both sides."""
    from conftest import write_wav

    return write_wav(tmp_path_factory.mktemp("short") / "short.wav", seconds=0.6)


def _open(loaded: Any, clip: Path, options: Any) -> Any:
    from rnnt_tui.core.pipeline.pipeline import open_session
    from rnnt_tui.core.pipeline.request import Request, Settings

    return open_session(Request(loaded.path, clip, "mil", options, Settings(runs=1, warmup=0)), loaded=loaded)


def test_mil_is_a_candidate_everywhere_and_says_what_it_is() -> None:
    from rnnt_tui.core.runtimes import CANDIDATES, get_runtime_class

    cls = get_runtime_class("mil")
    assert "mil" in CANDIDATES and cls.availability().ok
    assert cls.label == "Core ML program, MIL interpreter" and cls.label != "Core ML"


@pytest.mark.parametrize("kind", ["demo", *TRANSDUCER_KINDS])
def test_our_fp32_conversion_matches_pytorch_and_decodes_like_nemo(kind: str, loaded_model: Callable[[str], Any],
                                                                   demo_loaded: Any, short_clip: Path) -> None:
    from rnnt_tui.core.runtimes.base import RuntimeOptions

    loaded = demo_loaded if kind == "demo" else loaded_model(kind)
    session = _open(loaded, DEMO / "core-ml-on-a-mac.wav" if kind == "demo" else short_clip, RuntimeOptions())
    assert session.candidate_unavailable is None
    run_steps(session)
    described = session.candidate.describe()
    assert described["label"] == "Core ML program, MIL interpreter" and described["compute_units"] is None
    assert "do not apply" in described["compute_units_note"]
    assert set(session.candidate.compute_precision().values()) == {"fp32"}
    features = session.ctx.upstream.features["features"]
    span = float(features.max() - features.min())
    worst = {}
    for name in ("preprocessor", "encoder", "decoder", "joint"):
        result = session.results[name]
        assert result.status == "done", (name, result.error, result.notes[-1:])
        worst[name] = max(c.stats.max_abs for c in result.comparisons if c.stats is not None)
    assert worst["preprocessor"] <= 5e-3 * span, worst
    assert max(worst["encoder"], worst["decoder"], worst["joint"]) <= 1e-4, worst
    decode = session.decode_comparison
    assert decode is not None and decode.nemo_tokens and decode.candidate_tokens == decode.nemo_tokens
    if kind == "demo":
        assert decode.candidate_text == "core ml on a mac"


def test_fp16_joint_package_reports_its_drift_and_dtype(loaded_model: Callable[[str], Any], clip: Path,
                                                        tmp_path: Path) -> None:
    from rnnt_tui.core.coreml.convert import convert_components
    from rnnt_tui.core.runtimes.base import RuntimeOptions
    from rnnt_tui.core.tolerances import FP16, FP32

    loaded = loaded_model("tdt")
    convert_components(loaded, precision="fp16", components=["joint"], out_dir=tmp_path)
    session = _open(loaded, clip, RuntimeOptions(packages_dir=str(tmp_path)))
    runtime = session.candidate
    assert runtime.compute_precision()["joint"] in ("fp16", "mixed")
    assert runtime.tolerances()["joint"] == FP16["joint"] and runtime.tolerances()["encoder"] == FP32["encoder"]
    result = session.run_step("joint")
    logits = result.comparisons[0]
    assert logits.candidate is not None and logits.candidate.dtype == "float16"  # the program's own dtype
    assert "dtype differs: float16 vs float32" in logits.note
    assert logits.stats is not None and 1e-5 < logits.stats.max_abs < 0.1  # fp16 rounding shows, and is small
    assert runtime.components == ("joint",)
    skipped = session.run_step("encoder")  # no package: the reference's output feeds the next step
    assert skipped.status == "reference-only" and "has no encoder" in skipped.notes[-1]


@pytest.fixture(scope="module")
def half_io(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with one tiny joint-shaped package whose inputs and outputs are declared float16."""
    import coremltools as ct
    import torch

    class Joint(torch.nn.Module):
        def forward(self, encoded: torch.Tensor, decoder_output: torch.Tensor) -> torch.Tensor:
            return (encoded.transpose(1, 2).unsqueeze(2) + decoder_output.transpose(1, 2).unsqueeze(1)) * 0.5

    folder = tmp_path_factory.mktemp("half-io")
    traced = torch.jit.trace(Joint().eval(), (torch.randn(1, 4, 3), torch.randn(1, 4, 2)))
    model = ct.convert(traced, convert_to="mlprogram", minimum_deployment_target=ct.target.macOS14,
                       inputs=[ct.TensorType(name="encoded", shape=(1, 4, ct.RangeDim(1, 50, 3)), dtype=np.float16),
                               ct.TensorType(name="decoder_output", shape=(1, 4, ct.RangeDim(1, 50, 2)),
                                             dtype=np.float16)],
                       outputs=[ct.TensorType(name="logits", dtype=np.float16)])
    model.save(str(folder / "joint.mlpackage"))
    return folder


def test_feeds_are_built_once_in_the_types_each_engine_accepts(half_io: Path,
                                                              loaded_model: Callable[[str], Any]) -> None:
    from coremltools.models import MLModel

    from rnnt_tui.core.runtimes.base import RuntimeOptions
    from rnnt_tui.core.runtimes.coreml_runtime import CoreMLRuntime
    from rnnt_tui.core.runtimes.mil_runtime import MilRuntime

    loaded = loaded_model("rnnt-char")
    options = RuntimeOptions(packages_dir=str(half_io))
    inputs = {"encoded": np.ones((1, 4, 3), np.float32), "decoder_output": np.ones((1, 4, 2), np.float64)}
    core_ml, mil = CoreMLRuntime(loaded, options), MilRuntime(loaded, options)
    core_ml.prepare()  # matches and reads the package on any OS; loading needs macOS
    mil.prepare()
    info = core_ml.packages["joint"]
    assert info.spec.input("encoded").dtype == "float16"
    feed, _ = core_ml._feed("joint", info, inputs)
    assert {v.dtype for v in feed.values()} == {np.dtype(np.float32)}  # what coremltools keeps as it is
    before = dict(feed)
    MLModel._update_float16_multiarray_input_to_float32(feed)  # coremltools' own rewrite inside predict()
    assert all(feed[k] is before[k] for k in feed)  # nothing left for it to copy
    mil_feed, _ = mil._feed("joint", mil.packages["joint"], inputs)
    assert {v.dtype for v in mil_feed.values()} == {np.dtype(np.float16)}  # the declared type, exactly
    assert CoreMLRuntime.FEED_DTYPES["int8"] is np.int32 and MilRuntime.FEED_DTYPES["int8"] is np.int8

    out = mil.run("joint", inputs)["logits"]
    assert out.dtype == np.float16 and out.shape == (1, 3, 2, 4)
    assert np.array_equal(out, np.ones((1, 3, 2, 4), np.float16))
    widened = out.astype(np.float32)  # what Core ML's predict hands over for a float16 output
    restored = core_ml._as_declared(info, "logits", widened)
    assert restored.dtype == np.float16 and np.array_equal(restored, out)


def test_prepare_says_whether_the_conversion_came_from_the_cache(demo_loaded: Any) -> None:
    """The MIL interpreter has no load cache: the "cached" flag is the conversion cache's, cold then warm."""
    from rnnt_tui.core.runtimes import get_runtime_class
    from rnnt_tui.core.runtimes.base import RuntimeOptions

    loaded = demo_loaded
    cls = get_runtime_class("mil")
    cold = {r.component: r.cached for r in cls(loaded, RuntimeOptions()).prepare()}
    warm = {r.component: r.cached for r in cls(loaded, RuntimeOptions()).prepare()}
    assert warm == {c: True for c in cold}, (cold, warm)
    no_cache = {r.component: r.cached for r in cls(loaded, RuntimeOptions(use_cache=False)).prepare()}
    assert not any(no_cache.values()), no_cache
