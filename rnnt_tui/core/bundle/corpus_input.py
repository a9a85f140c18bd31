"""What `record CKPT CLIP|MANIFEST` records: one audio file, or every usable entry of a corpus manifest.

A MANIFEST is whatever the corpus runs read (`core.corpus.manifest`: a NeMo manifest, a folder of audio files, a
text file of paths). Each clip keeps its manifest entry (index, line, path as written, text, duration) so a replay
scores it exactly as a corpus run would; entries naming no usable clip are returned apart, to be said, not recorded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rnnt_tui.core.corpus.manifest import ManifestError, Utterance, read_manifest
from rnnt_tui.core.errors import BadInputError
from rnnt_tui.core.names import AUDIO_SUFFIXES


@dataclass(frozen=True)
class ClipInput:
    """A clip to record, with its manifest entry (a lone clip is entry 0, line 1)."""

    path: Path
    text: str | None = None
    index: int = 0
    line: int = 1
    source: str = ""
    duration: float | None = None

    def entry(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


def utterance_of(entry: dict[str, Any], audio_path: Path) -> Utterance:
    """The corpus `Utterance` a recorded clip came from (for scoring a replay like a corpus run)."""
    return Utterance(index=int(entry.get("index", 0)), line=int(entry.get("line", 1)), audio_path=audio_path,
                     text=entry.get("text"), duration=entry.get("duration"),
                     source=str(entry.get("source") or audio_path.name))


def read_clips(path: Path) -> tuple[list[ClipInput], list[ManifestError]]:
    """The clips `path` names, and the manifest's entries that name no usable clip."""
    path = Path(path).expanduser()
    if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES:
        return [ClipInput(path, source=path.name)], []
    if not path.exists():
        raise BadInputError(path, "no such clip or manifest")
    manifest = read_manifest(path)
    clips = [ClipInput(u.audio_path, u.text, u.index, u.line, u.source, u.duration) for u in manifest.utterances]
    if not clips:
        first = manifest.errors[0].message() if manifest.errors else "no entries"
        raise BadInputError(path, f"names no usable clip ({first})")
    return clips, manifest.errors
