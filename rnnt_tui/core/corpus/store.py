"""The results store: `results.jsonl` in the run's output folder, the one file every corpus report derives from.

Its first line is the run's header (`RunHeader`: the checkpoint's SHA-256, the candidate, its options, the step
settings, the manifest's digest, the shard, the normalisation and WER library); every later line is one finished
utterance (`UtteranceRecord`). Each record is written, flushed and fsync'd before the next utterance starts, so a
kill loses at most the utterance in flight. Reading back tolerates a torn last line (a kill mid-write): it is
ignored, and a resume cuts it off before appending. `--resume` skips every utterance already recorded (by `uid`)
and refuses, with a message naming what differs, to continue a run made with other settings. Shards' files merge
into one list of records when their headers agree on everything but the shard.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from rnnt_tui.core.corpus.records import UtteranceRecord
from rnnt_tui.core.errors import BadInputError

RESULTS_FILE = "results.jsonl"
SCHEMA = 1
#: header fields a resume or a merge may differ in
_FREE = ("shard", "created", "limit")


@dataclass(frozen=True)
class RunHeader:
    """What a run's numbers depend on (plus where it came from). Plain JSON data."""

    checkpoint: str
    checkpoint_sha256: str
    manifest: str
    manifest_digest: str
    against: str
    candidate_label: str
    options: dict[str, Any]
    settings: dict[str, Any]
    normalisation: str
    wer_library: str
    runs_on: str | None = None  # what ran the candidate ("Apple Core AI runtime, Linux CPU"); None: its label says
    shard: str | None = None
    limit: int | None = None
    created: str = ""
    schema: int = SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)
    #: `corpus --stream`: the streaming settings (att context asked for, tolerance); part of the run's identity
    stream: dict[str, Any] | None = None
    #: `corpus --subset`: which utterances ran the candidate and what ran the rest (`core.corpus.subset`); part of
    #: the run's identity, so a resume with another subset is refused
    subset: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": "header", **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunHeader:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})

    def differences(self, other: RunHeader, ignore: tuple[str, ...] = _FREE) -> list[str]:
        """Field names (with both values) on which two runs differ, besides `ignore`."""
        mine, theirs = asdict(self), asdict(other)
        skip = {"checkpoint", "manifest", "extra", *ignore}  # paths may move; their contents are hashed
        if mine["runs_on"] is None or theirs["runs_on"] is None:
            skip.add("runs_on")  # a file from before runs_on was recorded: its runtime is the label's
        # otherwise runs_on is part of a run's identity: one results file holds one runtime's numbers (Core AI on
        # Linux and on macOS 27's framework are different runtimes), so a resume or merge across them is refused
        return [f"{key}: {theirs[key]!r} vs {mine[key]!r}" for key in mine
                if key not in skip and mine[key] != theirs[key]]


@dataclass
class Results:
    """A results file read back: its header, its records in file order, and whether its last line was torn."""

    path: Path
    header: RunHeader
    records: list[UtteranceRecord]
    torn_at: int | None = None  # byte offset where a torn last line starts

    @property
    def done(self) -> set[str]:
        return {r.uid for r in self.records}


def read_results(path: Path) -> Results:
    """Read a results file (a folder means its results.jsonl). Duplicated uids keep their first record."""
    path = path / RESULTS_FILE if path.is_dir() else path
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BadInputError(path, "no such results file (run `rnnt-tui corpus` with --out here first)") from None
    except OSError as exc:
        raise BadInputError(path, f"cannot be read: {exc.strerror or exc}") from exc
    header: RunHeader | None = None
    records: list[UtteranceRecord] = []
    seen: set[str] = set()
    offset, torn_at = 0, None
    for number, chunk in enumerate(raw.splitlines(keepends=True), start=1):
        start, offset = offset, offset + len(chunk)
        if not chunk.endswith(b"\n"):
            torn_at = start  # a kill mid-write: the last line is cut short (its utterance runs again)
            break
        try:
            item = json.loads(chunk)
        except (ValueError, UnicodeDecodeError):
            raise BadInputError(path, f"line {number} is not JSON: the results file is damaged") from None
        kind = item.get("kind") if isinstance(item, dict) else None
        if kind == "header" and header is None:
            header = RunHeader.from_json(item)
        elif kind == "utterance" and header is not None:
            record = UtteranceRecord.from_json(item)
            if record.uid not in seen:
                seen.add(record.uid)
                records.append(record)
        else:
            raise BadInputError(path, f"line {number} is not a rnnt-tui corpus record")
    if header is None:
        raise BadInputError(path, "has no header line: not a rnnt-tui corpus results file")
    if header.schema != SCHEMA:
        raise BadInputError(path, f"is results schema {header.schema}; this rnnt-tui reads schema {SCHEMA}")
    return Results(path, header, records, torn_at)


