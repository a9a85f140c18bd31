"""Which candidate a recorded bundle can replay, and which clip it holds, read from its `bundle.json` alone.

Opening a bundle in the app without `--against` must not default to a runtime the bundle cannot replay (ONNX
Runtime needs the export recorded with `record --export onnx`; the MIL interpreter and Core ML need the packages
recorded with `--convert`), and the header must name the bundle's own clip, not the demo's. Only the bundle's
JSON is read here (no arrays, nothing extracted, numpy not imported: `core.bundle.identify`): the first frame
still comes at once.
"""

from __future__ import annotations

import json
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BundleChoice:
    """What the app should open a bundle with: the candidate, the recorded clip's name, and a note when the
    asked candidate was not replayable (said on screen, never switched silently)."""

    against: str
    clip: Path | None
    note: str | None = None


def bundle_meta(path: Path) -> dict[str, Any] | None:
    """The bundle's `bundle.json`, or None when `path` is not a readable bundle (the engine reports why)."""
    if not (path.is_dir() or (path.suffix.lower() != ".nemo" and zipfile.is_zipfile(path))):
        return None  # a checkpoint (a .nemo tar, which can look like a zip: torch's weights inside)
    from rnnt_tui.core.bundle.identify import BUNDLE_FILE, is_bundle

    if not is_bundle(path):
        return None
    try:
        if path.is_dir():
            data = json.loads((path / BUNDLE_FILE).read_text())
        else:
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == BUNDLE_FILE]
                data = json.loads(archive.read(min(names, key=len))) if names else None
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    return data if isinstance(data, dict) else None


def replayable(meta: dict[str, Any]) -> tuple[str, ...]:
    """The candidates the bundle holds what they need for, best first (Core ML only on a Mac)."""
    found: list[str] = []
    if meta.get("packages"):
        found += ["coreml", "mil"] if sys.platform == "darwin" else ["mil"]
    if meta.get("onnx"):
        found.append("onnx")
    return tuple(found)


def choose(path: Path, against: str | None) -> BundleChoice | None:
    """For a bundle: `against` if it can replay it (None: the best it can), else the best with a note; None for
    a checkpoint."""
    from rnnt_tui.core.names import RUNTIME_LABELS

    meta = bundle_meta(path)
    if meta is None:
        return None
    clips = meta.get("clips") or []
    clip = Path(str(clips[0].get("name"))) if clips and isinstance(clips[0], dict) and clips[0].get("name") else None
    can = replayable(meta)
    if not can or against in can:
        return BundleChoice(against or "mil", clip)
    chosen = can[0]
    note = None if against is None else (
        f"{path.name} holds nothing {RUNTIME_LABELS.get(against, against)} can replay; replaying with "
        f"{RUNTIME_LABELS.get(chosen, chosen)} (it holds: {', '.join(RUNTIME_LABELS.get(c, c) for c in can)})")
    return BundleChoice(chosen, clip, note)
