"""Exported and converted artifacts, cached on disk by content, written atomically.

An entry's key hashes the checkpoint's SHA-256, the runtime, the component set, the runtime options and the
library versions. An entry is built in a private temp dir beside the cache and renamed into place only when
complete, with a manifest of every file and its size: a kill mid-build leaves no entry (only a temp dir that
the next build sweeps away), and an entry whose files do not match its manifest is treated as corrupt and
rebuilt. Builders of the same key in two processes are serialised with a lock file. If the cache dir cannot be
written (missing and not creatable, read-only, not a directory) or fills up mid-build (ENOSPC, quota), builds go
to one private temp dir for this process, removed when it exits, and `note` says why in one sentence: the tool
keeps working without a cache.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnt_tui.core.errors import CancelledError
from rnnt_tui.paths import cache_dir

MANIFEST = "MANIFEST.json"
_STALE_TMP_S = 6 * 3600
#: errors that mean "this cache dir cannot take the entry", not "the build is broken": retried without the cache
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG,
                          errno.ENOTDIR})
_fallback_root: Path | None = None
_fallback_lock = threading.Lock()


def _fallback() -> Path:
    """This process's private cache root (0700 temp dir), made once and removed at exit."""
    global _fallback_root
    with _fallback_lock:
        if _fallback_root is None or not _fallback_root.is_dir():
            _fallback_root = Path(tempfile.mkdtemp(prefix="rnnt-tui-cache-"))
            atexit.register(shutil.rmtree, _fallback_root, True)
        return _fallback_root


def _disk_trouble(exc: BaseException) -> str | None:
    """Why `exc` looks like the cache's disk refusing the write (full, read-only, no permission), else None."""
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
        return exc.strerror or str(exc)
    text = str(exc)
    for marker in ("No space left on device", "Disk quota exceeded", "Read-only file system"):
        if marker in text:
            return marker
    return None


@dataclass
class CacheStats:
    """Counters of what the cache did in this process (tests read them instead of timers)."""

    hits: int = 0
    builds: int = 0
    rebuilt_corrupt: int = 0


@dataclass(frozen=True)
class CacheEntry:
    key: str
    path: Path
    size_bytes: int
    meta: dict[str, Any] = field(default_factory=dict)

    def what(self) -> dict[str, str | None]:
        """What the entry is, read from its manifest's meta: runtime (or kind), component, and the checkpoint
        (its path where recorded, else its SHA-256 prefix). Entries written before these were recorded are read
        from what their builders kept (a Core ML package's target, an ONNX export's opset, a compiled package)."""
        meta = self.meta
        runtime = meta.get("runtime") or meta.get("kind")
        if runtime is None:
            if "target" in meta and "precision" in meta:
                runtime = "coreml (package)"
            elif "opset" in meta or "export_ms" in meta:
                runtime = "onnx"
            elif "package" in meta:
                runtime = "coreml (compiled)"
        component = meta.get("component") or ("encoder+decoder_joint" if runtime == "onnx" else None)
        checkpoint = meta.get("checkpoint") or (f"sha256 {str(meta['sha256'])[:12]}" if meta.get("sha256") else None)
        if checkpoint is None and meta.get("package"):
            checkpoint = str(meta["package"])
        return {"runtime": runtime, "component": component, "checkpoint": checkpoint}


def make_key(**parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:40]


def _listing(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != MANIFEST}


