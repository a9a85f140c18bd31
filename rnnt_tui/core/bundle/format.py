"""The bundle on disk: a folder (or one `.rnntb` zip of that folder) of `.npy` arrays, files and two JSON documents.

    bundle.json     what was recorded: format_version, the model's facts, the clips, settings, versions
    manifest.json   every array's file, SHA-256, shape and dtype; every other file's SHA-256 and size
    arrays/...npy   numpy arrays, read with allow_pickle=False (never pickle)
    packages/, onnx/   optional conversions and exports made at record time

A bundle is written into a hidden sibling folder and renamed into place when complete, so a stopped recording
leaves nothing under the name asked for; an existing path is never overwritten. Reading checks, in this order, the
format version (a newer one is refused), then every manifest entry (missing, truncated, tampered, wrong shape or
dtype), and names the first bad one. Nothing is ever written into a bundle that is being read: a zip is extracted
into a private temporary folder.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnnt_tui.core.bundle.identify import BUNDLE_FILE, ZIP_SUFFIX
from rnnt_tui.core.errors import BadInputError

FORMAT_NAME = "rnnt-tui bundle"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
ARRAY_DIR = "arrays"
_CHUNK = 8 * 1024 * 1024


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def content_key(array: np.ndarray) -> bytes:
    """A short digest of an array's dtype, shape and values: how recorded outputs are found from their inputs."""
    value = np.ascontiguousarray(array)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{value.dtype.str}{value.shape}".encode())
    digest.update(value.tobytes() if value.ndim == 0 else value.reshape(-1).view(np.uint8).data)
    return digest.digest()


@dataclass(frozen=True)
class ArrayEntry:
    """One array of the manifest."""

    name: str
    file: str
    sha256: str
    shape: tuple[int, ...]
    dtype: str
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "sha256": self.sha256, "shape": list(self.shape), "dtype": self.dtype,
                "bytes": self.bytes}


