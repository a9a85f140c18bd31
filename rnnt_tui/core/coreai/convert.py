"""Convert a restored NeMo transducer's components to Core AI assets (`<component>.aimodel`), cached.

The torch modules are the Core ML conversion's wrappers (`core.coreml.wrappers`), so both formats share one
component contract: preprocessor (audio_signal, length → features, features_length), encoder (features,
features_length → encoded, encoded_length), decoder step (targets, h, c → decoder_output, h_out, c_out) and joint
(encoded, decoder_output → raw logits). Outputs are named by role in the asset.

Flexible time axes over the Core ML conversion's whole range (`core.coreml.convert.geometry`: about 5 minutes of
audio by default, so 60 s clips fit): torch.export cannot prove its shape guards on the preprocessor's framing
(`1 % (1 + S // hop) != 0`) or the encoder's subsampling arithmetic for an arbitrary length, but proves them for
lengths that are whole multiples (torch's own suggestion: `T = 4*_T`). So the preprocessor's samples are declared
`hop * _S` and the encoder's feature frames `factor * _T`; the runtime zero-pads a clip's time axis up to the next
multiple (the real length goes in as the length input, NeMo masks everything past it) and crops the outputs to the
frames NeMo gives for the real length - exact, because the padded tail is what NeMo's own masking and the STFT's
zero padding already see. The multiple is written into the asset's metadata (`rnnt_tui.time_multiple`). The
joint's T and U and the decoder need no padding.

Precision: fp32 by default; "fp16" converts a half-precision copy of the encoder, decoder and joint wrappers
(`.half()` before export: Core AI has no separate compute-precision switch, the program computes and stores in the
dtypes it was exported in, so its float inputs and outputs are fp16; lengths and tokens stay int32). The
preprocessor stays fp32 (its log-mel and per-feature normalisation are range-sensitive; the asset says fp32).

Weights: `weights` ("int8", "palettize6", "palettize4") compresses the converted program's weights with coreai-opt
(`core.coreai.weights`) before it is saved; the preprocessor is never compressed. The asset's metadata says which
(`rnnt_tui.weights`).

Assets are built once per (checkpoint sha256, component, precision, weights, max_frames, library versions,
decomposition version) in the ArtifactCache (atomic: built in a temp dir, renamed into place).
"""

from __future__ import annotations

import copy
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnt_tui.core.cache import ArtifactCache, make_key
from rnnt_tui.core.checkpoint import LoadedModel
from rnnt_tui.core.components import COMPONENTS, DECODER, ENCODER, JOINT, PREPROCESSOR
from rnnt_tui.core.errors import CancelledError
from rnnt_tui.core.progress import Progress, no_progress

PRECISIONS = ("fp32", "fp16")
#: bumped when the decompositions, wrappers' use or asset layout change, so older cached assets are not served
CONVERSION_VERSION = 2
IO = {PREPROCESSOR: (("audio_signal", "length"), ("features", "features_length")),
      ENCODER: (("features", "features_length"), ("encoded", "encoded_length")),
      DECODER: (("targets", "h", "c"), ("decoder_output", "h_out", "c_out")),
      JOINT: (("encoded", "decoder_output"), ("logits",))}
#: the input whose time axis is flexible, and that axis
TIME_INPUT = {PREPROCESSOR: ("audio_signal", 1), ENCODER: ("features", 2)}
_VERSIONED = ("rnnt-tui", "coreai-torch", "coreai-core", "torch", "nemo_toolkit", "numpy")
_VERSIONED_WEIGHTS = ("coreai-opt", "torchao")  # in the key only when weights are compressed


@dataclass(frozen=True)
class ConvertedAsset:
    """One converted component: where its asset is, whether the cache served it, and what was said."""

    component: str
    path: Path
    precision: str
    max_frames: int
    cached: bool
    elapsed_ms: float
    cache_key: str
    time_multiple: int = 1
    notes: tuple[str, ...] = field(default_factory=tuple)
    weights: str | None = None  # the compression applied (None: the converted weights as they are)

    def to_json(self) -> dict[str, Any]:
        return {"component": self.component, "path": str(self.path), "precision": self.precision,
                "weights": self.weights,
                "max_frames": self.max_frames, "cached": self.cached, "elapsed_ms": round(self.elapsed_ms, 3),
                "time_multiple": self.time_multiple, "notes": list(self.notes)}


def time_multiple(loaded: LoadedModel, component: str) -> int:
    """The multiple the component's time axis is declared in (1: any length)."""
    from rnnt_tui.core.coreml.convert import geometry

    g = geometry(loaded)
    return {PREPROCESSOR: g.hop, ENCODER: g.factor}.get(component, 1)


