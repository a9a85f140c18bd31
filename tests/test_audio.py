"""Audio loading: formats, rates, channels, resampling quality, and clear refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from conftest import write_wav

from rnnt_tui.core.audio import load_audio
from rnnt_tui.core.errors import BadInputError
from rnnt_tui.core.pipeline.driver import run_steps


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


def test_tool_samples_are_nemos_audiosegment_bit_for_bit(tmp_path: Path) -> None:
    """What `Audio.loader` promises: NeMo's AudioSegment (librosa soxr_hq, channels averaged) gives these samples."""
    from nemo.collections.asr.parts.preprocessing.segment import AudioSegment

    for path in (write_wav(tmp_path / "a8k.flac", seconds=5.3, rate=8000),
                 write_wav(tmp_path / "b44.wav", seconds=4.7, rate=44100, channels=2)):
        ours = load_audio(path, 16000)
        nemo = AudioSegment.from_file(str(path), target_sr=16000, channel_selector="average").samples
        assert np.array_equal(ours.samples, nemo), path.name
        assert ours.to_json()["resampler"] == "soxr HQ" and "AudioSegment" in ours.to_json()["loader"]


@pytest.mark.parametrize("kind", ["rnnt-bpe", "rnnt-char"])
def test_nemo_column_is_what_nemo_transcribe_returns_on_resampled_and_stereo_files(kind: str, tmp_path: Path,
                                                                                   loaded_model: Any) -> None:
    """An 8 kHz FLAC and a 44.1 kHz stereo WAV: the reference's and NeMo's transcripts are `model.transcribe()`'s
    (the BPE class loads through lhotse, whose resampler is not soxr); the stereo file, which `transcribe()`
    refuses, is NeMo's AudioSegment average fed to `transcribe()` as samples, and the loader says so."""
    import torch
    from nemo.collections.asr.parts.preprocessing.segment import AudioSegment

    from rnnt_tui.core.pipeline.pipeline import open_session
    from rnnt_tui.core.pipeline.request import Request, Settings

    torch.set_num_threads(1)
    loaded = loaded_model(kind)
    flac = write_wav(tmp_path / "a8k.flac", seconds=2.3, rate=8000, seed=3)
    stereo = write_wav(tmp_path / "b44.wav", seconds=2.1, rate=44100, channels=2, seed=4)

    def ours(path: Path) -> tuple[Any, Any]:
        session = open_session(Request(loaded.path, path, None, settings=Settings(runs=1, warmup=0)), loaded=loaded)
        run_steps(session)
        return session.audio, session.decode_comparison

    def transcribe(audio: Any) -> str:
        text = loaded.model.transcribe([audio], batch_size=1, verbose=False)[0]
        loaded.eval()
        return str(getattr(text, "text", text))

    audio, decode = ours(flac)
    expected = transcribe(str(flac))
    assert decode.nemo_text == expected and decode.reference_text == expected, (decode.nemo_text, expected)
    assert audio.to_json()["resampler"] == ("lhotse's resampler" if kind == "rnnt-bpe" else
                                            "AudioSegment: librosa soxr_hq")
    assert "transcribe() data loader" in audio.to_json()["loader"]

    with pytest.raises(Exception):  # noqa: B017 - NeMo refuses stereo files in transcribe(), as documented
        transcribe(str(stereo))
    audio, decode = ours(stereo)
    averaged = AudioSegment.from_file(str(stereo), target_sr=16000, channel_selector="average").samples
    assert "cannot read this file" in audio.loader and "channel_selector='average'" in audio.loader
    assert decode.nemo_text == transcribe(averaged) and decode.reference_text == decode.nemo_text


def test_a_rebuild_on_the_same_resampled_clip_runs_nemos_loader_once(tmp_path: Path, loaded_model: Any,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """NeMo's transcribe data loader (which a resampled clip goes through) runs once per file version: a session
    rebuilt on the same clip (another candidate or setting) reuses its samples; a rewritten file is read again."""
    from rnnt_tui.core import nemo_audio
    from rnnt_tui.core.fuse import AS_SAVED
    from rnnt_tui.core.pipeline.reference import NemoReference

    calls: list[Path] = []
    real = nemo_audio._transcribe_loader_samples

    def counted(loaded: Any, audio: Any) -> Any:
        calls.append(audio.path)
        return real(loaded, audio)

    monkeypatch.setattr(nemo_audio, "_transcribe_loader_samples", counted)
    reference = NemoReference(loaded_model("rnnt-char"), AS_SAVED)
    path = write_wav(tmp_path / "a8k.wav", seconds=0.5, rate=8000, seed=5)
    first = reference.clip(path).audio
    assert "transcribe() data loader" in first.loader and len(calls) == 1
    assert reference.clip(path).audio is first and len(calls) == 1
    write_wav(path, seconds=0.6, rate=8000, seed=6)  # the file changed: read again
    changed = reference.clip(path).audio
    assert len(calls) == 2 and changed.samples.size > first.samples.size
    other = write_wav(tmp_path / "b8k.wav", seconds=0.5, rate=8000, seed=7)
    reference.clip(other)
    reference.clip(path)  # one entry: the other clip replaced it
    assert calls == [path, path, other, path]
