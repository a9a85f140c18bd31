"""Core ML export wrappers and conversion, on any OS: traced wrappers equal NeMo's eager components exactly, every
component of every kind converts (fp32; fp16 for the TDT kind), the specs carry the documented I/O and flexible
time axes, the cache serves a second conversion, and the runtime says why it cannot predict off macOS."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TRANSDUCER_KINDS

pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor to a Python boolean")

COMPONENTS = ("preprocessor", "encoder", "decoder", "joint")
EXPECTED_IO = {
    "preprocessor": ((("audio_signal", "float32", 2), ("length", "int32", 1)),
                     (("features", None, 3), ("features_length", "int32", 1))),
    "encoder": ((("features", "float32", 3), ("features_length", "int32", 1)),
                (("encoded", None, 3), ("encoded_length", "int32", 1))),
    "decoder": ((("targets", "int32", 2), ("h", "float32", 3), ("c", "float32", 3)),
                (("decoder_output", None, 3), ("h_out", None, 3), ("c_out", None, 3))),
    "joint": ((("encoded", "float32", 3), ("decoder_output", "float32", 3)), (("logits", None, 4),)),
}

_converted: dict[tuple[str, str], list[Any]] = {}


@pytest.fixture(scope="module")
def convert(loaded_model: Callable[[str], Any]) -> Callable[[str, str], list[Any]]:
    """(kind, precision) -> converted packages, converted once per module (through the session's cache dir)."""
    from rnnt_tui.core.coreml.convert import convert_components

    def get(kind: str, precision: str) -> list[Any]:
        if (kind, precision) not in _converted:
            _converted[kind, precision] = convert_components(loaded_model(kind), precision=precision)
        return _converted[kind, precision]

    return get


def _flags(model: Any) -> tuple[Any, ...]:
    from rnnt_tui.core.fuse import read_mode

    modes = tuple(m.training for m in (model.preprocessor, model.encoder, model.decoder, model.joint))
    return (read_mode(model.joint), model.decoder._rnnt_export, model.joint._rnnt_export, modes,
            tuple(model.encoder.pos_enc.pe.shape))


@pytest.mark.parametrize("kind", TRANSDUCER_KINDS)
def test_traced_wrappers_equal_eager_nemo(kind: str, loaded_model: Callable[[str], Any]) -> None:
    import torch

    from rnnt_tui.core.coreml.wrappers import state_shape, wrap
    from rnnt_tui.core.fuse import AS_SAVED, VALIDATION, fuse_mode_of

    loaded = loaded_model(kind)
    model = loaded.eval()
    before = _flags(model)
    torch.manual_seed(0)
    with torch.no_grad():
        traced = {}
        layers, _, hidden = state_shape(model.decoder)
        examples = {
            "preprocessor": (0.1 * torch.randn(1, 16000), torch.tensor([16000], dtype=torch.int32)),
            "encoder": (torch.randn(1, model.encoder._feat_in, 120), torch.tensor([120], dtype=torch.int32)),
            "decoder": (torch.tensor([[3]], dtype=torch.int32), torch.randn(layers, 1, hidden),
                        torch.randn(layers, 1, hidden)),
            "joint": (torch.randn(1, model.joint.encoder_hidden, 7), torch.randn(1, hidden, 3)),
        }
        for component in COMPONENTS:
            traced[component] = torch.jit.trace(wrap(model, component), examples[component], check_trace=False)
        assert _flags(model) == before, "wrapping and tracing changed the user's model"

        # other sizes than the trace's: nothing shape-dependent may be baked in
        audio = 0.1 * torch.randn(1, 27001)
        length = torch.tensor([26000], dtype=torch.int32)
        feats, feats_len = model.preprocessor(input_signal=audio, length=length.long())
        got, got_len = traced["preprocessor"](audio, length)
        assert torch.equal(got, feats) and got_len.dtype == torch.int32 and got_len.tolist() == feats_len.tolist()

        encoded, enc_len = model.encoder(audio_signal=feats, length=feats_len)
        got, got_len = traced["encoder"](feats, feats_len.to(torch.int32))
        assert torch.equal(got, encoded) and got_len.tolist() == enc_len.tolist()

        h, c = torch.randn(layers, 1, hidden), torch.randn(layers, 1, hidden)
        blank = int(model.decoder.blank_idx)
        for token in (0, 5, blank):
            y = None if token == blank else torch.tensor([[token]])
            g, (h_ref, c_ref) = model.decoder.predict(y, state=[h, c], add_sos=False, batch_size=1)
            out, h_out, c_out = traced["decoder"](torch.tensor([[token]], dtype=torch.int32), h, c)
            assert torch.equal(out, g.transpose(1, 2)) and torch.equal(h_out, h_ref) and torch.equal(c_out, c_ref)

        dec = torch.randn(1, hidden, 5)
        fuse = fuse_mode_of(model)
        try:
            fuse.set(VALIDATION)
            reference = model.joint(encoder_outputs=encoded, decoder_outputs=dec)
        finally:
            fuse.set(AS_SAVED)
        logits = traced["joint"](encoded, dec)
        assert torch.equal(logits, reference)
        assert logits.shape[-1] == loaded.summary.joint.num_classes_with_blank  # TDT: + durations
    assert _flags(model) == before


#: every component of every kind at fp32, and of the TDT kind (the widest joint) at fp16: all four kinds at fp16
#: too took this file past 90 s on a shared 2-core machine; fp16 conversion does not depend on the kind
MATRIX = [(kind, "fp32") for kind in TRANSDUCER_KINDS] + [("tdt", "fp16")]


@pytest.mark.parametrize(("kind", "precision"), MATRIX)
def test_every_component_converts_with_documented_io(kind: str, precision: str, loaded_model: Callable[[str], Any],
                                                     convert: Callable[[str, str], list[Any]]) -> None:
    from rnnt_tui.core.coreml.convert import NE_DIM_LIMIT, default_max_frames, geometry, package_max_frames
    from rnnt_tui.core.coreml.spec import read_spec

    loaded = loaded_model(kind)
    before = _flags(loaded.model)
    packages = convert(kind, precision)
    assert [p.component for p in packages] == list(COMPONENTS)
    assert _flags(loaded.model) == before, "conversion changed the user's model (flags or positional table)"
    full = geometry(loaded)
    assert full.max_frames == default_max_frames(loaded) >= 300 * 16000 // (full.hop * full.factor)
    g = geometry(loaded, package_max_frames(loaded, precision))
    # fp32 never runs on the Neural Engine: 5 minutes; fp16 stays within its 16384 per dimension
    assert g.max_frames == full.max_frames if precision == "fp32" else g.max_features <= NE_DIM_LIMIT
    out_float = "float16" if precision == "fp16" else "float32"
    for package in packages:
        assert package.path.suffix == ".mlpackage" and package.path.is_dir()
        assert all(isinstance(n, str) for n in package.notes)
        spec = read_spec(package.path)
        inputs, outputs = EXPECTED_IO[package.component]
        assert [(t.name, t.dtype, t.rank) for t in spec.inputs] == list(inputs)
        assert [t.name for t in spec.outputs] == [name for name, _, _ in outputs]
        for tensor, (_, dtype, rank) in zip(spec.outputs, outputs, strict=True):
            assert tensor.rank == rank
            assert tensor.dtype == (dtype or out_float)
        assert spec.model_type == "mlProgram" and spec.deployment_target == "macOS14"
        assert spec.ours("component") == package.component and spec.ours("precision") == precision
        assert spec.ours("max_frames") == str(g.max_frames) and spec.ours("source_sha256") == loaded.sha256
        assert spec.ours("version") and spec.ours("weights") == "none" and spec.ours("op_modules")
        assert spec.ours("intended_compute_units") == package.intended_units and spec.ours("intended_why")
        kept = {k.name for k in package.fp32_ops}
        assert kept == {name for name, _, _ in json.loads(spec.ours("fp32_ops") or "[]")}
        assert bool(kept) == (precision == "fp16" and package.component in ("preprocessor", "encoder"))
        assert package.to_json()["fp32_ops"] == [k.to_json() for k in package.fp32_ops]
    specs = {p.component: read_spec(p.path) for p in packages}
    # flexible time axes, bounded by max_frames, visible in the spec
    assert specs["preprocessor"].input("audio_signal").ranges == ((1, 1), (g.hop, g.max_samples))
    assert specs["encoder"].input("features").ranges == ((1, 1), (g.n_mels, g.n_mels), (g.factor, g.max_features))
    assert specs["joint"].input("encoded").ranges == ((1, 1), (g.d_model, g.d_model), (1, g.max_frames))
    assert specs["joint"].input("decoder_output").ranges == ((1, 1), (g.pred_hidden, g.pred_hidden),
                                                             (1, g.max_frames))
    assert not specs["decoder"].input("h").flexible
    assert specs["decoder"].input("h").shape == (g.layers, 1, g.pred_hidden)
    width = loaded.summary.joint.num_classes_with_blank
    assert specs["joint"].output("logits").shape == (1, -1, -1, width)
    assert specs["decoder"].output("decoder_output").shape == (1, g.pred_hidden, 1)


def test_second_conversion_is_a_cache_hit(loaded_model: Callable[[str], Any],
                                          convert: Callable[[str, str], list[Any]], tmp_path: Path) -> None:
    from rnnt_tui.core.cache import ArtifactCache
    from rnnt_tui.core.coreml.convert import convert_components

    first = convert("rnnt-char", "fp32")
    builds = ArtifactCache.stats.builds
    messages: list[str] = []
    again = convert_components(loaded_model("rnnt-char"), out_dir=tmp_path / "out",
                               progress=lambda message, fraction: messages.append(message))
    assert ArtifactCache.stats.builds == builds
    assert all(p.cached for p in again) and [p.cache_key for p in again] == [p.cache_key for p in first]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f"{c}.mlpackage" for c in COMPONENTS)
    assert all(p.path.parent == tmp_path / "out" for p in again)
    assert any("from the cache" in m for m in messages)
    checkpoint_dir = loaded_model("rnnt-char").path.parent
    assert not list(checkpoint_dir.glob("*.mlpackage"))


