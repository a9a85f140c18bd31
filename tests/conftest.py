"""Shared fixtures: small checkpoints of every kind built from configs, a clip, and a private cache dir."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="session")
def streaming(tmp_path_factory: pytest.TempPathFactory) -> object:
    """A small cache-aware (chunked_limited, two lookaheads) char RNNT with random weights, restored once."""
    from rnnt_tui.core.checkpoint import restore

    return restore(factory.build_streaming(tmp_path_factory.mktemp("streaming") / "streaming.nemo"))


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


@pytest.fixture(scope="session")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 0.6 s clip for tests that decode untrained factory models through an interpreter: such a model emits up
    to 10 tokens a frame, and every token is a decoder and a joint step on both sides (a third of `clip`'s)."""
    return write_wav(tmp_path_factory.mktemp("short-audio") / "short.wav", seconds=0.6)


# -- the macOS tests: real Core ML on a Mac, the test stand-in for Core ML's native layer elsewhere -----------------
ON_MAC = sys.platform == "darwin"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every `@pytest.mark.macos` test runs against Core ML on a Mac and, elsewhere, against the test stand-in
    (`tests/coreml_standin`), with the id suffix `[simulated]` and the `simulated` marker."""
    if metafunc.definition.get_closest_marker("macos") is None or ON_MAC:
        return
    if "core_ml_bridge" not in metafunc.fixturenames:
        metafunc.fixturenames.append("core_ml_bridge")
    metafunc.parametrize("core_ml_bridge", [pytest.param("simulated", marks=pytest.mark.simulated)],
                         indirect=True, ids=["simulated"])


@pytest.fixture(autouse=True)
def _macos_tests_get_a_bridge(request: pytest.FixtureRequest) -> None:
    """A `macos` test gets `core_ml_bridge` whether it names it or not (parametrizing alone does not set it up)."""
    if request.node.get_closest_marker("macos") is not None:
        request.getfixturevalue("core_ml_bridge")


@pytest.fixture
def core_ml_bridge(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """On a Mac: Core ML itself (None). Elsewhere: the stand-in installed for this test (its `Machine`)."""
    if getattr(request, "param", None) != "simulated":
        if not ON_MAC:
            pytest.skip("Core ML predictions need macOS (this test is not simulated)")
        yield None
        return
    import coreml_standin

    machine = coreml_standin.install(monkeypatch, tmp_path_factory.mktemp("standin-bin"))
    yield machine
    monkeypatch.undo()
    coreml_standin.uninstall()


@pytest.fixture
def core_ml_label(core_ml_bridge: object) -> str:
    """The label rnnt-tui gives Core ML runs here: "Core ML" on a Mac, the stand-in's visibly simulated label
    elsewhere."""
    import coreml_standin

    return "Core ML" if core_ml_bridge is None else coreml_standin.LABEL


# -- what the macOS tests really did: counted, printed, and (RNNT_TUI_REQUIRE_CORE_ML=1, the macOS CI job) a run
# -- in which no Core ML test passed against Core ML itself fails
_CORE_ML_OUTCOMES: dict[str, int] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "macos" not in report.keywords or (report.when != "call" and not report.skipped):
        return
    kind = "simulated" if "simulated" in report.keywords else "Core ML"
    key = f"{kind} {report.outcome}"
    _CORE_ML_OUTCOMES[key] = _CORE_ML_OUTCOMES.get(key, 0) + 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _CORE_ML_OUTCOMES:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(_CORE_ML_OUTCOMES.items()))
        terminalreporter.write_line(f"macOS tests: {counts} (simulated = the test stand-in for Core ML's native "
                                    "layer, not Core ML)")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("RNNT_TUI_REQUIRE_CORE_ML") == "1" and not _CORE_ML_OUTCOMES.get("Core ML passed"):
        print("\nRNNT_TUI_REQUIRE_CORE_ML=1 but no macOS test passed against Core ML itself "
              f"({_CORE_ML_OUTCOMES or 'none ran'}): failing the run")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def stateful_packages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """The trained demo checkpoint restored, and a folder with its stateful decoder package (h and c in Core ML
    states, `tests/stateful_decoder.py`) beside its fp32 encoder and joint (no preprocessor: the reference's
    features feed the encoder): a `--packages` folder whose decoder carries state."""
    from stateful_decoder import write_stateful_decoder

    from rnnt_tui.core.checkpoint import restore
    from rnnt_tui.core.coreml.convert import convert_components

    loaded = restore(Path(__file__).parent.parent / "assets" / "demo" / "demo-rnnt.nemo")
    folder = tmp_path_factory.mktemp("stateful")
    write_stateful_decoder(loaded, folder / "Decoder.mlpackage")
    convert_components(loaded, components=["encoder", "joint"], out_dir=folder)
    return loaded, folder
