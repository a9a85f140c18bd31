"""What a corpus run reads: a NeMo manifest, a folder of audio files, or a text file of paths → utterances.

A NeMo manifest is JSON lines, each an object with `audio_filepath` (relative paths resolve against the manifest's
folder), `duration` and an optional `text`. A folder is every audio file under it (recursively, sorted by relative
path). A text file lists one path per line (blank lines and `#` comments skipped). A bad line never stops the
reading: it becomes a `ManifestError` with its line number, the manifest and the problem, and is counted in the
run's results like any other utterance. Only a manifest with no entries at all (or one that cannot be read) is
refused, with `BadInputError`.

Every entry has an `index` (its position among all entries, bad ones included), which is what `--limit` and
`--shard I/N` select on, so shards of the same manifest are disjoint and together hold every entry. An entry's
`uid` (line number and the path as written) identifies it across runs, resumes and shards.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rnnt_tui.core.archive import check_file
from rnnt_tui.core.errors import BadInputError
from rnnt_tui.core.names import AUDIO_SUFFIXES

NEMO, FOLDER, PATH_LIST = "nemo-manifest", "folder", "path-list"
_MANIFEST_SUFFIXES = (".json", ".jsonl", ".manifest")


@dataclass(frozen=True)
class Utterance:
    """One clip to evaluate. `line` is 1-based in the manifest (the position in a folder); `source` the path as
    written there."""

    index: int
    line: int
    audio_path: Path
    text: str | None
    duration: float | None
    source: str

    @property
    def uid(self) -> str:
        return entry_uid(self.line, self.source)


@dataclass(frozen=True)
class ManifestError:
    """A manifest line that names no usable clip: recorded as an error for that line, the run goes on."""

    index: int
    line: int
    file: Path
    source: str | None
    problem: str

    @property
    def uid(self) -> str:
        return entry_uid(self.line, self.source or "")

    def message(self) -> str:
        return f"{self.file}:{self.line}: {self.problem}"


Entry = Utterance | ManifestError


def entry_uid(line: int, source: str) -> str:
    return f"{line}:{source}"


@dataclass(frozen=True)
class Shard:
    """`--shard I/N`: the entries whose index is I-1 modulo N (1 <= I <= N)."""

    number: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            number, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise ValueError(f"--shard takes I/N (for example 2/4), not {text!r}") from None
        if not 1 <= number <= count:
            raise ValueError(f"--shard {text}: I must be between 1 and N")
        return cls(number, count)

    def holds(self, index: int) -> bool:
        return index % self.count == self.number - 1

    def __str__(self) -> str:
        return f"{self.number}/{self.count}"


@dataclass(frozen=True)
class Manifest:
    """Every entry of a manifest, in order, and a digest of what it lists (a resume must read the same list)."""

    path: Path
    kind: str
    entries: tuple[Entry, ...]
    digest: str

    @property
    def utterances(self) -> list[Utterance]:
        return [e for e in self.entries if isinstance(e, Utterance)]

    @property
    def errors(self) -> list[ManifestError]:
        return [e for e in self.entries if isinstance(e, ManifestError)]

    def select(self, limit: int | None = None, shard: Shard | None = None) -> list[Entry]:
        """The first `limit` entries, then this shard's share of them (so shards of a limited run add up to it)."""
        chosen = self.entries if limit is None else self.entries[:limit]
        return [e for e in chosen if shard is None or shard.holds(e.index)]


def looks_like_manifest(path: Path | str) -> bool:
    """Whether a path a user picked is a corpus (a folder, a .json/.jsonl/.manifest file, a .txt/.lst list, or a
    text file starting with a JSON object) rather than one clip. Reads at most the first 4 KiB; never raises."""
    path = Path(path).expanduser()
    try:
        if path.is_dir():
            return True
        suffix = path.suffix.lower()
        if suffix in AUDIO_SUFFIXES or not path.is_file():
            return False
        if suffix in (*_MANIFEST_SUFFIXES, ".txt", ".lst"):
            return True
        with path.open("rb") as handle:
            return handle.read(4096).lstrip().startswith(b"{")
    except OSError:
        return False


