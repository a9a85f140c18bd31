"""Versions of rnnt-tui and the libraries it drives, read from package metadata without importing them."""

from __future__ import annotations

import functools
from importlib import metadata

from rnnt_tui import __version__

LIBRARIES = ("nemo_toolkit", "torch", "coremltools", "onnxruntime", "textual", "numpy")


@functools.cache
def package_version(name: str) -> str | None:
    """A package's installed version (read once per process: metadata reads cost ~30 ms each)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def all_versions() -> dict[str, str | None]:
    return {"rnnt-tui": __version__, **{name: package_version(name) for name in LIBRARIES}}