class ResultsStore:
    """Appends records to `out_dir/results.jsonl`, durably; knows which utterances are already done."""

    def __init__(self, path: Path, header: RunHeader, records: list[UtteranceRecord], handle: IO[bytes]) -> None:
        self.path = path
        self.header = header
        self.records = records
        self._done = {r.uid for r in records}
        self._handle = handle

    @classmethod
    def open(cls, out_dir: Path, header: RunHeader, resume: bool) -> ResultsStore:
        """A new results file (refused if one is there and `resume` is off), or the existing one resumed."""
        path = out_dir / RESULTS_FILE
        if path.exists() and not resume:
            raise BadInputError(out_dir, f"already holds {RESULTS_FILE} from an earlier run: add --resume to "
                                         "continue it, or choose another --out")
        if resume and path.exists() and not _has_header(path):
            path.unlink()  # killed while writing its header: nothing was recorded, start afresh
        if resume and path.exists():
            previous = read_results(path)
            diffs = header.differences(previous.header)
            if diffs:
                raise BadInputError(path, "was made with other settings, so it cannot be resumed with these "
                                          f"({'; '.join(diffs)}); choose another --out")
            if header.shard != previous.header.shard:
                raise BadInputError(path, f"holds shard {previous.header.shard or 'none'}, not "
                                          f"{header.shard or 'none'}; resume it with the same --shard")
            handle: IO[bytes] = path.open("r+b")
            if previous.torn_at is not None:
                handle.truncate(previous.torn_at)
            handle.seek(0, os.SEEK_END)
            return cls(path, previous.header, previous.records, handle)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            handle = path.open("xb")
        except OSError as exc:
            raise BadInputError(out_dir, f"cannot write the results there: {exc.strerror or exc}") from exc
        store = cls(path, header, [], handle)
        store._write(header.to_json())
        return store

    def done(self, uid: str) -> bool:
        return uid in self._done

    def append(self, record: UtteranceRecord) -> bool:
        """Write one finished utterance and sync it to disk; False (nothing written) if it was already there."""
        if record.uid in self._done:
            return False
        self._write(record.to_json())
        self._done.add(record.uid)
        self.records.append(record)
        return True

    def _write(self, item: dict[str, Any]) -> None:
        self._handle.write(json.dumps(item, ensure_ascii=False).encode() + b"\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _has_header(path: Path) -> bool:
    with path.open("rb") as handle:
        return b"\n" in handle.read(1 << 16)


def merge_results(paths: list[Path]) -> tuple[RunHeader, list[UtteranceRecord], list[Results]]:
    """Several runs' results (typically the shards of one manifest) as one list of records, sorted by manifest
    position; refused when the runs differ in anything but the shard."""
    if not paths:
        raise ValueError("no results to merge")
    runs = [read_results(p) for p in paths]
    first = runs[0]
    for run in runs[1:]:
        diffs = first.header.differences(run.header)
        if diffs:
            raise BadInputError(run.path, f"cannot merge with {first.path}: other settings ({'; '.join(diffs)})")
    merged: dict[str, UtteranceRecord] = {}
    for run in runs:
        for record in run.records:
            merged.setdefault(record.uid, record)
    records = sorted(merged.values(), key=lambda r: (r.index, r.uid))
    shards = sorted({r.header.shard for r in runs if r.header.shard})
    header = first.header if len(runs) == 1 else \
        RunHeader(**{**asdict(first.header), "shard": None, "extra": {**first.header.extra, "merged_shards": shards,
                                                                       "merged_from": [str(r.path) for r in runs]}})
    return header, records, runs
