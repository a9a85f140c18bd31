"""Fuzzing the two readers of untrusted bytes: the archive reader (and the summary on top of it) and the audio loader.

Hypothesis, a bounded number of examples, no example database (nothing is written to the working tree). The
property is the same everywhere: the reader returns a result or raises BadInputError naming the file; any other
exception is a crash. Valid clips of any width, rate and channel count must load to the right length.
"""

from __future__ import annotations

import copy
import io
import struct
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import badfiles
import factory
import numpy as np
import pytest
import soundfile as sf
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from rnnt_tui.core.archive import read_archive
from rnnt_tui.core.audio import load_audio
from rnnt_tui.core.errors import BadInputError
from rnnt_tui.core.summary import ModelSummary, read_summary

# Hypothesis keeps caches (constants, unicode tables) in ./.hypothesis: keep them out of the working tree.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "rnnt-tui-hypothesis")
FUZZ = settings(max_examples=150, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


def refused_or_read(fn: Any, path: Path) -> Any:
    """Call fn(path); a BadInputError must name the path. Returns the result, or None when refused."""
    try:
        return fn(path)
    except BadInputError as exc:
        assert exc.path == path and str(path) in str(exc) and exc.problem, exc
        return None


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def small_archive(scratch: Path) -> bytes:
    return badfiles.config_only(scratch / "base.nemo", factory.char_rnnt_config()).read_bytes()


# -- archives ---------------------------------------------------------------------------------------------------
@FUZZ
@given(st.binary(max_size=4096), st.sampled_from([b"", b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"./model_config"]))
def test_archive_reader_on_random_bytes(scratch: Path, data: bytes, prefix: bytes) -> None:
    path = scratch / "random.nemo"
    path.write_bytes(prefix + data)
    refused_or_read(read_archive, path)


@FUZZ
@given(st.data())
def test_archive_reader_on_damaged_archives(scratch: Path, small_archive: bytes, data: st.DataObject) -> None:
    damaged = bytearray(small_archive)
    for _ in range(data.draw(st.integers(0, 8), label="flips")):
        at = data.draw(st.integers(0, len(damaged) - 1), label="at")
        damaged[at] = data.draw(st.integers(0, 255), label="byte")
    cut = data.draw(st.integers(0, len(damaged)), label="cut")
    path = scratch / "damaged.nemo"
    path.write_bytes(bytes(damaged[:cut]))
    contents = refused_or_read(read_archive, path)
    if contents is not None:
        assert isinstance(contents.config_text, str)


_NAMES = st.one_of(st.sampled_from(["./model_config.yaml", "model_config.yaml", "./model_weights.ckpt", ".", "./",
                                    "../x", "/abs", "a/../../b", "./a/./b", "tokenizer/vocab.txt", "./..", "..",
                                    "a\\..\\b", "./\u00e9\u00e8/model_config.yaml"]),
                   st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1,
                           max_size=30))
_TYPES = st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE,
                          tarfile.BLKTYPE, tarfile.FIFOTYPE])


@FUZZ
@given(st.lists(st.tuples(_NAMES, _TYPES, st.binary(max_size=64)), max_size=6), st.booleans())
def test_archive_reader_on_any_members(scratch: Path, members: list[tuple[str, bytes, bytes]], gz: bool) -> None:
    built = []
    for name, kind, payload in members:
        info = tarfile.TarInfo(name)
        info.type = kind
        if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
            info.linkname = "/etc/passwd"
        built.append((info, payload if kind == tarfile.REGTYPE else None))
    path = scratch / "members.nemo"
    try:
        badfiles.write_tar(path, built, gz=gz)
    except (ValueError, UnicodeError, tarfile.TarError):
        return  # tarfile cannot write this name; nothing to read
    contents = refused_or_read(read_archive, path)
    if contents is not None:  # accepted: then every member was a plain file or folder inside the archive
        assert all(kind in (tarfile.REGTYPE, tarfile.DIRTYPE) for _, kind, _ in members)
        assert not any(name.startswith("/") or ".." in Path(name).parts for name, _, _ in members)