def test_write_packages_for_the_cli(checkpoints: dict[str, Path], convert: Callable[[str, str], list[Any]],
                                    tmp_path: Path) -> None:
    from rnnt_tui.core.cache import ArtifactCache
    from rnnt_tui.core.coreml.convert import write_packages

    convert("rnnt-char", "fp32")
    builds = ArtifactCache.stats.builds
    written = write_packages(checkpoints["rnnt-char"], tmp_path / "pkgs", precision="fp32",
                             components=["encoder", "joint"])
    assert ArtifactCache.stats.builds == builds
    assert [p.path for p in written] == [tmp_path / "pkgs" / "encoder.mlpackage", tmp_path / "pkgs" / "joint.mlpackage"]


def test_bad_arguments_are_refused(loaded_model: Callable[[str], Any]) -> None:
    from rnnt_tui.core.coreml.convert import convert_components

    loaded = loaded_model("rnnt-char")
    with pytest.raises(ValueError, match="unknown component"):
        convert_components(loaded, components=["vocoder"])
    with pytest.raises(ValueError, match="unknown precision"):
        convert_components(loaded, precision="int8", components=["joint"], use_cache=False)
    with pytest.raises(ValueError, match="unknown deployment target"):
        convert_components(loaded, minimum_deployment_target="macOS99", components=["joint"], use_cache=False)