def read_manifest(path: Path | str) -> Manifest:
    """Read a NeMo manifest, a folder of audio files or a text file of paths. Raises BadInputError only when
    nothing can be read from it."""
    path = Path(path).expanduser()
    if path.is_dir():
        return _read_folder(path)
    check_file(path, "manifest")
    if path.suffix.lower() in AUDIO_SUFFIXES:
        raise BadInputError(path, "is an audio file, not a manifest: give a NeMo manifest (JSON lines), a folder of "
                                  "audio files or a text file of paths (or compare one clip with `rnnt-tui compare`)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise BadInputError(path, "is not UTF-8 text, so not a manifest (JSON lines) or a list of paths") from None
    except OSError as exc:
        raise BadInputError(path, f"cannot be read: {exc.strerror or exc}") from exc
    first = next((ln.strip() for ln in lines if ln.strip()), "")
    if first.startswith("["):  # one JSON document, not JSON lines: every line would be "malformed", none useful
        raise BadInputError(path, "is a JSON array, not a NeMo manifest: a manifest has one JSON object per line "
                                  '({"audio_filepath": ..., "text": ...})')
    if path.suffix.lower() in _MANIFEST_SUFFIXES or first.startswith("{"):
        entries, kind = list(_nemo_entries(path, lines)), NEMO
    else:
        entries, kind = list(_list_entries(path, lines)), PATH_LIST
    if not entries:
        raise BadInputError(path, "holds no utterances (every line is blank)")
    return Manifest(path, kind, tuple(entries), _digest(lines))


def _digest(lines: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8", "surrogateescape") + b"\n")
    return digest.hexdigest()


def _resolve(base: Path, written: str) -> Path:
    candidate = Path(written).expanduser()
    return candidate if candidate.is_absolute() else base / candidate


def _missing(audio: Path) -> str | None:
    try:
        if audio.is_file():
            return None
        return f"audio file {audio} is a directory" if audio.is_dir() else f"audio file {audio} not found"
    except OSError as exc:
        return f"audio file {audio} cannot be opened: {exc.strerror or exc}"


def _nemo_entries(path: Path, lines: list[str]) -> Iterable[Entry]:
    index = 0
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        entry = _nemo_line(path, number, raw, index)
        index += 1
        yield entry


def _nemo_line(path: Path, number: int, raw: str, index: int) -> Entry:
    def bad(problem: str, source: str | None = None) -> ManifestError:
        return ManifestError(index, number, path, source, problem)

    try:
        item = json.loads(raw)
    except json.JSONDecodeError as exc:
        return bad(f"malformed JSON ({exc.msg} at column {exc.colno})")
    if not isinstance(item, dict):
        return bad(f"a JSON {type(item).__name__}, not an object with audio_filepath")
    written = item.get("audio_filepath")
    if written is None:
        return bad("no audio_filepath key")
    if not isinstance(written, str) or not written.strip():
        return bad("audio_filepath is not a non-empty string")
    text = item.get("text")
    if text is not None and not isinstance(text, str):
        return bad("text is not a string", written)
    duration = item.get("duration")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, (int, float))):
        return bad("duration is not a number", written)
    audio = _resolve(path.parent, written)
    problem = _missing(audio)
    if problem is not None:
        return bad(problem, written)
    return Utterance(index, number, audio, text, float(duration) if duration is not None else None, written)


def _list_entries(path: Path, lines: list[str]) -> Iterable[Entry]:
    index = 0
    for number, raw in enumerate(lines, start=1):
        written = raw.strip()
        if not written or written.startswith("#"):
            continue
        audio = _resolve(path.parent, written)
        problem = _missing(audio)
        yield (Utterance(index, number, audio, None, None, written) if problem is None
               else ManifestError(index, number, path, written, problem))
        index += 1


def _read_folder(folder: Path) -> Manifest:
    try:
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    except OSError as exc:
        raise BadInputError(folder, f"cannot be listed: {exc.strerror or exc}") from exc
    if not files:
        raise BadInputError(folder, f"holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
    written = [p.relative_to(folder).as_posix() for p in files]
    entries = tuple(Utterance(i, i + 1, p, None, None, w) for i, (p, w) in enumerate(zip(files, written, strict=True)))
    return Manifest(folder, FOLDER, entries, _digest(written))
