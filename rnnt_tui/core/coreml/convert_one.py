"""Trace and convert one component of a restored NeMo transducer to a Core ML ML-program package.

The component is wrapped (`wrappers`), traced with `torch.jit.trace`, and converted with
`ct.convert(convert_to="mlprogram")` with flexible time axes (`ct.RangeDim`) up to the bounds `geometry` derives:
the preprocessor's samples, the encoder's feature frames and the joint's T and U. The package's metadata
(`rnnt_tui.*`) says what it is: component, bounds, precision, the fp32 ops kept (`fp16_policy`), each op's NeMo
module (`op_modules`), source sha256, rnnt-tui version, and the compute units it is meant for. What the tracer and
coremltools print or warn is captured and returned as notes, never printed. Caching, copying out and the CLI entry
point are `coreml.convert`'s.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rnnt_tui.core.checkpoint import LoadedModel
from rnnt_tui.core.components import COMPONENTS, DECODER, ENCODER, JOINT, PREPROCESSOR
from rnnt_tui.core.coreml.fp16_policy import KeptOp
from rnnt_tui.core.coreml.geometry import (
    INTENDED_UNITS_KEY,
    INTENDED_WHY_KEY,
    LINT_EXPECTED_KEY,
    Geometry,
    geometry,
    intended_units,
)
from rnnt_tui.core.coreml.spec import META_PREFIX, load_coremltools
from rnnt_tui.core.quiet import quiet

PRECISIONS = ("fp32", "fp16", "mixed", "fp16-all")
DEFAULT_PRECISION = "fp32"
DEFAULT_TARGET = "macOS14"
_EXAMPLE_SECONDS = 2.0
_PROGRESS_MARKS = ("ops/s]", "passes/s]", " ops/s", "passes/s")
_NOISE = (DeprecationWarning, PendingDeprecationWarning, FutureWarning, ResourceWarning)
_BENIGN = ("torch/nn/modules/rnn.py", "torch/nn/functional.py")


def _encoder_covering(encoder: Any, frames: int) -> Any:
    """The encoder itself, or (when its positional table is shorter than `frames`) a shallow copy whose own
    positional-encoding module is extended; the user's encoder is never changed."""
    pos_enc = getattr(encoder, "pos_enc", None)
    pe = getattr(pos_enc, "pe", None)
    if pe is None or not hasattr(pos_enc, "extend_pe") or (int(pe.size(1)) + 1) // 2 >= frames:
        return encoder
    clone = copy.copy(encoder)
    clone._modules = dict(encoder._modules)
    clone._modules["pos_enc"] = copy.deepcopy(pos_enc)
    clone._modules["pos_enc"].extend_pe(frames, pe.device, pe.dtype)
    return clone


def _target(ct: Any, name: str) -> Any:
    try:
        return ct.target[name]
    except KeyError:
        macs = [n for n in ct.target.__members__ if n.startswith("macOS") and int(n[5:7].rstrip("_")) >= 13]
        raise ValueError(f"unknown deployment target {name!r}; choose one of {', '.join(macs)}") from None