class BundleWriter:
    """Writes a new bundle at `out` (a folder, or a `.rnntb` zip when the name ends so)."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out).expanduser()
        if self.out.exists():
            raise BadInputError(self.out, "already exists; recording never overwrites anything: choose a new --out")
        if not self.out.parent.is_dir():
            raise BadInputError(self.out, "its folder does not exist")
        self.root = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.partial-", dir=self.out.parent))
        self.arrays: dict[str, ArrayEntry] = {}
        self.files: dict[str, dict[str, Any]] = {}
        self._open: dict[str, np.memmap] = {}

    def _array_file(self, name: str) -> tuple[str, Path]:
        if name in self.arrays or name in self._open:
            raise ValueError(f"array {name} is written twice")
        rel = f"{ARRAY_DIR}/{name}.npy"
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return rel, path

    def array(self, name: str, value: np.ndarray) -> str:
        """Store `value` as array `name` (e.g. `clips/0/encoded`); returns the name."""
        value = np.asarray(value)
        if value.dtype == object:
            raise ValueError(f"array {name} has dtype object; bundles hold numeric arrays only")
        rel, path = self._array_file(name)
        np.save(path, np.ascontiguousarray(value), allow_pickle=False)
        entry = self._enter(name, rel, path, value.shape, value.dtype)
        for other in self.arrays.values():  # an array equal to one already stored is stored once
            if other.name != name and (other.sha256, other.shape, other.dtype) == \
                    (entry.sha256, entry.shape, entry.dtype):
                del self.arrays[name]
                path.unlink()
                return other.name
        return name

    def open_array(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.memmap:
        """A writable memory map for array `name`, filled by the caller in pieces; `close_array` seals it."""
        _, path = self._array_file(name)
        mapped = np.lib.format.open_memmap(path, mode="w+", dtype=np.dtype(dtype), shape=shape)
        self._open[name] = mapped
        return mapped

    def close_array(self, name: str) -> str:
        mapped = self._open.pop(name)
        mapped.flush()
        shape, dtype = mapped.shape, mapped.dtype
        del mapped
        self._enter(name, f"{ARRAY_DIR}/{name}.npy", self.root / ARRAY_DIR / f"{name}.npy", shape, dtype)
        return name

    def _enter(self, name: str, rel: str, path: Path, shape: tuple[int, ...], dtype: np.dtype[Any]) -> ArrayEntry:
        entry = ArrayEntry(name=name, file=rel, sha256=sha256_file(path), shape=tuple(int(d) for d in shape),
                           dtype=np.dtype(dtype).str, bytes=path.stat().st_size)
        self.arrays[name] = entry
        return entry

    def copy_tree(self, rel: str, source: Path) -> str:
        """Copy a file or folder (a package, an ONNX graph) into the bundle at `rel`, each file in the manifest."""
        target = self.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        return self.add_tree(rel)

    def folder(self, rel: str) -> Path:
        """A folder inside the bundle for the caller to fill; `add_tree(rel)` then enters its files."""
        target = self.root / rel
        target.mkdir(parents=True, exist_ok=True)
        return target

    def add_tree(self, rel: str) -> str:
        """Enter every file under `rel` (already inside the bundle) into the manifest."""
        target = self.root / rel
        for path in sorted([target] if target.is_file() else target.rglob("*")):
            if path.is_file():
                self.files[path.relative_to(self.root).as_posix()] = {"sha256": sha256_file(path),
                                                                      "bytes": path.stat().st_size}
        return rel

    def finish(self, meta: dict[str, Any]) -> Path:
        """Write the two JSON documents and move the bundle into place; returns its path."""
        if self._open:
            raise RuntimeError(f"arrays left open: {', '.join(self._open)}")
        manifest = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                    "arrays": {n: e.to_json() for n, e in self.arrays.items()}, "files": self.files}
        (self.root / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
        document = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **meta}
        (self.root / BUNDLE_FILE).write_text(json.dumps(document, indent=1, default=str))
        if self.out.suffix == ZIP_SUFFIX:
            partial = self.root.with_suffix(".zip-partial")
            with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
                for path in sorted(self.root.rglob("*")):
                    if path.is_file():
                        archive.write(path, path.relative_to(self.root).as_posix())
            os.replace(partial, self.out)
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            os.replace(self.root, self.out)
        return self.out

    def abort(self) -> None:
        """Remove everything written so far (nothing appears at `out`)."""
        self._open.clear()
        shutil.rmtree(self.root, ignore_errors=True)


def _json(path: Path, bundle: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise BadInputError(bundle, f"is not an rnnt-tui bundle: it has no {what}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BadInputError(bundle, f"its {what} is not readable JSON ({exc}); the bundle is damaged") from exc
    if not isinstance(data, dict):
        raise BadInputError(bundle, f"its {what} is not a JSON object; the bundle is damaged")
    return data


def check_version(data: dict[str, Any], bundle: Path) -> int:
    version = data.get("format_version")
    if data.get("format") != FORMAT_NAME or not isinstance(version, int) or isinstance(version, bool):
        raise BadInputError(bundle, "is not an rnnt-tui bundle (no format / format_version in bundle.json)")
    if version > FORMAT_VERSION:
        raise BadInputError(bundle, f"was written in bundle format version {version}, newer than this rnnt-tui "
                                    f"reads (version {FORMAT_VERSION}); upgrade rnnt-tui to replay it")
    if version < 1:
        raise BadInputError(bundle, f"has an invalid bundle format version {version}")
    return version


class Bundle:
    """A bundle opened for reading: its documents, verified arrays and files. Never written to."""

    def __init__(self, path: Path, root: Path, meta: dict[str, Any], manifest: dict[str, Any],
                 scratch: Path | None) -> None:
        self.path = path
        self.root = root
        self.meta = meta
        self.manifest = manifest
        self._scratch = scratch
        self._arrays: dict[str, dict[str, Any]] = manifest.get("arrays", {})

    @classmethod
    def open(cls, path: Path | str, verify: bool = True, files: tuple[str, ...] | None = None) -> Bundle:
        """Open a bundle folder or `.rnntb` file; with `verify`, every array and the files under `files` (folder
        prefixes; None: all) are checked against the manifest first."""
        path = Path(path).expanduser()
        scratch = None
        if path.is_file():
            scratch = _extract(path)
            root = scratch
        elif path.is_dir():
            root = path
        else:
            raise BadInputError(path, "no such bundle (a folder or a .rnntb file)")
        try:
            meta = _json(root / BUNDLE_FILE, path, BUNDLE_FILE)
            check_version(meta, path)
            manifest = _json(root / MANIFEST_FILE, path, MANIFEST_FILE)
            check_version(manifest, path)
            bundle = cls(path, root, meta, manifest, scratch)
            if verify:
                bundle.verify(files)
        except BaseException:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
            raise
        return bundle

    def verify(self, files: tuple[str, ...] | None = None) -> None:
        """Check every array, and every file under the `files` prefixes (None: all), against the manifest; the
        first bad one is named."""
        for name, entry in self._arrays.items():
            self._check(f"array {name}", entry)
            shape, dtype = _npy_header(self.root / entry["file"], self.path, name)
            if list(shape) != list(entry["shape"]) or dtype != np.dtype(entry["dtype"]):
                raise BadInputError(self.path, f"array {name} has shape {list(shape)} {dtype}, but the manifest "
                                               f"says {entry['shape']} {np.dtype(entry['dtype'])}")
        self.verify_files(files)

    def verify_files(self, files: tuple[str, ...] | None = None) -> int:
        """Check every file under the `files` prefixes (None: all) against the manifest; how many there were."""
        checked = 0
        for rel, entry in self.manifest.get("files", {}).items():
            if files is None or any(rel.startswith(prefix.rstrip("/") + "/") for prefix in files):
                self._check(f"file {rel}", {**entry, "file": rel})
                checked += 1
        return checked

    def inside(self, rel: str) -> bool:
        """Whether `rel` (a path a bundle document names) stays inside the bundle."""
        return isinstance(rel, str) and not Path(rel).is_absolute() and _inside(self.root / rel, self.root)

    def _check(self, what: str, entry: dict[str, Any]) -> None:
        file = self.root / str(entry.get("file", ""))
        if not _inside(file, self.root):
            raise BadInputError(self.path, f"{what} points outside the bundle ({entry.get('file')})")
        if not file.is_file():
            raise BadInputError(self.path, f"{what} is missing ({entry.get('file')})")
        size = file.stat().st_size
        if size != entry.get("bytes"):
            raise BadInputError(self.path, f"{what} is {size} bytes, the manifest says {entry.get('bytes')}: "
                                           f"the bundle is truncated or was modified")
        if sha256_file(file) != entry.get("sha256"):
            raise BadInputError(self.path, f"{what} does not match its SHA-256 in the manifest: the bundle was "
                                           f"modified or damaged")

    def has(self, name: str) -> bool:
        return name in self._arrays

    def array(self, name: str, mmap: bool = False) -> np.ndarray:
        """Array `name` (memory-mapped read-only when `mmap`); a name the manifest lacks is a damaged bundle."""
        entry = self._arrays.get(name)
        if entry is None:
            raise BadInputError(self.path, f"array {name} is missing from the manifest")
        file = self.root / entry["file"]
        try:
            value: np.ndarray = np.load(file, allow_pickle=False, mmap_mode="r" if mmap else None)
        except (OSError, ValueError) as exc:
            raise BadInputError(self.path, f"array {name} cannot be read ({exc})") from exc
        return value

    def file(self, rel: str) -> Path:
        return self.root / rel

    @property
    def format_version(self) -> int:
        return int(self.meta["format_version"])

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _npy_header(file: Path, bundle: Path, name: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
    try:
        with file.open("rb") as handle:
            major, _ = np.lib.format.read_magic(handle)
            read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(handle)
    except (OSError, ValueError) as exc:
        raise BadInputError(bundle, f"array {name} is not a readable .npy file ({exc})") from exc
    if dtype.hasobject:
        raise BadInputError(bundle, f"array {name} holds Python objects; bundles never hold pickles")
    return tuple(shape), dtype


def _extract(path: Path) -> Path:
    """Extract a `.rnntb` zip into a private temporary folder (removed at exit)."""
    scratch = Path(tempfile.mkdtemp(prefix="rnnt-tui-bundle-"))
    atexit.register(shutil.rmtree, scratch, True)
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                target = scratch / info.filename
                if info.filename.startswith("/") or not _inside(target, scratch):
                    raise BadInputError(path, f"member {info.filename} points outside the bundle")
            archive.extractall(scratch)
    except zipfile.BadZipFile as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        raise BadInputError(path, f"is not a readable .rnntb bundle ({exc}); it may be truncated") from exc
    except (OSError, EOFError) as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        raise BadInputError(path, f"cannot be extracted ({exc}); it may be truncated") from exc
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return scratch
