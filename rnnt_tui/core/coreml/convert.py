"""Convert a restored NeMo transducer's components to Core ML ML-program packages (works on Linux too).

Each component is wrapped (`wrappers`), traced with `torch.jit.trace`, and converted with
`ct.convert(convert_to="mlprogram")`. Time axes are flexible (`ct.RangeDim`): the preprocessor's samples, the
encoder's feature frames and the joint's T and U. Their upper bound comes from `max_frames`, counted in encoder
frames (the default covers about 5 minutes of audio); it is written into each package's metadata (`rnnt_tui.*`:
component, max_frames, precision, source sha256, rnnt-tui version) so a runtime can refuse a longer clip and name
the bound. Range-flexible inputs may keep a model off the Neural Engine (Apple suggests enumerated shapes for
it); this tool validates numerics, so that is accepted, and the compute plan shows where ops really run.

Precision: the default is **fp32**. coremltools' own default for ML programs is fp16 (`compute_precision=None`),
which mixes fp16 rounding into every comparison; fp32 isolates conversion errors, which is what a validation tool
should look at first. fp16 is an option (`precision="fp16"`): inputs stay fp32, outputs are declared float16 (Core
ML's `predict` hands them over as float32; the Core ML runtime casts them back, exactly), and the
ops `coreml.fp16_policy` finds structurally (index arithmetic on shapes and lengths, statistics over the flexible
time axis) stay fp32 — they are listed in the package's metadata (`rnnt_tui.fp32_ops`) and in `fp32_ops`.
`"mixed"` keeps those plus the ops a mixed-precision search chose (`keep_fp32`); `"fp16-all"` is coremltools' own
fp16 (every op it allows), kept to show what the exceptions fix. `weights` compresses the weights
(`coreml.weights`). Each op's NeMo module is recorded in the metadata too (`coreml.op_modules`).

Packages are built once per (checkpoint sha256, component, precision, fp32 set, weights, target, max_frames, library
versions) in the
ArtifactCache; `out_dir` copies them out as `<component>.mlpackage`. What the tracer and coremltools print or warn
is captured and returned in each package's notes, never printed.
"""

from __future__ import annotations

import copy
import math
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rnnt_tui.core.cache import ArtifactCache, make_key
from rnnt_tui.core.checkpoint import LoadedModel
from rnnt_tui.core.components import COMPONENTS, DECODER, ENCODER, JOINT, PREPROCESSOR
from rnnt_tui.core.coreml.fp16_policy import KeptOp
from rnnt_tui.core.coreml.spec import META_PREFIX, load_coremltools
from rnnt_tui.core.errors import BadInputError, CancelledError
from rnnt_tui.core.progress import Progress, no_progress
from rnnt_tui.core.quiet import quiet

PRECISIONS = ("fp32", "fp16", "mixed", "fp16-all")
#: bumped when the fp16 exceptions, the input bounds or the metadata change, so older cached packages are not served
POLICY_VERSION = 4
DEFAULT_PRECISION = "fp32"
DEFAULT_TARGET = "macOS14"
DEFAULT_SECONDS = 300.0
#: the Neural Engine's per-dimension limit (also `precision.lint.NE_DIM_LIMIT`'s value)
NE_DIM_LIMIT = 16384
#: metadata keys saying which compute units a package is meant for and why, and which lint findings are expected
INTENDED_UNITS_KEY, INTENDED_WHY_KEY, LINT_EXPECTED_KEY = "intended_compute_units", "intended_why", "lint_expected"
_EXAMPLE_SECONDS = 2.0
_PROGRESS_MARKS = ("ops/s]", "passes/s]", " ops/s", "passes/s")
_NOISE = (DeprecationWarning, PendingDeprecationWarning, FutureWarning, ResourceWarning)
_BENIGN = ("torch/nn/modules/rnn.py", "torch/nn/functional.py")