class ArtifactCache:
    """A directory of complete, immutable entries."""

    stats = CacheStats()

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or cache_dir()) / "artifacts"
        self.note: str | None = None
        self.fallback = False
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".probe-{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            self._fall_back(f"cache dir {self.root} is not writable ({exc.strerror or exc})")

    def _fall_back(self, why: str) -> None:
        root = _fallback() / "artifacts"
        root.mkdir(parents=True, exist_ok=True)
        self.note = f"{why}; working without a cache: artifacts go to {root} for this run only"
        self.root, self.fallback = root, True

    def path(self, key: str) -> Path:
        return self.root / key

    def _valid(self, entry: Path) -> dict[str, Any] | None:
        try:
            manifest = json.loads((entry / MANIFEST).read_text())
            files: dict[str, int] = manifest["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not files or _listing(entry) != files:
            return None
        meta: dict[str, Any] = manifest.get("meta", {})
        return meta

    def lookup(self, key: str) -> CacheEntry | None:
        entry = self.path(key)
        if not entry.is_dir():
            return None
        meta = self._valid(entry)
        if meta is None:
            return None
        return CacheEntry(key=key, path=entry, size_bytes=sum(_listing(entry).values()), meta=meta)

    @contextlib.contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        lock_path = self.root / f".{key}.lock"
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _sweep(self) -> None:
        now = time.time()
        for tmp in self.root.glob(".tmp-*"):
            with contextlib.suppress(OSError):
                if now - tmp.stat().st_mtime > _STALE_TMP_S or not _pid_alive(tmp.name):
                    shutil.rmtree(tmp, ignore_errors=True)

    def get_or_build(self, key: str, build: Callable[[Path], dict[str, Any]],
                     cancel: threading.Event | None = None) -> tuple[CacheEntry, bool]:
        """Return (entry, was_cached). `build(tmpdir)` writes files into tmpdir and returns metadata.

        If the cache dir refuses the entry (full disk, quota, read-only, permissions), the build is retried once
        in this process's private temp cache and `note` says so; other errors propagate unchanged.
        """
        try:
            return self._get_or_build(key, build, cancel)
        except Exception as exc:
            why = _disk_trouble(exc)
            if why is None or self.fallback:
                raise
            self._fall_back(f"cache dir {self.root} cannot take the entry ({why})")
            return self._get_or_build(key, build, cancel)

    def _get_or_build(self, key: str, build: Callable[[Path], dict[str, Any]],
                      cancel: threading.Event | None) -> tuple[CacheEntry, bool]:
        hit = self.lookup(key)
        if hit is not None:
            type(self).stats.hits += 1
            return hit, True
        with self._lock(key):
            hit = self.lookup(key)
            if hit is not None:
                type(self).stats.hits += 1
                return hit, True
            self._sweep()
            final = self.path(key)
            if final.exists():
                type(self).stats.rebuilt_corrupt += 1
                shutil.rmtree(final, ignore_errors=True)
            tmp = self.root / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{key[:12]}"
            tmp.mkdir(parents=True)
            try:
                meta = build(tmp)
                if cancel is not None and cancel.is_set():
                    raise CancelledError("cancelled; the partial artifact was discarded")
                files = _listing(tmp)
                (tmp / MANIFEST).write_text(json.dumps({"files": files, "meta": meta, "created": time.time()},
                                                       indent=1, default=str))
                os.replace(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            type(self).stats.builds += 1
            entry = self.lookup(key)
            if entry is None:
                raise OSError(f"cache entry {final} vanished right after it was written")
            return entry, False

    def invalidate(self, key: str) -> None:
        """Drop an entry a consumer found unusable (corruption the manifest cannot see, e.g. same-size)."""
        with self._lock(key):
            if self.path(key).exists():
                shutil.rmtree(self.path(key), ignore_errors=True)
                type(self).stats.rebuilt_corrupt += 1

    def entries(self) -> list[CacheEntry]:
        out = []
        for entry in sorted(self.root.iterdir()) if self.root.is_dir() else []:
            if entry.is_dir() and not entry.name.startswith("."):
                meta = self._valid(entry)
                size = sum(_listing(entry).values())
                out.append(CacheEntry(key=entry.name, path=entry, size_bytes=size,
                                      meta=meta if meta is not None else {"corrupt": True}))
        return out

    def clear(self) -> int:
        """Remove every entry; returns how many were removed. Builds in progress in live processes are left."""
        removed = 0
        for entry in list(self.root.iterdir()) if self.root.is_dir() else []:
            building = entry.name.startswith(".tmp-") and not entry.name.startswith(f".tmp-{os.getpid()}-")
            if building and _pid_alive(entry.name):
                continue  # another process is building this entry right now
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
                removed += not entry.name.startswith(".")
            elif entry.name.endswith(".lock"):
                entry.unlink(missing_ok=True)
        return removed


def _pid_alive(tmp_name: str) -> bool:
    try:
        pid = int(tmp_name.split("-")[1])
    except (IndexError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
