"""The MIL interpreter against PyTorch: the tool's own fp32 packages of the factory models run on Linux and match the
traced wrappers they were converted from; fp16 packages round to fp16; compressed weights decompress."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rnnt_tui.core.components import COMPONENTS

KINDS = ("rnnt-char", "tdt", "parakeet-like")


@pytest.fixture(scope="session")
def models(loaded_model: Callable[[str], Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """kind -> LoadedModel: two factory kinds, and a narrow TDT with Parakeet's layout (128 mels, dw_striding 8x,
    2-layer LSTM prediction net) built here."""
    import factory

    from rnnt_tui.core.checkpoint import restore

    root = tmp_path_factory.mktemp("parakeet-like")
    dims = factory.Dims(n_mels=128, d_model=64, n_layers=2, n_heads=4, subsampling="dw_striding",
                        subsampling_factor=8, pred_hidden=64, pred_rnn_layers=2, joint_hidden=64)
    narrow = restore(factory.build("tdt", root / "parakeet-like.nemo", root / "work", dims=dims))
    return {"rnnt-char": loaded_model("rnnt-char"), "tdt": loaded_model("tdt"), "parakeet-like": narrow}


@pytest.fixture(scope="session")
def fp32_packages(models: dict[str, Any]) -> dict[str, dict[str, Path]]:
    """kind -> component -> fp32 .mlpackage of the tool's own conversion (each converted once per session)."""
    from rnnt_tui.core.coreml.convert import convert_components

    return {kind: {p.component: p.path for p in convert_components(models[kind], precision="fp32", max_frames=200)}
            for kind in KINDS}


@pytest.fixture(scope="session")
def torch_io(models: dict[str, Any], clip: Path) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """kind -> component -> the inputs fed and the outputs PyTorch's wrapper gives (outputs under 'out:<name>')."""
    import torch

    from rnnt_tui.core.audio import load_audio
    from rnnt_tui.core.coreml.wrappers import DECODER_IO, ENCODER_IO, JOINT_IO, PREPROCESSOR_IO, wrap

    ios = {"preprocessor": PREPROCESSOR_IO, "encoder": ENCODER_IO, "decoder": DECODER_IO, "joint": JOINT_IO}
    result: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    rng = np.random.default_rng(0)
    for kind in KINDS:
        model = models[kind].eval()
        audio = load_audio(clip, 16000).samples[None, :].astype(np.float32)
        feeds: dict[str, dict[str, np.ndarray]] = {
            "preprocessor": {"audio_signal": audio, "length": np.array([audio.shape[1]], np.int32)}}
        layers, hidden = int(model.decoder.pred_rnn_layers), int(model.decoder.pred_hidden)
        feeds["decoder"] = {"targets": np.array([[3]], np.int32),
                            "h": rng.standard_normal((layers, 1, hidden)).astype(np.float32) * 0.5,
                            "c": rng.standard_normal((layers, 1, hidden)).astype(np.float32) * 0.5}
        per: dict[str, dict[str, np.ndarray]] = {}
        for component in ("preprocessor", "encoder", "decoder", "joint"):
            if component == "encoder":
                pre = per["preprocessor"]
                feeds["encoder"] = {"features": pre["out:features"], "features_length": pre["out:features_length"]}
            if component == "joint":
                enc, dec = per["encoder"]["out:encoded"], per["decoder"]["out:decoder_output"]
                feeds["joint"] = {"encoded": enc, "decoder_output": np.repeat(dec, 3, axis=2)}
            names_in, names_out = ios[component]
            with torch.no_grad():
                outs = wrap(model, component)(*(torch.from_numpy(feeds[component][n]) for n in names_in))
            outs = outs if isinstance(outs, tuple) else (outs,)
            per[component] = dict(feeds[component])
            per[component].update({f"out:{n}": o.numpy() for n, o in zip(names_out, outs, strict=True)})
        result[kind] = per
    return result


def _feeds(io: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v for k, v in io.items() if not k.startswith("out:")}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("component", COMPONENTS)
def test_fp32_package_matches_pytorch(kind: str, component: str, fp32_packages: dict[str, dict[str, Path]],
                                      torch_io: dict[str, dict[str, dict[str, np.ndarray]]]) -> None:
    from rnnt_tui.core.mil import MilProgram

    program = MilProgram.load(fp32_packages[kind][component])
    assert program.precision == "fp32"
    assert program.weight_compression == ()
    io = torch_io[kind][component]
    got = program.run(_feeds(io))
    assert set(got) == set(program.output_names)
    for name, value in got.items():
        want = io[f"out:{name}"]
        assert value.shape == want.shape, name
        if want.dtype.kind in "iu":
            np.testing.assert_array_equal(value, want)
            continue
        diff = float(np.abs(value.astype(np.float64) - want).max())
        if component == "preprocessor":
            assert diff <= 5e-3 * float(np.ptp(want)), (name, diff)
        else:
            assert diff <= 1e-4, (name, diff)


@pytest.mark.parametrize("kind", ["tdt", "parakeet-like"])
def test_decoder_lstm_chain_of_steps(kind: str, fp32_packages: dict[str, dict[str, Path]],
                                     models: dict[str, Any]) -> None:
    """Seven chained decoder steps (state fed back) stay on PyTorch's trajectory: the LSTM gate order is right,
    for one and two layers."""
    import torch

    from rnnt_tui.core.coreml.wrappers import wrap
    from rnnt_tui.core.mil import MilProgram

    model = models[kind].eval()
    program = MilProgram.load(fp32_packages[kind]["decoder"])
    step = wrap(model, "decoder")
    shape = (int(model.decoder.pred_rnn_layers), 1, int(model.decoder.pred_hidden))
    h = c = np.zeros(shape, np.float32)
    th, tc = torch.zeros(shape), torch.zeros(shape)
    worst = 0.0
    for token in (int(model.decoder.blank_idx), 5, 9, 2, 2, 7, 1):
        got = program.run({"targets": np.array([[token]], np.int32), "h": h, "c": c})
        with torch.no_grad():
            out, th, tc = step(torch.tensor([[token]], dtype=torch.int32), th, tc)
        worst = max(worst, float(np.abs(got["decoder_output"] - out.numpy()).max()))
        h, c = got["h_out"], got["c_out"]
    assert worst <= 1e-4


def test_plan_is_built_once_and_reused(fp32_packages: dict[str, dict[str, Path]],
                                       torch_io: dict[str, dict[str, dict[str, np.ndarray]]]) -> None:
    from rnnt_tui.core.mil import MilProgram

    program = MilProgram.load(fp32_packages["tdt"]["encoder"])
    assert program.plan_ms > 0
    assert program.op_count == sum(program.op_types.values()) > 100
    assert {"conv", "linear", "layer_norm", "softmax", "silu"} <= set(program.op_types)
    feeds = _feeds(torch_io["tdt"]["encoder"])
    first, second = program.run(feeds), program.run(feeds)
    np.testing.assert_array_equal(first["encoded"], second["encoded"])
    assert program.input_names == ("features", "features_length")
    assert program.input_dtype("features") == np.float32
    assert program.input_shape("features")[:2] == (1, 80) and program.input_shape("features")[2] is None