@dataclass(frozen=True)
class ConvertedPackage:
    """One converted component: where its package is, whether the cache served it, and what was said."""

    component: str
    path: Path
    precision: str
    minimum_deployment_target: str
    max_frames: int
    cached: bool
    elapsed_ms: float
    cache_key: str
    notes: tuple[str, ...] = field(default_factory=tuple)
    weights: str | None = None
    fp32_ops: tuple[KeptOp, ...] = field(default_factory=tuple)
    intended_units: str = ""
    intended_why: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"component": self.component, "path": str(self.path), "precision": self.precision,
                "weights": self.weights, "minimum_deployment_target": self.minimum_deployment_target,
                "max_frames": self.max_frames, "cached": self.cached, "elapsed_ms": round(self.elapsed_ms, 3),
                "seconds": round(self.elapsed_ms / 1000, 3), "notes": list(self.notes),
                "fp32_ops": [k.to_json() for k in self.fp32_ops], "intended_compute_units": self.intended_units,
                "intended_why": self.intended_why}


@dataclass(frozen=True)
class Geometry:
    """The model's sizes that fix the packages' shapes and the time bounds derived from `max_frames`."""

    sample_rate: int
    hop: int
    n_mels: int
    factor: int
    d_model: int
    pred_hidden: int
    layers: int
    max_frames: int

    @property
    def max_features(self) -> int:
        return self.max_frames * self.factor

    @property
    def max_samples(self) -> int:
        return (self.max_features - 1) * self.hop


def geometry(loaded: LoadedModel, max_frames: int | None = None, seconds: float = DEFAULT_SECONDS) -> Geometry:
    """Sizes of `loaded`; `max_frames` (encoder frames) defaults to what covers `seconds` of audio."""
    from rnnt_tui.core.coreml.wrappers import state_shape  # torch: only once a model is restored

    model = loaded.model
    featurizer = model.preprocessor.featurizer
    hop = int(featurizer.hop_length)
    rate = int(getattr(model.preprocessor, "_sample_rate", 0) or loaded.summary.sample_rate or 16000)
    factor = int(getattr(model.encoder, "subsampling_factor", 1) or 1)
    layers, _, hidden = state_shape(model.decoder)
    frames = max_frames if max_frames else math.ceil(seconds * rate / (hop * factor))
    if frames < 1:
        raise ValueError(f"max_frames must be positive, got {frames}")
    n_mels = int(getattr(model.encoder, "_feat_in", 0) or featurizer.nfilt)
    return Geometry(sample_rate=rate, hop=hop, n_mels=n_mels, factor=factor,
                    d_model=int(model.joint.encoder_hidden), pred_hidden=hidden, layers=layers, max_frames=frames)


