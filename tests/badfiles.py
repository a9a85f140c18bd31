"""Builds the bad inputs of the robustness tests at test time (nothing junk is committed), and snapshots trees.

Checkpoints: missing, a directory, empty, random bytes, truncated (plain and gzip, at several cuts), no config,
not a transducer, a class NeMo does not know, weights that do not fit the config, unsafe members. Audio: missing,
empty, text, corrupt headers, zero samples, a few milliseconds, minutes, every sample width, rate and channel
count. Each case comes with the words its refusal must contain.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

CONFIG = "model_config.yaml"
WEIGHTS = "model_weights.ckpt"

#: the names of `checkpoint_cases` and `audio_cases`, known at collection time for parametrising
CHECKPOINT_CASES = ("missing", "directory", "empty", "random", "truncated-weights", "truncated-header",
                    "truncated-config", "truncated-gzip", "no-config", "ctc", "not-asr", "config-not-yaml",
                    "config-not-mapping", "config-python-tag", "dotdot", "nested-dotdot", "absolute", "symlink",
                    "hardlink", "device", "fifo", "unknown-class", "garbage-weights", "no-weights", "wrong-weights")
AUDIO_CASES = ("missing", "directory", "empty", "text", "corrupt-header", "header-only", "rate-zero", "rate-absurd",
               "zero-samples", "nan-samples", "3ms")


@dataclass(frozen=True)
class Case:
    """One bad input: the path to hand the tool, and what the message must say about it."""

    name: str
    path: Path
    problem: str
    #: "summary": refused from the config alone; "restore": only NeMo's loader finds out
    stage: str = "summary"


# -- archives ---------------------------------------------------------------------------------------------------
def members_of(archive: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """Every member of a tar with its bytes (None for non-files), in order."""
    out: list[tuple[tarfile.TarInfo, bytes | None]] = []
    with tarfile.open(archive, "r:*") as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member) if member.isfile() else None
            out.append((member, handle.read() if handle is not None else None))
    return out


def write_tar(path: Path, members: Iterable[tuple[tarfile.TarInfo, bytes | None]], gz: bool = False) -> Path:
    """Write members (TarInfo, bytes or None) as a plain or gzip tar."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    raw = buffer.getvalue()
    path.write_bytes(gzip.compress(raw, mtime=0) if gz else raw)
    return path


def file_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    return info, data


