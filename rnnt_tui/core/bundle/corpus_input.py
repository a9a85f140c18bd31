"""What `record CKPT CLIP|MANIFEST` records: one audio file, or every clip a manifest names.

A MANIFEST is a NeMo manifest (JSON lines with `audio_filepath` and optional `text`; relative paths resolve against
the manifest's folder), a folder of audio files, or a text file of paths, one a line. This small reader stands in
until the corpus package's manifest reader is shared (then `read_clips` should call it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rnnt_tui.core.audio import AUDIO_SUFFIXES
from rnnt_tui.core.errors import BadInputError


@dataclass(frozen=True)
class ClipInput:
    """A clip to record, and its transcript when the manifest gives one."""

    path: Path
    text: str | None = None


def read_clips(path: Path) -> list[ClipInput]:
    """The clips `path` names (an audio file is one clip)."""
    path = Path(path).expanduser()
    if path.is_dir():
        clips = [ClipInput(p) for p in sorted(path.iterdir()) if p.suffix.lower() in AUDIO_SUFFIXES]
        if not clips:
            raise BadInputError(path, "holds no audio files")
        return clips
    if not path.is_file():
        raise BadInputError(path, "no such clip or manifest")
    if path.suffix.lower() in AUDIO_SUFFIXES:
        return [ClipInput(path)]
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(path, f"is neither audio nor a readable manifest ({exc})") from exc
    clips = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith("{"):
            try:
                entry = json.loads(text)
                audio = Path(str(entry["audio_filepath"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise BadInputError(path, f"line {number} is not a manifest entry with audio_filepath ({exc})") \
                    from exc
            transcript = entry.get("text")
            clips.append(ClipInput(audio if audio.is_absolute() else path.parent / audio,
                                   str(transcript) if transcript is not None else None))
        else:
            audio = Path(text)
            clips.append(ClipInput(audio if audio.is_absolute() else path.parent / audio))
    if not clips:
        raise BadInputError(path, "names no clips")
    return clips