def package_max_frames(loaded: LoadedModel, precision: str, max_frames: int | None = None) -> int:
    """The encoder-frame bound the packages are converted with: `max_frames` when given; else about 5 minutes of
    audio for fp32 (the Neural Engine computes fp16 only, so it never runs those), and for the fp16 precisions no
    more feature frames than the Neural Engine's 16384 per dimension (163.8 s at a 10 ms hop)."""
    if max_frames:
        return max_frames
    g = geometry(loaded)
    if precision == "fp32":
        return g.max_frames
    return max(1, min(g.max_frames, NE_DIM_LIMIT // g.factor))


def intended_units(component: str, precision: str, g: Geometry) -> tuple[str, str, list[dict[str, str]]]:
    """(compute units a package is meant for, why, the lint findings that are expected for it and why): written
    into the package's metadata, printed by `convert`, read by `lint`."""
    if precision == "fp32":
        return ("CPU_AND_GPU", "fp32 program: the Neural Engine computes fp16 only, so Core ML runs it on the CPU "
                               "or GPU (fp32 packages are the accuracy reference)",
                [{"check": "dim-over-16384", "input": "*", "why": "fp32 package, not meant for the Neural Engine"}])
    if component == PREPROCESSOR:
        return ("CPU_ONLY", f"the mel front end takes raw samples (up to {g.max_samples}); the Neural Engine takes "
                            f"at most {NE_DIM_LIMIT} per dimension (about 1 s of audio), and the STFT is a small "
                            "share of the compute: run it on the CPU",
                [{"check": "dim-over-16384", "input": "audio_signal",
                  "why": "raw samples: this package is meant for the CPU (see intended_why)"}])
    if component == JOINT:
        return ("ALL", "per-step joint: fits the Neural Engine",
                [{"check": "flexible-lower-bound-1", "input": "*",
                  "why": "one encoder frame or one decoder step is a real joint call (the decode loop's)"}])
    if component == DECODER:
        return ("CPU_AND_GPU", "LSTM prediction net: public reports say Core ML does not place lstm on the Neural "
                               "Engine", [])
    return ("ALL", f"encoder within the Neural Engine's limits: up to {g.max_features} feature frames", [])


def default_max_frames(loaded: LoadedModel, seconds: float = DEFAULT_SECONDS) -> int:
    """Encoder frames that cover `seconds` of audio for this model."""
    return geometry(loaded, None, seconds).max_frames


def expected_frames(loaded: LoadedModel, component: str, size: int) -> int:
    """Time-axis length NeMo's `component` gives for an input of `size` samples (preprocessor) or feature frames
    (encoder): the tensor's length, which may exceed the valid-length output by a frame."""
    model = loaded.model
    if component == PREPROCESSOR:
        featurizer = model.preprocessor.featurizer
        pad = getattr(featurizer, "stft_pad_amount", None)
        if pad is None:
            return size // int(featurizer.hop_length) + 1
        return (size + 2 * int(pad) - int(featurizer.n_fft)) // int(featurizer.hop_length) + 1
    pre: Any = getattr(model.encoder, "pre_encode", None)
    if all(hasattr(pre, a) for a in ("_left_padding", "_right_padding", "_kernel_size", "_stride", "_sampling_num")):
        length = float(size)
        for _ in range(int(pre._sampling_num)):
            length = (length + pre._left_padding + pre._right_padding - pre._kernel_size) / pre._stride + 1
            length = math.ceil(length) if getattr(pre, "_ceil_mode", False) else math.floor(length)
        return int(length)
    return math.ceil(size / max(1, int(getattr(model.encoder, "subsampling_factor", 1) or 1)))


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


def cache_key(loaded: LoadedModel, component: str, precision: str, target: str, max_frames: int,
              keep_fp32: Iterable[str] = (), weights: str | None = None) -> str:
    from rnnt_tui.versions import all_versions

    versions = {k: v for k, v in all_versions().items() if k in ("rnnt-tui", "coremltools", "torch", "nemo_toolkit",
                                                                 "numpy")}
    extra: dict[str, Any] = {"policy": POLICY_VERSION}  # fp16 exceptions, input bounds and metadata
    if precision == "mixed":
        extra["keep_fp32"] = sorted(keep_fp32)
    if weights:
        extra["weights"] = weights
    return make_key(kind="coreml-package", sha256=loaded.sha256, component=component, precision=precision,
                    target=target, max_frames=max_frames, versions=versions, **extra)


def convert_components(loaded: LoadedModel, precision: str = DEFAULT_PRECISION,
                       minimum_deployment_target: str = DEFAULT_TARGET, max_frames: int | None = None,
                       components: Iterable[str] = COMPONENTS, out_dir: Path | str | None = None,
                       progress: Progress = no_progress, cancel: threading.Event | None = None,
                       cache: ArtifactCache | None = None, use_cache: bool = True,
                       keep_fp32: Mapping[str, Iterable[str]] | None = None,
                       weights: str | None = None) -> list[ConvertedPackage]:
    """Convert `components` of `loaded` to Core ML packages, cached (with `use_cache=False`, into a fresh temp dir
    the caller owns); copy them to `out_dir` as `<component>.mlpackage` when given. `keep_fp32` (component → op
    names) is the mixed-precision set; `weights` one of `coreml.weights.WEIGHTS`."""
    from rnnt_tui.core.coreml.weights import check_weights

    wanted = list(components)
    unknown = [c for c in wanted if c not in COMPONENTS]
    if unknown:
        raise ValueError(f"unknown component(s) {', '.join(unknown)}; choose from {', '.join(COMPONENTS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    weights = check_weights(weights)
    frames = package_max_frames(loaded, precision, max_frames)
    store = (cache or ArtifactCache()) if use_cache else None
    scratch = None if use_cache else Path(tempfile.mkdtemp(prefix="rnnt-tui-coreml-"))
    done: list[ConvertedPackage] = []
    label = precision + (f", {weights} weights" if weights else "")
    for index, component in enumerate(wanted):
        if cancel is not None and cancel.is_set():
            raise CancelledError(f"cancelled before converting the {component}")
        progress(f"Core ML: converting the {component} ({index + 1}/{len(wanted)}, {label})", index / len(wanted))
        start = time.perf_counter()
        keep = tuple(sorted((keep_fp32 or {}).get(component, ())))
        key = cache_key(loaded, component, precision, minimum_deployment_target, frames, keep, weights)
        name = f"{component}.mlpackage"
        if store is not None:
            def build(tmp: Path, component: str = component, name: str = name,
                      keep: tuple[str, ...] = keep) -> dict[str, Any]:
                notes, kept = _convert(loaded, component, tmp / name, precision, minimum_deployment_target, frames,
                                       keep, weights)
                return {"runtime": "coreml (package)", "checkpoint": str(loaded.path),
                        "component": component, "precision": precision, "target": minimum_deployment_target,
                        "max_frames": frames, "sha256": loaded.sha256, "notes": notes, "weights": weights,
                        "fp32_ops": [k.to_json() for k in kept]}

            entry, cached = store.get_or_build(key, build, cancel)
            path, notes = entry.path / name, list(entry.meta.get("notes", []))
            kept = [KeptOp(**k) for k in entry.meta.get("fp32_ops", [])]
            if store.note:
                notes.append(store.note)
        else:
            assert scratch is not None
            path, cached = scratch / key / name, False
            notes, kept = _convert(loaded, component, path, precision, minimum_deployment_target, frames, keep,
                                   weights)
        elapsed = (time.perf_counter() - start) * 1000
        units, why, _ = intended_units(component, precision, geometry(loaded, frames))
        done.append(ConvertedPackage(component=component, path=path, precision=precision,
                                     minimum_deployment_target=minimum_deployment_target, max_frames=frames,
                                     cached=cached, elapsed_ms=elapsed, cache_key=key, notes=tuple(notes),
                                     weights=weights, fp32_ops=tuple(kept), intended_units=units,
                                     intended_why=why))
        how = "from the cache" if cached else f"converted in {elapsed / 1000:.1f} s"
        kept_note = f", {len(kept)} ops kept in fp32" if kept else ""
        progress(f"Core ML: {component} {how}{kept_note}", (index + 1) / len(wanted))
    if out_dir is not None:
        done = [_copy_out(p, Path(out_dir).expanduser()) for p in done]
    return done


def _copy_out(package: ConvertedPackage, out_dir: Path) -> ConvertedPackage:
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{package.component}.mlpackage"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(package.path, target)
    return replace(package, path=target)


def write_packages(checkpoint_path: Path | str, out_dir: Path | str | None = None,
                   precision: str = DEFAULT_PRECISION, minimum_deployment_target: str = DEFAULT_TARGET,
                   max_frames: int | None = None, components: Iterable[str] = COMPONENTS,
                   progress: Progress = no_progress, cancel: threading.Event | None = None,
                   weights: str | None = None,
                   keep_fp32: Callable[[LoadedModel], dict[str, tuple[str, ...]]] | None = None
                   ) -> list[ConvertedPackage]:
    """`rnnt-tui convert CHECKPOINT [--precision] [--weights] [--out DIR] [CLIPS]`: restore, convert, and write
    `<component>.mlpackage` files into `out_dir` (default `./<checkpoint stem>-coreml-<precision>` in the working
    directory). `precision="mixed"` converts with the fp32 set `keep_fp32(loaded)` gives (the caller's search:
    `precision.mixed.find_mixed_precision`; conversion never imports the precision tools)."""
    from rnnt_tui.core.checkpoint import restore
    from rnnt_tui.core.coreml.weights import check_weights

    path = Path(checkpoint_path).expanduser()
    if not path.is_file():
        raise BadInputError(path, "no such checkpoint file")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    weights = check_weights(weights)
    tag = precision + (f"-{weights}" if weights else "")
    out = Path(out_dir).expanduser() if out_dir else Path.cwd() / f"{path.stem}-coreml-{tag}"
    progress(f"Restoring {path.name} through NeMo", None)
    loaded = restore(path, cancel=cancel)
    keep: dict[str, tuple[str, ...]] | None = None
    if precision == "mixed":
        if keep_fp32 is None:
            raise ValueError("precision 'mixed' needs the fp32 set: pass keep_fp32 (precision.mixed's search)")
        keep = keep_fp32(loaded)
    return convert_components(loaded, precision=precision, minimum_deployment_target=minimum_deployment_target,
                              max_frames=max_frames, components=components, out_dir=out, progress=progress,
                              cancel=cancel, keep_fp32=keep, weights=weights)
