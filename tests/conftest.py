"""Shared fixtures: small checkpoints of every kind built from configs, a clip, and a private cache dir."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import factory

TRANSDUCER_KINDS = factory.KINDS


@pytest.fixture(scope="session", autouse=True)
def _private_dirs(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep every test's cache and app state out of the user's home."""
    os.environ["RNNT_TUI_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["RNNT_TUI_STATE_DIR"] = str(tmp_path_factory.mktemp("state"))
    os.environ["RNNT_TUI_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """kind -> .nemo path for rnnt-char, rnnt-bpe, tdt, hybrid (saved with fuse_loss_wer True) and ctc."""
    root = tmp_path_factory.mktemp("checkpoints")
    return {kind: factory.build(kind, root / f"{kind}.nemo", root / "work")
            for kind in (*TRANSDUCER_KINDS, "ctc")}


@pytest.fixture(scope="session")
def loaded_model(checkpoints: dict[str, Path]) -> Callable[[str], object]:
    """kind -> LoadedModel, restored once per session, handed out in the joint mode the checkpoint was saved with."""
    from rnnt_tui.core.checkpoint import restore

    memo: dict[str, object] = {}

    def get(kind: str) -> object:
        from rnnt_tui.core.fuse import AS_SAVED, fuse_mode_of

        if kind not in memo:
            memo[kind] = restore(checkpoints[kind])
        fuse_mode_of(memo[kind].model).set(AS_SAVED)  # type: ignore[attr-defined] - each test starts as saved
        return memo[kind]

    return get


def write_wav(path: Path, seconds: float = 1.6, rate: int = 16000, channels: int = 1,
              subtype: str = "PCM_16", seed: int = 0) -> Path:
    """A speech-like test signal: a few harmonic 'syllables' with noise, written with soundfile."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    n = max(int(seconds * rate), 0)
    t = np.arange(n) / rate
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 3.0 * t))
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
    signal = 0.3 * envelope * voiced + 0.01 * rng.standard_normal(n)
    data = np.stack([signal * (1 - 0.2 * c) for c in range(channels)], axis=1).astype(np.float32)
    sf.write(str(path), data, rate, subtype=subtype)
    return path


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1.6 s 16 kHz mono speech-like clip."""
    return write_wav(tmp_path_factory.mktemp("audio") / "clip.wav")
