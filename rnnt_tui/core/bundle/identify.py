"""What a bundle is called on disk and how a path is told to be one rather than a checkpoint.

Apart from `format` (which reads and writes bundles with numpy) so that the app's UI process can tell a bundle
from a checkpoint, and read its `bundle.json`, before its first frame without importing numpy.
"""

from __future__ import annotations

from pathlib import Path

BUNDLE_FILE = "bundle.json"
ZIP_SUFFIX = ".rnntb"


def is_bundle(path: Path) -> bool:
    """Whether `path` is an rnnt-tui bundle (a folder with bundle.json, or a .rnntb zip) rather than a checkpoint."""
    return path.suffix == ZIP_SUFFIX or (path.is_dir() and (path / BUNDLE_FILE).is_file())