def special_member(name: str, kind: bytes, target: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def repack(good: Path, out: Path, config: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
           drop: tuple[str, ...] = (), extra: Iterable[tuple[tarfile.TarInfo, bytes | None]] = (),
           replace: dict[str, bytes] | None = None) -> Path:
    """A copy of the archive `good` with its config edited, members dropped, replaced or added."""
    members = []
    for info, data in members_of(good):
        base = info.name.removeprefix("./")
        if base in drop:
            continue
        if base == CONFIG and config is not None and data is not None:
            data = yaml.safe_dump(config(yaml.safe_load(data))).encode()
        if replace and base in replace:
            data = replace[base]
        members.append((info, data))
    return write_tar(out, [*members, *extra])


def config_only(path: Path, cfg: dict[str, Any] | str) -> Path:
    text = cfg if isinstance(cfg, str) else yaml.safe_dump(cfg)
    return write_tar(path, [file_member(f"./{CONFIG}", text.encode())])


def _with_target(target: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def edit(cfg: dict[str, Any]) -> dict[str, Any]:
        return {**cfg, "target": target}

    return edit


def checkpoint_cases(root: Path, good: Path, ctc: Path, other: Path | None = None) -> list[Case]:
    """Every bad checkpoint of the matrix, built under `root` from the good archive `good` (and `other`, a
    different model whose weights do not fit `good`'s config)."""
    root.mkdir(parents=True, exist_ok=True)
    data = good.read_bytes()
    rng = np.random.default_rng(7)
    cases = [
        Case("missing", root / "missing.nemo", "no such file"),
        Case("directory", _mkdir(root / "folder.nemo"), "is a directory"),
        Case("empty", _write(root / "empty.nemo", b""), "is empty (0 bytes)"),
        Case("random", _write(root / "random.nemo", rng.bytes(64 * 1024)), "not a tar file"),
        Case("truncated-weights", _write(root / "half.nemo", data[: len(data) // 2]), "truncated"),
        Case("truncated-header", _write(root / "cut-header.nemo", data[:6000]), "truncated"),
        Case("truncated-config", _write(root / "cut-config.nemo", data[:1536]), "truncated"),
        Case("truncated-gzip", _write(root / "half-gz.nemo", gzip.compress(data, mtime=0)[: len(data) // 4]),
             "truncated"),
        Case("no-config", repack(good, root / "no-config.nemo", drop=(CONFIG,)), f"has no {CONFIG}"),
        Case("ctc", ctc, "CTC model (EncDecCTCModel)"),
        Case("not-asr", config_only(root / "llm.nemo", {"target": "nemo.collections.llm.GPTModel",
                                                        "hidden_size": 8}), "not an ASR model"),
        Case("config-not-yaml", config_only(root / "bad-yaml.nemo", "joint: [unclosed\n  - {"),
             "not valid YAML"),
        Case("config-not-mapping", config_only(root / "list.nemo", "- 1\n- 2\n"), "does not hold a mapping"),
        Case("config-python-tag", config_only(root / "tag.nemo", "joint: !!python/object/apply:os.system "
                                                                 "['touch PWNED']\n"), "not valid YAML"),
        Case("dotdot", repack(good, root / "dotdot.nemo", extra=[file_member("../evil.txt", b"x")]),
             "escapes the archive"),
        Case("nested-dotdot", repack(good, root / "nested.nemo", extra=[file_member("./a/../../evil", b"x")]),
             "escapes the archive"),
        Case("absolute", repack(good, root / "absolute.nemo", extra=[file_member("/tmp/evil.txt", b"x")]),
             "absolute path"),
        Case("symlink", repack(good, root / "symlink.nemo",
                               extra=[special_member("./link", tarfile.SYMTYPE, "/etc/passwd")]), "is a link"),
        Case("hardlink", repack(good, root / "hardlink.nemo",
                                extra=[special_member("./hard", tarfile.LNKTYPE, "/etc/passwd")]), "is a link"),
        Case("device", repack(good, root / "device.nemo", extra=[special_member("./dev", tarfile.CHRTYPE)]),
             "device or special file"),
        Case("fifo", repack(good, root / "fifo.nemo", extra=[special_member("./fifo", tarfile.FIFOTYPE)]),
             "device or special file"),
        Case("unknown-class", repack(good, root / "unknown-class.nemo",
                                     config=_with_target("nemo.collections.asr.models.NoSuchRNNTModel")),
             "NoSuchRNNTModel", stage="restore"),
        Case("garbage-weights", repack(good, root / "garbage-weights.nemo", replace={WEIGHTS: rng.bytes(4096)}),
             "model_weights.ckpt is not a plain state dict", stage="restore"),
        Case("no-weights", repack(good, root / "no-weights.nemo", drop=(WEIGHTS,)), "NeMo could not restore it",
             stage="restore"),
    ]
    if other is not None:
        weights = dict((i.name.removeprefix("./"), d) for i, d in members_of(other))[WEIGHTS]
        assert weights is not None
        cases.append(Case("wrong-weights", repack(good, root / "wrong-weights.nemo", replace={WEIGHTS: weights}),
                          "NeMo could not restore it", stage="restore"))
    return cases


# -- audio ------------------------------------------------------------------------------------------------------
def tone(seconds: float, rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A speech-like harmonic signal with a little noise, [frames, channels] float32 in [-0.5, 0.5]."""
    rng = np.random.default_rng(seed)
    n = max(round(seconds * rate), 0)
    t = np.arange(n) / rate
    phase = 2 * np.pi * np.cumsum(140 + 40 * np.sin(2 * np.pi * 0.7 * t)) / rate
    mono = 0.3 * sum(np.sin(k * phase) / k for k in range(1, 5)) + 0.01 * rng.standard_normal(n)
    return np.stack([mono * (1 - 0.1 * c) for c in range(channels)], axis=1).astype(np.float32)


def write_audio(path: Path, seconds: float = 1.0, rate: int = 16000, channels: int = 1,
                subtype: str = "PCM_16") -> Path:
    import soundfile as sf

    sf.write(str(path), tone(seconds, rate, channels), rate, subtype=subtype)
    return path


def wav_header(rate: int, channels: int, bits: int, data_bytes: int, fmt: int = 1) -> bytes:
    """A canonical 44-byte RIFF/WAVE header with whatever (possibly absurd) fields are asked for."""
    block = channels * bits // 8
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, fmt, channels,
            rate, rate * block, block, bits) + b"data" + struct.pack("<I", data_bytes))


def audio_cases(root: Path) -> list[Case]:
    """Every bad clip of the matrix, built under `root`."""
    import soundfile as sf

    root.mkdir(parents=True, exist_ok=True)
    good = write_audio(root / "good.wav").read_bytes()
    zero = root / "zero.wav"
    sf.write(str(zero), np.zeros((0, 1), dtype=np.float32), 16000)
    nan = tone(0.5, 16000)
    nan[100] = np.nan
    sf.write(str(root / "nan.wav"), nan, 16000, subtype="FLOAT")
    pcm = (tone(0.5, 16000)[:, 0] * 32767).astype("<i2").tobytes()
    return [
        Case("missing", root / "missing.wav", "no such file"),
        Case("directory", _mkdir(root / "folder.wav"), "is a directory"),
        Case("empty", _write(root / "empty.wav", b""), "is empty (0 bytes)"),
        Case("text", _write(root / "notes.wav", b"these are my meeting notes, not audio\n" * 40),
             "not readable audio"),
        Case("corrupt-header", _write(root / "corrupt.wav", good[:12] + b"\xff" * 40 + good[52:]),
             "not readable audio"),
        Case("header-only", _write(root / "header-only.wav", good[:44]), "zero audio samples"),
        Case("rate-zero", _write(root / "rate0.wav", wav_header(0, 1, 16, len(pcm)) + pcm), "not readable audio"),
        Case("rate-absurd", _write(root / "rate-absurd.wav", wav_header(5, 1, 16, len(pcm)) + pcm),
             "not a plausible audio rate"),
        Case("zero-samples", zero, "zero audio samples"),
        Case("nan-samples", root / "nan.wav", "NaN or infinite samples"),
        Case("3ms", write_audio(root / "click.wav", seconds=0.003), "clip is 3 ms long; shorter than one encoder "
                                                                     "frame (40 ms)"),
    ]


# -- trees ------------------------------------------------------------------------------------------------------
Snapshot = dict[str, tuple[int, int, int]]


def snapshot(*roots: Path) -> Snapshot:
    """Every file and directory under `roots`: (kind, size, mtime_ns). Kind 1 file, 2 dir, 3 other."""
    out: Snapshot = {}
    for root in roots:
        if not root.exists():
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            for name in (*dirnames, *filenames):
                p = Path(dirpath) / name
                st = p.lstat()
                kind = 2 if p.is_dir() and not p.is_symlink() else 1 if p.is_file() else 3
                out[str(p)] = (kind, st.st_size if kind != 2 else 0, st.st_mtime_ns if kind != 2 else 0)
    return out


def changes(before: Snapshot, after: Snapshot) -> dict[str, list[str]]:
    """Files added, removed or modified between two snapshots (empty lists when nothing changed)."""
    return {"added": sorted(set(after) - set(before)), "removed": sorted(set(before) - set(after)),
            "modified": sorted(k for k in set(before) & set(after) if before[k] != after[k])}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
