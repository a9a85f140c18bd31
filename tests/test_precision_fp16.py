"""The tool's own fp16 conversion, checked in the MIL interpreter against its fp32 program ("Core ML program, MIL
interpreter"): the structural exceptions it keeps (positional-encoding slice bounds, subsampling lengths,
normalisation statistics) are listed with their NeMo modules; on every factory kind the outputs are finite, the
encoder is within 2 % of its output range and the joint's argmax agrees on ≥ 99 % of frames; on the trained demo
the decode through the fp16 programs equals the fp32 programs' token for token; coremltools' plain fp16 computes
the slice bounds inexactly, and the hazard report names them (and the normalisation on a 60 s clip)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TRANSDUCER_KINDS, write_wav

pytestmark = [pytest.mark.filterwarnings("ignore:Converting a tensor to a Python boolean"),
              pytest.mark.filterwarnings("ignore::RuntimeWarning")]

_packages: dict[tuple[str, str, str], Path] = {}


@pytest.fixture(scope="module")
def package(loaded_model: Callable[[str], Any]) -> Callable[[str, str, str], Path]:
    """(kind, precision, component) -> package path, converted once (through the session's cache)."""
    from rnnt_tui.core.coreml.convert import convert_components

    def get(kind: str, precision: str, component: str) -> Path:
        key = (kind, precision, component)
        if key not in _packages:
            loaded = loaded_model(kind) if kind != "demo" else _demo()
            _packages[key] = convert_components(loaded, precision, components=[component])[0].path
        return _packages[key]

    return get


_demo_model: list[Any] = []


def _demo() -> Any:
    from rnnt_tui.core.checkpoint import restore
    from rnnt_tui.paths import demo_checkpoint

    if not _demo_model:
        _demo_model.append(restore(demo_checkpoint()))
    return _demo_model[0]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[float, np.ndarray]:
    import soundfile as sf

    root = tmp_path_factory.mktemp("precision-clips")
    return {s: sf.read(str(write_wav(root / f"{s}.wav", seconds=s)), dtype="float32")[0] for s in (1.0, 4.0)}


def test_fp16_keeps_index_arithmetic_and_statistics_in_fp32_and_lists_them(
        package: Callable[[str, str, str], Path]) -> None:
    from rnnt_tui.core.coreml import op_modules as modules
    from rnnt_tui.core.coreml.spec import read_spec

    encoder = read_spec(package("tdt", "fp16", "encoder"))
    kept = json.loads(encoder.ours("fp32_ops") or "[]")
    mapping = modules.decode(encoder.ours(modules.METADATA_KEY))
    names = {name for name, _, _ in kept}
    assert {"start_pos", "end_pos"} <= names, kept  # the positional encoding's slice bounds
    assert {modules.module_of(mapping, n) for n in ("start_pos", "end_pos")} == {"encoder.pos_enc"}
    assert any(modules.module_of(mapping, n).startswith("encoder.pre_encode") for n in names)  # lengths
    assert {reason for _, _, reason in kept} == {"index arithmetic"}
    pre = read_spec(package("tdt", "fp16", "preprocessor"))
    pre_kept = json.loads(pre.ours("fp32_ops") or "[]")
    assert {"x_mean_numerator", "x_mean_denominator"} <= {name for name, _, _ in pre_kept}
    assert {op_type for _, op_type, _ in pre_kept} >= {"reduce_sum", "real_div", "sqrt"}
    assert read_spec(package("tdt", "fp16-all", "encoder")).ours("fp32_ops") == "[]"


@pytest.mark.parametrize("kind", TRANSDUCER_KINDS)
def test_fp16_numbers_on_every_kind(kind: str, package: Callable[[str, str, str], Path],
                                    loaded_model: Callable[[str], Any], clips: dict[float, np.ndarray]) -> None:
    from rnnt_tui.core.mil import MilProgram
    from rnnt_tui.core.precision.runs import reference_feeds

    loaded = loaded_model(kind)
    seconds = (1.0, 4.0) if kind == "tdt" else (1.0,)
    for s in seconds:
        feeds = reference_feeds(loaded, clips[s])
        out = {}
        for component in ("encoder", "joint"):
            pair = [MilProgram.load(package(kind, p, component)).run(feeds[component]) for p in ("fp32", "fp16")]
            assert all(np.isfinite(np.asarray(v, np.float64)).all() for v in pair[1].values())
            out[component] = pair
        ref, cand = (np.asarray(o["encoded"], np.float64) for o in out["encoder"])
        assert np.abs(cand - ref).max() <= 0.02 * (ref.max() - ref.min()), (kind, s)
        ref_j, cand_j = (np.asarray(o["logits"], np.float64) for o in out["joint"])
        assert (ref_j.argmax(-1) == cand_j.argmax(-1)).mean() >= 0.99, (kind, s)


def test_fp16_decode_equals_fp32_on_the_trained_demo(package: Callable[[str, str, str], Path]) -> None:
    import soundfile as sf

    from rnnt_tui.core.coreml.wrappers import state_shape
    from rnnt_tui.core.mil import MilProgram
    from rnnt_tui.core.nemo_decoding import max_symbols
    from rnnt_tui.core.precision.runs import ProgramDecoder, program_decode, reference_feeds
    from rnnt_tui.paths import demo_audio

    loaded = _demo()
    feeds = reference_feeds(loaded, sf.read(str(demo_audio()), dtype="float32")[0])
    tokens = []
    for precision in ("fp32", "fp16"):
        progs = {c: MilProgram.load(package("demo", precision, c)) for c in ("encoder", "decoder", "joint")}
        enc = progs["encoder"].run(feeds["encoder"])
        decoder = ProgramDecoder(progs["decoder"], progs["joint"], int(loaded.model.decoder.blank_idx),
                                 state_shape(loaded.model.decoder), max_symbols=max_symbols(loaded))
        tokens.append(program_decode(decoder, enc["encoded"], int(enc["encoded_length"][0]), None))
    assert tokens[0] and tokens[0] == tokens[1]


def test_hazards_name_the_slice_bounds_of_plain_fp16(package: Callable[[str, str, str], Path],
                                                     loaded_model: Callable[[str], Any],
                                                     clips: dict[float, np.ndarray]) -> None:
    from rnnt_tui.core.precision.hazards import analyse_component
    from rnnt_tui.core.precision.runs import reference_feeds

    feeds = reference_feeds(loaded_model("tdt"), clips[4.0])["encoder"]
    plain = analyse_component("encoder", package("tdt", "fp16-all", "encoder"), package("tdt", "fp32", "encoder"),
                              feeds, rank=False)
    slice_ops = [h for h in plain.hazards if h.kind == "inexact-integer" and h.module == "encoder.pos_enc"]
    assert {h.op_type for h in slice_ops} >= {"sub"} and all(h.value and h.value > 2048 for h in slice_ops)
    assert plain.to_json()["label"] == "Core ML program, MIL interpreter"
    fixed = analyse_component("encoder", package("tdt", "fp16", "encoder"), package("tdt", "fp32", "encoder"),
                              feeds, rank=False)
    assert not [h for h in fixed.hazards if h.kind == "inexact-integer"]
    assert fixed.finite and fixed.relative_diff is not None and fixed.relative_diff <= 0.02


def test_hazards_name_the_normalisation_on_a_60_s_clip(package: Callable[[str, str, str], Path],
                                                       loaded_model: Callable[[str], Any], tmp_path: Path) -> None:
    import soundfile as sf

    from rnnt_tui.core.precision.hazards import analyse_component
    from rnnt_tui.core.precision.runs import reference_feeds

    samples = sf.read(str(write_wav(tmp_path / "long.wav", seconds=60.0)), dtype="float32")[0]
    pre = reference_feeds(loaded_model("tdt"), samples)["preprocessor"]
    plain = analyse_component("preprocessor", package("tdt", "fp16-all", "preprocessor"),
                              package("tdt", "fp32", "preprocessor"), pre)
    overflow = [h for h in plain.hazards if h.kind in ("overflow", "nonfinite") and h.op_type == "reduce_sum"]
    assert overflow and {h.module for h in overflow} == {"preprocessor.featurizer"}
    assert plain.hazards[0].effect and plain.hazards[0].effect > 0  # ranked by what it does to the output
    fixed = analyse_component("preprocessor", package("tdt", "fp16", "preprocessor"),
                              package("tdt", "fp32", "preprocessor"), pre, rank=False)
    assert fixed.finite and not [h for h in fixed.hazards if h.kind in ("overflow", "nonfinite")]
    assert fixed.max_diff is not None and plain.max_diff is not None and fixed.max_diff < plain.max_diff
