"""Audio loading: formats, rates, channels, resampling quality, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import write_wav

from rnnt_tui.core.audio import load_audio
from rnnt_tui.core.errors import BadInputError


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000, 96000])
def test_resamples_to_the_model_rate_and_keeps_duration(tmp_path: Path, rate: int) -> None:
    path = write_wav(tmp_path / f"r{rate}.wav", seconds=1.25, rate=rate)
    audio = load_audio(path, 16000)
    assert audio.sample_rate == 16000 and audio.original_rate == rate
    assert audio.resampled == (rate != 16000)
    assert abs(audio.duration_s - 1.25) < 2e-3
    assert audio.samples.dtype == np.float32


def test_resampler_is_band_limited(tmp_path: Path) -> None:
    rate = 48000
    t = np.arange(rate) / rate
    tone = 0.5 * np.sin(2 * np.pi * 1000 * t) + 0.3 * np.sin(2 * np.pi * 12000 * t)  # 12 kHz > new Nyquist
    sf.write(tmp_path / "tones.wav", tone.astype(np.float32), rate, subtype="FLOAT")
    audio = load_audio(tmp_path / "tones.wav", 16000)
    spectrum = np.abs(np.fft.rfft(audio.samples[2000:-2000]))
    freqs = np.fft.rfftfreq(len(audio.samples) - 4000, 1 / 16000)
    peak = freqs[np.argmax(spectrum)]
    assert abs(peak - 1000) < 5
    alias = spectrum[np.abs(freqs - 4000) < 50].max()  # 12 kHz would alias to 4 kHz with a naive resampler
    assert alias < spectrum.max() * 1e-2


@pytest.mark.parametrize("channels", [2, 6])
def test_downmixes_by_averaging(tmp_path: Path, channels: int) -> None:
    path = write_wav(tmp_path / "multi.wav", channels=channels, subtype="FLOAT")
    data, _ = sf.read(path, dtype="float32", always_2d=True)
    audio = load_audio(path, 16000)
    assert audio.channels == channels and audio.downmixed
    np.testing.assert_allclose(audio.samples, data.mean(axis=1), atol=1e-6)
    assert any("downmixed" in n for n in audio.notes())


@pytest.mark.parametrize(("suffix", "subtype"), [(".wav", "PCM_U8"), (".wav", "PCM_24"), (".wav", "FLOAT"),
                                                  (".flac", "PCM_16"), (".ogg", "VORBIS")])
def test_reads_formats_and_sample_widths(tmp_path: Path, suffix: str, subtype: str) -> None:
    reference = load_audio(write_wav(tmp_path / "ref.wav", subtype="FLOAT"), 16000)
    audio = load_audio(write_wav(tmp_path / f"clip{suffix}", subtype=subtype), 16000)
    assert audio.subtype == subtype
    assert len(audio.samples) == len(reference.samples)
    tolerance = 0.05 if subtype in ("PCM_U8", "VORBIS") else 1e-3
    assert np.max(np.abs(audio.samples - reference.samples)) < tolerance


def test_refusals_name_the_file_and_the_problem(tmp_path: Path) -> None:
    cases = {
        tmp_path / "missing.wav": "no such file",
        tmp_path: "is a directory",
    }
    (tmp_path / "empty.wav").write_bytes(b"")
    cases[tmp_path / "empty.wav"] = "is empty (0 bytes)"
    (tmp_path / "notes.wav").write_text("these are my meeting notes, not audio\n" * 20)
    cases[tmp_path / "notes.wav"] = "not readable audio"
    good = write_wav(tmp_path / "good.wav").read_bytes()
    (tmp_path / "corrupt.wav").write_bytes(good[:12] + b"\xff" * 40 + good[52:])
    cases[tmp_path / "corrupt.wav"] = "not readable audio"
    sf.write(tmp_path / "zero.wav", np.zeros((0, 1), dtype=np.float32), 16000)
    cases[tmp_path / "zero.wav"] = "zero audio samples"
    for path, problem in cases.items():
        with pytest.raises(BadInputError) as info:
            load_audio(path, 16000)
        assert str(path) in str(info.value) and problem in str(info.value), (path, str(info.value))
