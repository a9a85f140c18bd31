"""The tool's fp16 and mixed conversions run by Core ML itself (macOS only): every component within the fp16
tolerances of the fp32 package on NeMo's inputs, outputs finite on 1 s and 4 s clips, and on the trained demo the
greedy decode through the fp16 / mixed packages equals the fp32 packages' token for token. CPU_ONLY (the runner
may lack a Neural Engine; the numbers are then Core ML's CPU fp16 kernels) and ALL, where the machine runs it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import write_wav

pytestmark = [
    pytest.mark.macos,
    pytest.mark.filterwarnings("ignore:Converting a tensor to a Python boolean"),
]


class _CoreMLDecoder:
    """Greedy decoding's three calls on Core ML decoder and joint models."""

    def __init__(self, decoder: Any, joint: Any, blank: int, state: tuple[int, int, int]) -> None:
        self.decoder, self.joint, self.blank_id, self.state = decoder, joint, blank, state

    def initial_state(self) -> Any:
        return np.zeros(self.state, np.float32), np.zeros(self.state, np.float32)

    def decoder_step(self, token: int, state: Any) -> tuple[Any, Any]:
        out = self.decoder.predict({"targets": np.array([[token]], np.int32), "h": state[0], "c": state[1]})
        return (np.asarray(out["decoder_output"], np.float32),
                (np.asarray(out["h_out"], np.float32), np.asarray(out["c_out"], np.float32)))

    def joint_step(self, frame: np.ndarray, decoder_output: Any) -> np.ndarray:
        out = self.joint.predict({"encoded": np.asarray(frame, np.float32),
                                  "decoder_output": np.asarray(decoder_output, np.float32)})
        return np.asarray(out["logits"], np.float32).reshape(-1)


def _models(packages: dict[str, Path], units: str) -> dict[str, Any]:
    import coremltools as ct

    return {c: ct.models.MLModel(str(p), compute_units=getattr(ct.ComputeUnit, units)) for c, p in packages.items()}


def _tokens(models: dict[str, Any], feeds: dict[str, dict[str, np.ndarray]], loaded: Any) -> list[int]:
    from typing import cast

    from rnnt_tui.core.coreml.wrappers import state_shape
    from rnnt_tui.core.pipeline.greedy import greedy_decode
    from rnnt_tui.core.runtimes.base import Runtime

    enc = models["encoder"].predict(feeds["encoder"])
    decoder = _CoreMLDecoder(models["decoder"], models["joint"], int(loaded.model.decoder.blank_idx),
                             state_shape(loaded.model.decoder))
    result = greedy_decode(cast(Runtime, decoder), np.asarray(enc["encoded"], np.float32),
                           int(np.asarray(enc["encoded_length"]).reshape(-1)[0]), decoder.blank_id,
                           durations=loaded.summary.durations)
    return list(result.tokens)


def _not_mixed_in_simulation(precision: str, core_ml_bridge: Any, units: str = "CPU_ONLY",
                             demo: bool = False) -> None:
    """Against the test stand-in only `CPU_ONLY` fp16 runs: the other variants would test the mixed-precision
    search and the MIL interpreter again (tests/test_precision_fp16.py does), not the bridge, and the stand-in
    computes every compute unit alike. Skipped there to keep the simulated run short."""
    if core_ml_bridge is not None and (precision == "mixed" or units != "CPU_ONLY" or demo):
        pytest.skip("simulated: the bridge path is the CPU_ONLY fp16 variant's; the rest is tested on Linux directly")


@pytest.mark.parametrize("precision", ["fp16", "mixed"])
@pytest.mark.parametrize("units", ["CPU_ONLY", "ALL"])
def test_fp16_and_mixed_with_core_ml(precision: str, units: str, loaded_model: Callable[[str], Any],
                                     tmp_path: Path, core_ml_bridge: Any) -> None:
    _not_mixed_in_simulation(precision, core_ml_bridge, units)
    import soundfile as sf

    from rnnt_tui.core.coreml.convert import convert_components
    from rnnt_tui.core.coreml.platform import UNIT_DEVICES, compute_devices
    from rnnt_tui.core.precision.mixed import find_mixed_precision
    from rnnt_tui.core.precision.runs import reference_feeds
    from rnnt_tui.core.tolerances import FP16

    devices = compute_devices()
    accelerators = [d for d in UNIT_DEVICES[units] if d != "CPU"]
    if accelerators and not any(d in devices for d in accelerators):
        pytest.skip(f"this machine has none of {units}'s accelerators ({', '.join(accelerators)}): Core ML would run "
                    f"it on the CPU alone, so the test would not test {units}")
    loaded = loaded_model("tdt")
    clips = [write_wav(tmp_path / f"{s}.wav", seconds=s) for s in (1.0, 4.0)]
    keep = find_mixed_precision(loaded, clips).keep_by_component() if precision == "mixed" else None
    fp32 = _models({p.component: p.path for p in convert_components(loaded, "fp32")}, units)
    cand = _models({p.component: p.path for p in convert_components(loaded, precision, keep_fp32=keep)}, units)
    for clip in clips:
        feeds = reference_feeds(loaded, sf.read(str(clip), dtype="float32")[0])
        for component, model in cand.items():
            got = model.predict(feeds[component])
            want = fp32[component].predict(feeds[component])
            tol = FP16[component]
            for name, value in want.items():
                g, w = np.asarray(got[name], np.float64), np.asarray(value, np.float64)
                assert np.isfinite(g).all(), f"{component}.{name} not finite ({precision}, {units}, {clip.name})"
                np.testing.assert_allclose(g, w, atol=tol.atol, rtol=tol.rtol,
                                           err_msg=f"{component}.{name} ({precision}, {units}, {clip.name})")


@pytest.mark.parametrize("precision", ["fp16", "mixed"])
def test_demo_decode_identical_with_core_ml(precision: str, core_ml_bridge: Any) -> None:
    _not_mixed_in_simulation(precision, core_ml_bridge, demo=True)
    import soundfile as sf

    from rnnt_tui.core.checkpoint import restore
    from rnnt_tui.core.coreml.convert import convert_components
    from rnnt_tui.core.precision.mixed import find_mixed_precision
    from rnnt_tui.core.precision.runs import reference_feeds
    from rnnt_tui.paths import demo_checkpoint, demo_dir

    loaded = restore(demo_checkpoint())
    keep = find_mixed_precision(loaded).keep_by_component() if precision == "mixed" else None
    fp32 = _models({p.component: p.path for p in convert_components(loaded, "fp32")}, "CPU_ONLY")
    cand = _models({p.component: p.path for p in convert_components(loaded, precision, keep_fp32=keep)}, "CPU_ONLY")
    for clip in sorted(demo_dir().glob("*.wav")):
        feeds = reference_feeds(loaded, sf.read(str(clip), dtype="float32")[0])
        want = _tokens(fp32, feeds, loaded)
        assert want and _tokens(cand, feeds, loaded) == want, clip.name
