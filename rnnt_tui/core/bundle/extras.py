"""What a recording may carry beside the reference, so a replay machine needs nothing else.

`add_packages`: the tool's own Core ML conversion (`record --convert fp32|fp16`), whose packages carry the
checkpoint's SHA-256 in their metadata (`rnnt_tui.source_sha256`), with what a replay needs to know of each one
before it runs (`facts`: its declared spec and its program's precision, so opening the bundle needs no
coremltools); `add_coreai_assets`: its Core AI conversion
(`record --convert coreai`), the assets carrying the same metadata. `add_onnx_export`: NeMo's own ONNX export
(`record --export onnx`) - an ONNX replay needs it, and making it needs torch and NeMo. Both run at record time
only, on the restored model; they are imported only by `record`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rnnt_tui.core.bundle.format import BundleWriter
from rnnt_tui.core.checkpoint import LoadedModel
from rnnt_tui.core.components import ENCODER
from rnnt_tui.core.progress import Progress

ONNX_DIR = "onnx"
CACHE_MANIFEST = "MANIFEST.json"


def add_packages(writer: BundleWriter, loaded: LoadedModel, precision: str, progress: Progress,
                 cancel: threading.Event | None) -> dict[str, Any]:
    """Convert every component to `precision` ML programs into `packages/<precision>/`."""
    from rnnt_tui.core.coreml.convert import convert_components
    from rnnt_tui.core.runtimes.package_inventory import record_packages

    rel = f"packages/{precision}"
    converted = convert_components(loaded, precision=precision, out_dir=writer.folder(rel),
                                   progress=progress, cancel=cancel)
    writer.add_tree(rel)
    return {"dir": rel, "precision": precision, "source_sha256": loaded.sha256,
            "components": {p.component: Path(p.path).name for p in converted},
            "max_frames": converted[0].max_frames if converted else None,
            "notes": sorted({n for p in converted for n in p.notes}),
            "facts": record_packages([Path(p.path) for p in converted])}


def add_coreai_assets(writer: BundleWriter, loaded: LoadedModel, precision: str, progress: Progress,
                      cancel: threading.Event | None) -> dict[str, Any]:
    """Convert every component to Core AI assets (`core.coreai.convert`, cached) into `coreai/<precision>/`."""
    import shutil

    from rnnt_tui.core.coreai.convert import convert_components

    rel = f"coreai/{precision}"
    folder = writer.folder(rel)
    converted = convert_components(loaded, precision=precision, progress=progress, cancel=cancel)
    for asset in converted:
        shutil.copytree(asset.path, folder / asset.path.name)
    writer.add_tree(rel)
    return {"dir": rel, "precision": precision, "source_sha256": loaded.sha256,
            "components": {a.component: a.path.name for a in converted},
            "max_frames": converted[0].max_frames if converted else None,
            "notes": sorted({n for a in converted for n in a.notes})}


def add_onnx_export(writer: BundleWriter, loaded: LoadedModel, progress: Progress,
                    cancel: threading.Event | None) -> dict[str, Any]:
    """NeMo's ONNX export of the model (the graphs `--against onnx` runs), from the export cache, into `onnx/`."""
    from rnnt_tui.core.runtimes.onnx_runtime import OnnxRuntime

    runtime = OnnxRuntime(loaded)
    try:
        reports = runtime.prepare(progress, cancel)
        artifact = next(r.artifact for r in reports if r.component == ENCODER)
        assert artifact is not None
        folder = Path(artifact).parent
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.name != CACHE_MANIFEST:
                writer.copy_tree(f"{ONNX_DIR}/{path.name}", path)
        describe = runtime.describe()
        return {"dir": ONNX_DIR, "source_sha256": loaded.sha256, "opset": describe.get("opset"),
                "exporter": describe.get("exporter"), "layers": runtime.layers, "hidden": runtime.hidden,
                "encoder_hidden": runtime.enc_hidden, "blank_id": runtime.blank_id}
    finally:
        runtime.close()
