"""Reads a `.nemo` archive without running anything from it.

A `.nemo` file is a tar (plain or gzip) holding `model_config.yaml`, the weights and tokenizer files. This module
opens it read-only, checks every member (no absolute paths, no `..`, no links or devices: NeMo's loader would
extract them) and returns the config text. It never extracts to disk and never unpickles.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rnnt_tui.core.errors import BadInputError

CONFIG_NAME = "model_config.yaml"
MAX_CONFIG_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ArchiveContents:
    """What the archive holds: member names and sizes, and the config text."""

    members: dict[str, int]
    config_text: str


def check_file(path: Path, what: str) -> None:
    """Refuse a path that is missing, a directory, or empty, with a message naming it."""
    if not path.exists():
        raise BadInputError(path, f"no such file ({what} expected)")
    if path.is_dir():
        raise BadInputError(path, f"is a directory, not a {what}")
    if path.stat().st_size == 0:
        raise BadInputError(path, f"is empty (0 bytes), not a {what}")


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


def read_archive(path: Path) -> ArchiveContents:
    """Open `path` as a .nemo archive and return its members and config text; raise BadInputError otherwise."""
    check_file(path, ".nemo checkpoint")
    try:
        with tarfile.open(path, "r:*") as tar:
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
            if config is None:
                raise BadInputError(path, f"not a NeMo checkpoint: the archive has no {CONFIG_NAME}")
            if config.size > MAX_CONFIG_BYTES:
                raise BadInputError(path, f"{CONFIG_NAME} is {config.size} bytes, too large to be a model config")
            handle = tar.extractfile(config)
            if handle is None:
                raise BadInputError(path, f"{CONFIG_NAME} cannot be read from the archive")
            text = handle.read().decode("utf-8", errors="replace")
    except BadInputError:
        raise
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise BadInputError(path, f"not a readable .nemo archive (truncated or corrupt): {exc}") from exc
    return ArchiveContents(members=members, config_text=text)