# -- configs ----------------------------------------------------------------------------------------------------
_KEYS = st.sampled_from(["target", "decoder", "joint", "encoder", "preprocessor", "labels", "tokenizer", "loss",
                         "decoding", "model_defaults", "_target_", "jointnet", "prednet", "vocab_size", "num_classes",
                         "window_stride", "subsampling_factor", "features", "sample_rate", "aux_ctc", "fuse_loss_wer",
                         "log_softmax", "durations", "tdt_kwargs", "loss_name", "model_type", "type",
                         "num_extra_outputs", "tdt_durations", "fused_batch_size", "vocabulary"])
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
    | st.sampled_from(["${model_defaults.enc_hidden}", "${a.b.c}", "${joint}", "RNNTDecoder", "tdt"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS | st.text(max_size=6), inner, max_size=5),
    max_leaves=25)


def _read_config(scratch: Path, config: Any) -> ModelSummary | None:
    path = scratch / "config.nemo"
    badfiles.config_only(path, yaml.safe_dump(config))
    result = refused_or_read(read_summary, path)
    assert result is None or isinstance(result, ModelSummary)
    return result


@FUZZ
@given(_VALUES)
def test_summary_on_any_config(scratch: Path, config: Any) -> None:
    _read_config(scratch, config)


@FUZZ
@given(st.data())
def test_summary_on_a_real_config_with_fields_replaced(scratch: Path, data: st.DataObject) -> None:
    config = copy.deepcopy(factory.char_rnnt_config())
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        node: Any = config
        while isinstance(node, dict) and node:
            key = data.draw(st.sampled_from(sorted(node, key=str)), label="key")
            if not isinstance(node[key], dict) or data.draw(st.booleans(), label="stop"):
                node[key] = data.draw(_VALUES, label="value")
                break
            node = node[key]
    _read_config(scratch, config)


_LAUGHS = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" if i else "l0: &l0 [x, x, x, x, x, x, x, x, x]\n"
                  for i in range(9))  # "billion laughs": 9^9 strings once expanded


_HOSTILE = {"self-reference": ("loop: &loop [1, *loop]\n", "labels_again: *loop\n"),
            "billion-laughs": (_LAUGHS, "bomb: *l8\n"),
            "deep-nesting": ("", "deep: " + "[" * 20000 + "]" * 20000 + "\n")}


@pytest.mark.parametrize("name", sorted(_HOSTILE))
def test_summary_on_alias_bombs_and_deep_nesting(scratch: Path, name: str) -> None:
    """A real config with a hostile extra key: read (or refused) at once, never expanded, never a crash."""
    import time

    before, after = _HOSTILE[name]
    text = before + yaml.safe_dump(factory.char_rnnt_config()) + after
    path = badfiles.config_only(scratch / f"{name}.nemo", text)
    started = time.perf_counter()
    refused_or_read(read_summary, path)
    assert time.perf_counter() - started < 5.0


# -- audio ------------------------------------------------------------------------------------------------------
@FUZZ
@given(st.binary(max_size=3000), st.sampled_from([".wav", ".flac", ".ogg", ".aiff", ".au", ".caf"]),
       st.sampled_from([b"", b"RIFF\x24\x00\x00\x00WAVEfmt ", b"fLaC", b"OggS", b"FORM", b".snd"]))
def test_audio_loader_on_random_bytes(scratch: Path, data: bytes, suffix: str, magic: bytes) -> None:
    path = scratch / f"random{suffix}"
    path.write_bytes(magic + data)
    refused_or_read(lambda p: load_audio(p, 16000), path)


