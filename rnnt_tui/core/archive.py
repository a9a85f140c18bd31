"""Reads a `.nemo` archive without running anything from it.

A `.nemo` file is a tar (plain or gzip) holding `model_config.yaml`, the weights and tokenizer files. This module
opens it read-only, checks every member (no absolute paths, no `..`, no links or devices: NeMo's loader would
extract them), checks that the archive ends where a complete tar ends (a half-downloaded file does not), and
returns the config text. It never extracts to disk and never unpickles.
"""

from __future__ import annotations

import lzma
import os
import stat
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rnnt_tui.core.errors import BadInputError

CONFIG_NAME = "model_config.yaml"
MAX_CONFIG_BYTES = 16 * 1024 * 1024
_READ_ERRORS = (tarfile.TarError, EOFError, OSError, ValueError, zlib.error, lzma.LZMAError)


@dataclass(frozen=True)
class ArchiveContents:
    """What the archive holds: member names and sizes, and the config text."""

    members: dict[str, int]
    config_text: str


def check_file(path: Path, what: str) -> None:
    """Refuse a path that is missing, a directory, not a regular file, unreadable or empty, naming it."""
    a_what = f"{'an' if what[:1].lower() in 'aeiou' else 'a'} {what}"
    try:
        if not path.exists():
            raise BadInputError(path, f"no such file ({what} expected)")
        if path.is_dir():
            raise BadInputError(path, f"is a directory, not {a_what}")
        info = path.stat()
    except OSError as exc:  # a parent we may not enter, a name too long, a symlink loop
        raise BadInputError(path, f"cannot be opened: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise BadInputError(path, f"is not a regular file (a device, pipe or socket), not {a_what}")
    if info.st_size == 0:
        raise BadInputError(path, f"is empty (0 bytes), not {a_what}")
    if not os.access(path, os.R_OK):
        raise BadInputError(path, "cannot be read: permission denied")


def _unsafe_reason(member: tarfile.TarInfo) -> str | None:
    name = PurePosixPath(member.name)
    if name.is_absolute() or member.name.startswith("/"):
        return f"member {member.name!r} has an absolute path"
    if ".." in name.parts:
        return f"member {member.name!r} escapes the archive with '..'"
    if member.issym() or member.islnk():
        return f"member {member.name!r} is a link"
    if not (member.isfile() or member.isdir()):
        return f"member {member.name!r} is a device or special file"
    return None


def _ends_cleanly(tar: tarfile.TarFile) -> bool:
    """True when the block after the last member is tar's all-zero end-of-archive block. tarfile stops quietly
    at a cut that falls between or inside member headers; a complete archive always has this block."""
    fileobj = tar.fileobj
    if fileobj is None:
        return False
    fileobj.seek(tar.offset)
    block = fileobj.read(tarfile.BLOCKSIZE)
    return len(block) == tarfile.BLOCKSIZE and block.count(0) == tarfile.BLOCKSIZE


def read_archive(path: Path) -> ArchiveContents:
    """Open `path` as a .nemo archive and return its members and config text; raise BadInputError otherwise."""
    check_file(path, ".nemo checkpoint")
    try:
        opened = tarfile.open(path, "r:*")  # noqa: SIM115 - closed by the `with` just below
    except _READ_ERRORS as exc:
        with path.open("rb") as head:
            gzipped = head.read(2) == b"\x1f\x8b"
        what = "a gzip file that does not hold a complete tar (truncated or corrupt)" if gzipped else \
            "not a tar file (random bytes, another format, or cut off at the start)"
        raise BadInputError(path, f"not a readable .nemo archive: {what}; a .nemo checkpoint is a tar holding "
                                  f"{CONFIG_NAME} and the weights") from exc
    try:
        with opened as tar:
            members: dict[str, int] = {}
            config: tarfile.TarInfo | None = None
            for member in tar:
                reason = _unsafe_reason(member)
                if reason:
                    raise BadInputError(path, f"unsafe archive, refused: {reason}")
                name = member.name[2:] if member.name.startswith("./") else member.name
                if member.isfile():
                    members[name] = member.size
                    if PurePosixPath(name).name == CONFIG_NAME and (config is None or "/" not in name):
                        config = member
            if not _ends_cleanly(tar):
                raise BadInputError(path, "truncated .nemo archive: it stops before the end of the tar "
                                          f"(a partial download or copy?); read {len(members)} complete member(s)")
            if config is None:
                raise BadInputError(path, f"not a NeMo checkpoint: the archive has no {CONFIG_NAME}")
            if config.size > MAX_CONFIG_BYTES:
                raise BadInputError(path, f"{CONFIG_NAME} is {config.size} bytes, too large to be a model config")
            handle = tar.extractfile(config)
            if handle is None:
                raise BadInputError(path, f"{CONFIG_NAME} cannot be read from the archive")
            raw = handle.read()
            if len(raw) != config.size:
                raise BadInputError(path, f"truncated .nemo archive: {CONFIG_NAME} is cut short")
            text = raw.decode("utf-8", errors="replace")
    except BadInputError:
        raise
    except _READ_ERRORS as exc:
        detail = str(exc) or type(exc).__name__
        raise BadInputError(path, f"not a readable .nemo archive (truncated or corrupt): {detail}") from exc
    return ArchiveContents(members=members, config_text=text)
