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
versions) in the ArtifactCache; `out_dir` copies them out as `<component>.mlpackage`. What the tracer and
coremltools print or warn is captured and returned in each package's notes, never printed.

This module is the cache, the copies and the `convert` command's entry point; tracing and converting one component
is `coreml.convert_one`, the sizes and bounds `coreml.geometry` (both re-exported here).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rnnt_tui.core.cache import ArtifactCache, make_key
from rnnt_tui.core.checkpoint import LoadedModel
from rnnt_tui.core.components import COMPONENTS
from rnnt_tui.core.coreml.convert_one import (  # noqa: F401 - re-exported: where callers have always found them
    DEFAULT_PRECISION,
    DEFAULT_TARGET,
    PRECISIONS,
    _convert,
    _encoder_covering,
    convert_one,
)
from rnnt_tui.core.coreml.fp16_policy import KeptOp
from rnnt_tui.core.coreml.geometry import (  # noqa: F401 - re-exported: where callers have always found them
    DEFAULT_SECONDS,
    INTENDED_UNITS_KEY,
    INTENDED_WHY_KEY,
    LINT_EXPECTED_KEY,
    NE_DIM_LIMIT,
    Geometry,
    default_max_frames,
    expected_frames,
    geometry,
    intended_units,
    package_max_frames,
)
from rnnt_tui.core.errors import BadInputError, CancelledError
from rnnt_tui.core.progress import Progress, no_progress

#: bumped when the fp16 exceptions, the input bounds or the metadata change, so older cached packages are not served
POLICY_VERSION = 4


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