@FUZZ
@given(st.integers(0, 2**32 - 1), st.integers(0, 65535), st.sampled_from([0, 1, 4, 8, 12, 16, 24, 32, 48, 64, 255]),
       st.sampled_from([0, 1, 2, 3, 6, 7, 17, 85, 0xFFFE, 0xFFFF]), st.integers(0, 2**32 - 1),
       st.binary(max_size=4000))
def test_audio_loader_on_any_wav_header(scratch: Path, rate: int, channels: int, bits: int, fmt: int,
                                        declared: int, payload: bytes) -> None:
    try:
        header = badfiles.wav_header(rate, channels, bits, declared, fmt)
    except struct.error:
        return
    path = scratch / "header.wav"
    path.write_bytes(header + payload)
    audio = refused_or_read(lambda p: load_audio(p, 16000), path)
    if audio is not None:
        assert audio.samples.dtype == np.float32 and np.all(np.isfinite(audio.samples)) and audio.samples.size


@FUZZ
@given(st.data())
def test_audio_loader_on_damaged_files(scratch: Path, data: st.DataObject) -> None:
    good = _good_wav(scratch)
    damaged = bytearray(good)
    for _ in range(data.draw(st.integers(1, 10), label="flips")):
        in_header = data.draw(st.booleans(), label="in header")
        at = data.draw(st.integers(0, 60 if in_header else len(damaged) - 1), label="at")
        damaged[at] = data.draw(st.integers(0, 255), label="byte")
    cut = data.draw(st.integers(0, len(damaged)), label="cut")
    path = scratch / "damaged.wav"
    path.write_bytes(bytes(damaged[:cut]))
    refused_or_read(lambda p: load_audio(p, 16000), path)


def _good_wav(scratch: Path) -> bytes:
    path = scratch / "good.wav"
    if not path.exists():
        badfiles.write_audio(path, seconds=0.1)
    return path.read_bytes()


_SUBTYPES = {"WAV": ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW", "ALAW"],
             "AIFF": ["PCM_S8", "PCM_16", "PCM_24", "FLOAT"], "FLAC": ["PCM_S8", "PCM_16", "PCM_24"]}
_FORMATS = st.sampled_from(sorted((fmt, sub) for fmt, subs in _SUBTYPES.items() for sub in subs))


@FUZZ
@given(_FORMATS, st.sampled_from([8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000]),
       st.integers(1, 8), st.integers(1, 3000), st.sampled_from([8000, 16000, 22050]))
def test_audio_loader_reads_any_valid_clip(scratch: Path, fmt: tuple[str, str], rate: int, channels: int,
                                           pairs: int, target: int) -> None:
    """Even frame counts: libsndfile reads an odd-length 8-bit mono AIFF with its pad byte as one more frame."""
    container, subtype = fmt
    frames = 2 * pairs
    path = scratch / f"valid.{container.lower()}"
    signal = np.random.default_rng(frames).uniform(-0.9, 0.9, (frames, channels)).astype(np.float32)
    with io.BytesIO() as buffer:
        sf.write(buffer, signal, rate, subtype=subtype, format=container)
        path.write_bytes(buffer.getvalue())
    expected = frames * target / rate
    if expected < 1:  # soxr rounds a fraction of a sample either way
        audio = refused_or_read(lambda p: load_audio(p, target), path)
        assert audio is None or len(audio.samples) == 1
        return
    audio = load_audio(path, target)
    assert abs(len(audio.samples) - expected) <= 1.0, (len(audio.samples), expected)
    assert (audio.channels, audio.original_rate, audio.subtype) == (channels, rate, subtype)
    assert audio.samples.dtype == np.float32 and np.all(np.isfinite(audio.samples))
    if rate == target:
        tolerance = {"PCM_U8": 2.0 ** -6, "PCM_S8": 2.0 ** -6, "ULAW": 2.0 ** -4, "ALAW": 2.0 ** -4}.get(subtype, 1e-4)
        np.testing.assert_allclose(audio.samples, signal.mean(axis=1), atol=tolerance)