@pytest.mark.skipif(sys.platform == "darwin", reason="checks the refusal off macOS")
def test_runtime_is_unavailable_off_macos_but_converts(loaded_model: Callable[[str], Any],
                                                       convert: Callable[[str, str], list[Any]]) -> None:
    from rnnt_tui.core.coreml.convert import default_max_frames
    from rnnt_tui.core.errors import BadInputError, RuntimeUnavailableError
    from rnnt_tui.core.runtimes import get_runtime_class
    from rnnt_tui.core.runtimes.base import RuntimeOptions

    reason = ("Core ML predictions need macOS (coremltools can convert here, but Core ML itself only runs on Apple "
              "platforms)")
    runtime_class = get_runtime_class("coreml")
    availability = runtime_class.availability()
    assert not availability.ok and availability.reason == reason
    loaded = loaded_model("tdt")
    convert("tdt", "fp32")
    runtime: Any = runtime_class(loaded, RuntimeOptions(max_frames=default_max_frames(loaded)))
    reports = runtime.prepare()
    assert [r.component for r in reports] == list(COMPONENTS)
    assert all(r.cached and r.load_ms is None and reason in r.notes for r in reports)
    described = runtime.describe()
    assert described["name"] == "coreml" and described["compute_units"] == "CPU_ONLY"
    assert described["precision"] == "fp32" and described["coremltools"]
    with pytest.raises(RuntimeUnavailableError, match="need macOS"):
        runtime.bind("encoder", {"features": np.zeros((1, 80, 10), np.float32),
                                 "features_length": np.array([10])})
    with pytest.raises(RuntimeUnavailableError):
        runtime.initial_state()

    # input handling before the (macOS-only) predict: dtypes cast to the package's, too-long clips refused
    info = runtime.packages["encoder"]
    feed, padded = runtime._feed("encoder", info, {"features": np.zeros((1, 80, 50), np.float64),
                                                   "features_length": np.array([50], np.int64)})
    assert feed["features"].dtype == np.float32 and feed["features_length"].dtype == np.int32 and not padded
    feed, _ = runtime._feed("decoder", runtime.packages["decoder"],
                            {"targets": np.array([[4]]), "h": np.zeros((1, 1, 64)), "c": np.zeros((1, 1, 64))})
    assert feed["targets"].dtype == np.int32 and feed["h"].dtype == np.float32
    too_long = default_max_frames(loaded) * 4 + 1
    with pytest.raises(BadInputError, match=r"too long.*at most 30000.*max_frames=7500"):
        runtime._feed("encoder", info, {"features": np.zeros((1, 80, too_long), np.float32),
                                        "features_length": np.array([too_long])})