def frames_rule(loaded: LoadedModel, component: str) -> dict[str, Any]:
    """The arithmetic of the component's output time length (what `coreml.convert.expected_frames` computes from
    the model), as plain numbers stored in the asset, so a replay without the model can crop padded outputs."""
    model = loaded.model
    if component == PREPROCESSOR:
        featurizer = model.preprocessor.featurizer
        pad = getattr(featurizer, "stft_pad_amount", None)
        return {"kind": "stft", "hop": int(featurizer.hop_length), "n_fft": int(featurizer.n_fft),
                "pad": -1 if pad is None else int(pad)}  # -1: centred frames (metadata takes no None)
    pre: Any = getattr(model.encoder, "pre_encode", None)
    names = ("_left_padding", "_right_padding", "_kernel_size", "_stride", "_sampling_num")
    if all(hasattr(pre, a) for a in names):
        return {"kind": "conv", **{a.strip("_"): int(getattr(pre, a)) for a in names},
                "ceil": bool(getattr(pre, "_ceil_mode", False))}
    return {"kind": "ceil", "factor": max(1, int(getattr(model.encoder, "subsampling_factor", 1) or 1))}


def frames_by_rule(rule: dict[str, Any], size: int) -> int:
    """Output time length for an input of `size` (samples or feature frames) by a `frames_rule`."""
    import math

    if rule["kind"] == "stft":
        if rule["pad"] < 0:
            return size // rule["hop"] + 1
        return (size + 2 * rule["pad"] - rule["n_fft"]) // rule["hop"] + 1
    if rule["kind"] == "conv":
        length = float(size)
        for _ in range(rule["sampling_num"]):
            length = (length + rule["left_padding"] + rule["right_padding"] - rule["kernel_size"]) / rule["stride"] + 1
            length = math.ceil(length) if rule["ceil"] else math.floor(length)
        return int(length)
    return math.ceil(size / rule["factor"])


