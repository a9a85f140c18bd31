"""Compressed weights: int8 linear quantisation or 6-/4-bit palettisation of an ML program's weights.

Uses `coremltools.optimize.coreml` (`linear_quantize_weights`, `palettize_weights`) with per-tensor settings,
which every ML-program target from macOS13 / iOS16 on accepts (per-channel scales and grouped palettes need
iOS18 / macOS15 and are not used). Small weights (under `weight_threshold` elements: biases, norms) stay as they
are, coremltools' default. Given packages are read, never written: the compressed copy goes to the cache or to
the out dir the caller names.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

from rnnt_tui.core.cache import ArtifactCache, make_key
from rnnt_tui.core.errors import BadInputError

WEIGHTS = ("int8", "palettize6", "palettize4")
#: the oldest deployment target each scheme runs on (ML-program spec versions: 7 = macOS13 / iOS16)
MIN_SPEC_VERSION = {"int8": 7, "palettize6": 7, "palettize4": 7}
_THRESHOLD = 2048


def check_weights(weights: str | None) -> str | None:
    if weights in (None, "", "none", "fp"):
        return None
    if weights not in WEIGHTS:
        raise ValueError(f"unknown weights {weights!r}; choose one of {', '.join(WEIGHTS)}")
    return weights


def config(weights: str) -> Any:
    import coremltools.optimize.coreml as cto  # coremltools: only when compressing

    if weights == "int8":
        return cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(
            mode="linear_symmetric", dtype="int8", weight_threshold=_THRESHOLD))
    nbits = int(weights.removeprefix("palettize"))
    return cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(
        mode="kmeans", nbits=nbits, weight_threshold=_THRESHOLD))


def compress_model(mlmodel: Any, weights: str) -> Any:
    """A new MLModel with `mlmodel`'s weights compressed (the argument is left as it was)."""
    import coremltools.optimize.coreml as cto

    spec_version = int(mlmodel.get_spec().specificationVersion)
    if spec_version < MIN_SPEC_VERSION[weights]:
        raise ValueError(f"{weights} weights need an ML program for macOS13 / iOS16 or later "
                         f"(this one targets spec version {spec_version})")
    if weights == "int8":
        return cto.linear_quantize_weights(mlmodel, config(weights))
    return cto.palettize_weights(mlmodel, config(weights))


def compress_package(path: Path | str, weights: str, out_dir: Path | None = None,
                     cache: ArtifactCache | None = None, cancel: threading.Event | None = None) -> Path:
    """Compress the package at `path` into the cache (keyed by the package's bytes), or into `out_dir`; returns
    the compressed package's path. Refuses a package that is not an ML program, naming it."""
    from rnnt_tui.core.coreml.spec import load_coremltools
    from rnnt_tui.core.quiet import quiet

    source = Path(path).expanduser()
    if source.suffix != ".mlpackage" or not source.is_dir():
        raise BadInputError(source, "weights can only be compressed in an .mlpackage (ML program)")
    ct, _ = load_coremltools()
    with quiet():
        try:
            model = ct.models.MLModel(str(source), skip_model_load=True)
        except Exception as exc:  # noqa: BLE001 - coremltools raises bare Exceptions on unreadable packages
            raise BadInputError(source, f"not a readable Core ML package ({exc})") from None
    if model.get_spec().WhichOneof("Type") != "mlProgram":
        raise BadInputError(source, "not an ML program (neural-network packages cannot be compressed here)")

    def build(tmp: Path) -> dict[str, Any]:
        with quiet():
            compressed = compress_model(model, weights)
            compressed.save(str(tmp / source.name))
        return {"source": str(source), "weights": weights}

    if out_dir is not None:
        target = Path(out_dir).expanduser() / source.name
        if target.resolve() == source.resolve():
            raise BadInputError(source, "refusing to write the compressed copy over the package itself")
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        build(target.parent)
        return target
    store = cache or ArtifactCache()
    key = make_key(kind="compressed-package", digest=_digest(source), weights=weights)
    entry, _ = store.get_or_build(key, build, cancel)
    return entry.path / source.name


def _digest(package: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    for file in sorted(p for p in package.rglob("*") if p.is_file()):
        h.update(str(file.relative_to(package)).encode())
        h.update(str(file.stat().st_size).encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()
