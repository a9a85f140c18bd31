"""The bundle container on its own (no model): folder and .rnntb round trips, integrity checks, no pickles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rnnt_tui.core.bundle.format import Bundle, BundleWriter
from rnnt_tui.core.errors import BadInputError


def _write(out: Path) -> Path:
    writer = BundleWriter(out)
    writer.array("a", np.arange(6, dtype=np.float32).reshape(2, 3))
    assert writer.array("same_as_a", np.arange(6, dtype=np.float32).reshape(2, 3)) == "a"  # stored once
    grid = writer.open_array("grid", (4, 5), np.float32)
    grid[:2] = 1.0
    grid[2:] = 2.0
    del grid
    writer.close_array("grid")
    return writer.finish({"clips": [], "note": "unit"})


@pytest.mark.parametrize("name", ["b", "b.rnntb"])
def test_round_trip(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path / name)
    assert path.is_file() == name.endswith(".rnntb")
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no partial folder left behind
    bundle = Bundle.open(path)
    np.testing.assert_array_equal(bundle.array("a"), np.arange(6, dtype=np.float32).reshape(2, 3))
    assert bundle.array("grid", mmap=True).sum() == 2 * 5 + 2 * 2 * 5
    assert not bundle.has("same_as_a")
    assert bundle.meta["note"] == "unit" and bundle.format_version == 1
    bundle.close()


def test_wrong_shape_and_pickle_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "b")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["arrays"]["a"]["shape"] = [3, 2]
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BadInputError, match=r"array a has shape \[2, 3\]"):
        Bundle.open(path)
    with pytest.raises(ValueError, match="numeric arrays only"):
        BundleWriter(tmp_path / "c").array("x", np.array([{"a": 1}], dtype=object))


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no such bundle"):
        Bundle.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="not an rnnt-tui bundle"):
        Bundle.open(tmp_path / "empty")
    (tmp_path / "junk.rnntb").write_bytes(b"not a zip at all")
    with pytest.raises(BadInputError, match=r"not a readable \.rnntb"):
        Bundle.open(tmp_path / "junk.rnntb")