def _example(loaded: LoadedModel, component: str, max_frames: int | None, half: bool
             ) -> tuple[Any, tuple[Any, ...], Any, int]:
    """(module, example args, dynamic shapes, time multiple) for one component."""
    import torch
    from torch.export import Dim

    from rnnt_tui.core.coreml.convert import _encoder_covering, geometry
    from rnnt_tui.core.coreml.wrappers import EncoderWrapper, state_shape, wrap

    g = geometry(loaded, max_frames)
    model = loaded.eval()
    f = torch.float16 if half else torch.float32
    i32 = torch.int32
    if component == PREPROCESSOR:
        steps = 200
        upper = max(g.max_samples // g.hop + 1, steps + 1)
        args: tuple[Any, ...] = (0.1 * torch.randn(1, g.hop * steps, dtype=f), torch.tensor([g.hop * steps], dtype=i32))
        return wrap(model, component), args, {"audio_signal": {1: g.hop * Dim("samples_by_hop", min=2, max=upper)},
                                              "length": None}, g.hop
    if component == ENCODER:
        steps = 100
        upper = max(g.max_frames + 1, steps + 1)
        module = EncoderWrapper(_encoder_covering(model.encoder, upper))
        args = (torch.randn(1, g.n_mels, g.factor * steps, dtype=f), torch.tensor([g.factor * steps], dtype=i32))
        return module, args, {"features": {2: g.factor * Dim("frames", min=2, max=upper)},
                              "features_length": None}, g.factor
    if component == DECODER:
        layers, _, hidden = state_shape(model.decoder)
        args = (torch.zeros(1, 1, dtype=i32), torch.zeros(layers, 1, hidden, dtype=f),
                torch.zeros(layers, 1, hidden, dtype=f))
        return wrap(model, component), args, None, 1
    if component == JOINT:
        upper = max(g.max_frames, 8)
        args = (torch.randn(1, g.d_model, 20, dtype=f), torch.randn(1, g.pred_hidden, 4, dtype=f))
        return wrap(model, component), args, {"encoded": {2: Dim("T", min=1, max=upper)},
                                              "decoder_output": {2: Dim("U", min=1, max=upper)}}, 1
    raise ValueError(f"unknown component {component!r}; choose from {', '.join(COMPONENTS)}")


def compressed(component: str, weights: str | None) -> str | None:
    """The compression `component` gets when `weights` is asked for (the preprocessor: none)."""
    from rnnt_tui.core.coreai.weights import check_weights

    weights = check_weights(weights)
    return None if component == PREPROCESSOR else weights


def convert_one(loaded: LoadedModel, component: str, out: Path, precision: str = "fp32",
                max_frames: int | None = None, weights: str | None = None) -> tuple[list[str], int]:
    """Export and convert one component to the asset folder `out`; returns (notes, time multiple)."""
    from rnnt_tui import __version__
    from rnnt_tui.core.coreai.export import convert_module
    from rnnt_tui.core.coreml.convert import geometry

    if precision not in PRECISIONS:
        raise ValueError(f"unknown Core AI precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    half = precision == "fp16" and component != PREPROCESSOR
    module, args, dynamic, multiple = _example(loaded, component, max_frames, half)
    if half:
        module = copy.deepcopy(module).half()  # the user's model keeps its fp32 weights
    elif precision == "fp16":
        precision = "fp32"  # the preprocessor's log-mel and normalisation stay fp32 (range-sensitive)
    names_in, names_out = IO[component]
    meta = {"component": component, "precision": precision, "max_frames": geometry(loaded, max_frames).max_frames,
            "time_multiple": multiple, "source_sha256": loaded.sha256, "version": __version__,
            "blank_id": int(loaded.model.decoder.blank_idx)}
    if component in TIME_INPUT:
        meta["frames_rule"] = frames_rule(loaded, component)
    weights = compressed(component, weights)
    transform = None
    if weights:
        from functools import partial

        from rnnt_tui.core.coreai.weights import compress_program

        meta["weights"] = weights
        transform = partial(compress_program, weights=weights)
    notes = convert_module(module, args, out, input_names=names_in, output_names=names_out,
                           dynamic_shapes=dynamic, metadata=meta, transform=transform)
    return notes, multiple


def cache_key(loaded: LoadedModel, component: str, precision: str, max_frames: int,
              weights: str | None = None) -> str:
    from rnnt_tui import __version__
    from rnnt_tui.versions import package_version

    weights = compressed(component, weights)
    libraries = _VERSIONED + (_VERSIONED_WEIGHTS if weights else ())
    versions = {lib: package_version(lib) for lib in libraries if lib != "rnnt-tui"}
    versions["rnnt-tui"] = __version__
    extra = {"weights": weights} if weights else {}  # uncompressed keys stay what they were
    return make_key(kind="coreai-asset", sha256=loaded.sha256, component=component, precision=precision,
                    max_frames=max_frames, conversion=CONVERSION_VERSION, versions=versions, **extra)


def convert_components(loaded: LoadedModel, precision: str = "fp32", max_frames: int | None = None,
                       components: Iterable[str] = COMPONENTS, progress: Progress = no_progress,
                       cancel: threading.Event | None = None, use_cache: bool = True,
                       scratch: Path | None = None, weights: str | None = None) -> list[ConvertedAsset]:
    """Convert `components` of `loaded` to Core AI assets, cached (with `use_cache=False`, into `scratch` or a
    fresh temp dir the caller owns); `weights` compresses them (not the preprocessor)."""
    from rnnt_tui.core.coreml.convert import geometry

    frames = geometry(loaded, max_frames).max_frames
    store = ArtifactCache() if use_cache else None
    root = scratch or (None if use_cache else Path(tempfile.mkdtemp(prefix="rnnt-tui-coreai-")))
    wanted = list(components)
    done: list[ConvertedAsset] = []
    for index, component in enumerate(wanted):
        if cancel is not None and cancel.is_set():
            raise CancelledError(f"cancelled before converting the {component} to Core AI")
        squeezed = compressed(component, weights)
        label = precision + (f", {squeezed} weights" if squeezed else "")
        progress(f"Core AI: converting the {component} ({index + 1}/{len(wanted)}, {label})",
                 index / len(wanted))
        start = time.perf_counter()
        key = cache_key(loaded, component, precision, frames, squeezed)
        name = f"{component}.aimodel"
        if store is not None:
            def build(tmp: Path, component: str = component, name: str = name,
                      squeezed: str | None = squeezed) -> dict[str, Any]:
                notes, multiple = convert_one(loaded, component, tmp / name, precision, frames, squeezed)
                return {"component": component, "precision": precision, "max_frames": frames, "weights": squeezed,
                        "sha256": loaded.sha256, "notes": notes, "time_multiple": multiple, "runtime": "coreai"}

            entry, cached = store.get_or_build(key, build, cancel)
            path, notes = entry.path / name, list(entry.meta.get("notes", []))
            multiple = int(entry.meta.get("time_multiple", 1))
            if store.note:
                notes.append(store.note)
        else:
            assert root is not None
            path, cached = root / key / name, False
            notes, multiple = convert_one(loaded, component, path, precision, frames, squeezed)
        elapsed = (time.perf_counter() - start) * 1000
        done.append(ConvertedAsset(component=component, path=path, precision=precision, max_frames=frames,
                                   cached=cached, elapsed_ms=elapsed, cache_key=key, time_multiple=multiple,
                                   notes=tuple(notes), weights=squeezed))
        how = "from the cache" if cached else f"converted in {elapsed / 1000:.1f} s"
        progress(f"Core AI: {component} {how}", (index + 1) / len(wanted))
    return done