def _io(ct: Any, component: str, g: Geometry) -> tuple[list[Any], list[Any], tuple[Any, ...]]:
    """(ct inputs, ct outputs, example torch inputs) for a component."""
    import numpy as np
    import torch

    f32, i32 = np.float32, np.int32
    samples = int(_EXAMPLE_SECONDS * g.sample_rate)
    feats = samples // g.hop + 1
    frames = max(1, feats // g.factor)
    if component == PREPROCESSOR:
        upper = max(g.max_samples, samples)
        return ([ct.TensorType(name="audio_signal", shape=(1, ct.RangeDim(g.hop, upper, samples)), dtype=f32),
                 ct.TensorType(name="length", shape=(1,), dtype=i32)],
                [ct.TensorType(name="features"), ct.TensorType(name="features_length")],
                (0.1 * torch.randn(1, samples), torch.tensor([samples], dtype=torch.int32)))
    if component == ENCODER:
        upper = max(g.max_features, feats)
        # at least one encoder frame's worth of features: a length-1 input gives no frame after subsampling
        return ([ct.TensorType(name="features", shape=(1, g.n_mels, ct.RangeDim(g.factor, upper, feats)),
                               dtype=f32),
                 ct.TensorType(name="features_length", shape=(1,), dtype=i32)],
                [ct.TensorType(name="encoded"), ct.TensorType(name="encoded_length")],
                (torch.randn(1, g.n_mels, feats), torch.tensor([feats], dtype=torch.int32)))
    if component == DECODER:
        state = (g.layers, 1, g.pred_hidden)
        return ([ct.TensorType(name="targets", shape=(1, 1), dtype=i32),
                 ct.TensorType(name="h", shape=state, dtype=f32), ct.TensorType(name="c", shape=state, dtype=f32)],
                [ct.TensorType(name="decoder_output"), ct.TensorType(name="h_out"), ct.TensorType(name="c_out")],
                (torch.zeros(1, 1, dtype=torch.int32), torch.zeros(*state), torch.zeros(*state)))
    if component == JOINT:
        upper = max(g.max_frames, frames)
        return ([ct.TensorType(name="encoded", shape=(1, g.d_model, ct.RangeDim(1, upper, frames)), dtype=f32),
                 ct.TensorType(name="decoder_output", shape=(1, g.pred_hidden, ct.RangeDim(1, upper, 4)),
                               dtype=f32)],
                [ct.TensorType(name="logits")],
                (torch.randn(1, g.d_model, frames), torch.randn(1, g.pred_hidden, 4)))
    raise ValueError(f"unknown component {component!r}; choose from {', '.join(COMPONENTS)}")


def _clean(text: str) -> list[str]:
    lines = []
    for raw in text.replace("\r", "\n").splitlines():
        line = raw.strip()
        if line and not any(mark in line for mark in _PROGRESS_MARKS) and line not in lines:
            lines.append(line)
    return lines


def _warning(caught: warnings.WarningMessage) -> str | None:
    """A captured warning as one note, or None for noise (deprecations, temp-dir cleanup, and the tracer's notes
    on torch's own argument checks - LSTM hidden size, embedding padding index - whose shapes are fixed here)."""
    if issubclass(caught.category, _NOISE) or (caught.filename.endswith(_BENIGN)
                                               and "Python boolean" in str(caught.message)):
        return None
    where = "/".join(Path(caught.filename).parts[-2:])
    return f"{caught.category.__name__}: {caught.message} ({where}:{caught.lineno})"


def convert_one(loaded: LoadedModel, component: str, out_path: Path, precision: str = DEFAULT_PRECISION,
                minimum_deployment_target: str = DEFAULT_TARGET, max_frames: int | None = None,
                keep_fp32: Iterable[str] = (), weights: str | None = None) -> list[str]:
    """Trace and convert one component to `out_path` (.mlpackage); returns the captured notes."""
    return _convert(loaded, component, out_path, precision, minimum_deployment_target, max_frames, keep_fp32,
                    weights)[0]


def _compute_precision(ct: Any, precision: str, keep_fp32: Iterable[str]) -> tuple[Any, Any]:
    """(compute_precision for ct.convert, the selector that records what it kept, or None)."""
    from rnnt_tui.core.coreml.fp16_policy import KeepFp32Selector

    if precision == "fp32":
        return ct.precision.FLOAT32, None
    if precision == "fp16-all":
        return ct.precision.FLOAT16, None
    selector = KeepFp32Selector(structural=True, names=keep_fp32 if precision == "mixed" else ())
    return ct.transform.FP16ComputePrecision(op_selector=selector), selector


def _convert(loaded: LoadedModel, component: str, out_path: Path, precision: str, minimum_deployment_target: str,
             max_frames: int | None, keep_fp32: Iterable[str], weights: str | None) -> tuple[list[str], list[KeptOp]]:
    import json

    import torch

    from rnnt_tui import __version__
    from rnnt_tui.core.coreml import op_modules as modules
    from rnnt_tui.core.coreml.weights import check_weights, compress_model
    from rnnt_tui.core.coreml.wrappers import EncoderWrapper, wrap

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    weights = check_weights(weights)
    ct, chatter = load_coremltools()
    g = geometry(loaded, max_frames)
    model = loaded.eval()
    compute_precision, selector = _compute_precision(ct, precision, keep_fp32)
    with quiet() as q, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if component == ENCODER:
            wrapper: torch.nn.Module = EncoderWrapper(_encoder_covering(model.encoder, g.max_frames + 1))
        else:
            wrapper = wrap(model, component)
        inputs, outputs, example = _io(ct, component, g)
        with torch.no_grad():
            traced = torch.jit.trace(wrapper.eval(), example, check_trace=False)
        mlmodel = ct.convert(traced, convert_to="mlprogram", inputs=inputs, outputs=outputs,
                             compute_precision=compute_precision, skip_model_load=True,
                             minimum_deployment_target=_target(ct, minimum_deployment_target))
        op_modules = modules.record(mlmodel._mil_program,
                                    modules.ModuleResolver(getattr(model, component), component))
        if weights is not None:
            mlmodel = compress_model(mlmodel, weights)
    kept = sorted(selector.kept.values(), key=lambda k: k.name) if selector is not None else []
    meta = {"component": component, "max_frames": g.max_frames, "max_feature_frames": g.max_features,
            "max_samples": g.max_samples, "precision": precision, "weights": weights or "none",
            "source_sha256": loaded.sha256, "version": __version__,
            "minimum_deployment_target": minimum_deployment_target, "blank_id": int(model.decoder.blank_idx),
            "fp32_ops": json.dumps([[k.name, k.op_type, k.reason] for k in kept]),
            modules.METADATA_KEY: modules.encode(op_modules)}
    units, why, expected = intended_units(component, precision, g)
    meta.update({INTENDED_UNITS_KEY: units, INTENDED_WHY_KEY: why, LINT_EXPECTED_KEY: json.dumps(expected)})
    for key, value in meta.items():
        mlmodel.user_defined_metadata[META_PREFIX + key] = str(value)
    suffix = f", {weights} weights" if weights else ""
    mlmodel.short_description = f"rnnt-tui {component} of {loaded.path.name} ({precision}{suffix})"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with quiet() as saving:
        mlmodel.save(str(out_path))
    notes = _clean("\n".join([q.text, saving.text]))
    notes += [w for w in dict.fromkeys(_warning(c) for c in caught) if w and w not in notes]
    notes = notes if not chatter else [*notes, *(line for line in _clean(chatter) if line not in notes)]
    return notes, kept
