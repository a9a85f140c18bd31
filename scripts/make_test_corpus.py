"""Build the small test corpus from the demo's three clips, without the network: the clips and variants of them
(speed, gain, noise, concatenations), with their texts, in a folder with a NeMo manifest (`manifest.json`).

    python scripts/make_test_corpus.py                 # rewrites assets/demo/corpus/ (committed, < 1.5 MB)
    python scripts/make_test_corpus.py --out DIR       # anywhere else

The output is deterministic (seeded noise, soxr resampling, 16-bit PCM), so rebuilding gives the same bytes.
Speed variants are resampled like sox's `speed` (tempo and pitch change together). `build_corpus` is what the
tests import.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

RATE = 16000
GAP_S = 0.25
#: (file stem, source clip(s), variant, parameter); texts come from the demo's clips.json
VARIANTS: tuple[tuple[str, tuple[str, ...], str, float], ...] = (
    ("hello-world", ("hello-world",), "original", 0.0),
    ("the-quick-brown-fox", ("the-quick-brown-fox",), "original", 0.0),
    ("core-ml-on-a-mac", ("core-ml-on-a-mac",), "original", 0.0),
    ("hello-world-speed0.9", ("hello-world",), "speed", 0.9),
    ("the-quick-brown-fox-speed1.1", ("the-quick-brown-fox",), "speed", 1.1),
    ("core-ml-on-a-mac-speed1.15", ("core-ml-on-a-mac",), "speed", 1.15),
    ("hello-world-gain-12db", ("hello-world",), "gain", -12.0),
    ("the-quick-brown-fox-gain+6db", ("the-quick-brown-fox",), "gain", 6.0),
    ("core-ml-on-a-mac-snr20", ("core-ml-on-a-mac",), "noise", 20.0),
    ("hello-world-snr10", ("hello-world",), "noise", 10.0),
    ("hello-world+core-ml-on-a-mac", ("hello-world", "core-ml-on-a-mac"), "concat", 0.0),
    ("the-quick-brown-fox+hello-world", ("the-quick-brown-fox", "hello-world"), "concat", 0.0),
)


def _speed(signal: np.ndarray, factor: float) -> np.ndarray:
    import soxr

    return np.asarray(soxr.resample(signal, RATE, RATE / factor, quality="HQ"), dtype=np.float32)


def _gain(signal: np.ndarray, db: float) -> np.ndarray:
    out = signal * np.float32(10 ** (db / 20))
    peak = float(np.abs(out).max())
    return out * np.float32(0.99 / peak) if peak > 0.99 else out  # never clip


def _noise(signal: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    power = float(np.mean(signal.astype(np.float64) ** 2))
    noise = rng.standard_normal(signal.size) * np.sqrt(power / 10 ** (snr_db / 10))
    return _gain((signal + noise).astype(np.float32), 0.0)


def _variant(sources: list[np.ndarray], kind: str, value: float, seed: int) -> np.ndarray:
    if kind == "concat":
        gap = np.zeros(int(GAP_S * RATE), dtype=np.float32)
        return np.concatenate([part for clip in sources for part in (clip, gap)][:-1])
    signal = sources[0]
    if kind == "speed":
        return _speed(signal, value)
    if kind == "gain":
        return _gain(signal, value)
    if kind == "noise":
        return _noise(signal, value, seed)
    return signal


def _describe(kind: str, value: float) -> str:
    return {"original": "original", "speed": f"speed x{value:g}", "gain": f"gain {value:+g} dB",
            "noise": f"white noise at {value:g} dB SNR", "concat": f"concatenated, {GAP_S:g} s apart"}[kind]


def build_corpus(out_dir: Path, demo: Path | None = None, variants: int | None = None) -> Path:
    """Write the clips (the first `variants` of `VARIANTS`, default all) and `manifest.json` into `out_dir`;
    returns the manifest's path."""
    import soundfile as sf

    from rnnt_tui.core.audio import load_audio
    from rnnt_tui.paths import demo_dir

    demo = demo or demo_dir()
    texts = {Path(c["audio"]).stem: c["text"] for c in json.loads((demo / "clips.json").read_text())}
    clips = {stem: load_audio(demo / f"{stem}.wav", RATE).samples for stem in texts}
    out_dir.mkdir(parents=True, exist_ok=True)
    lines: list[dict[str, Any]] = []
    for seed, (stem, sources, kind, value) in enumerate(VARIANTS[:variants]):
        signal = _variant([clips[s] for s in sources], kind, value, seed)
        name = f"{stem}.wav"
        sf.write(str(out_dir / name), signal, RATE, subtype="PCM_16")
        lines.append({"audio_filepath": name, "duration": round(signal.size / RATE, 3),
                      "text": " ".join(texts[s] for s in sources), "variant": _describe(kind, value)})
    manifest = out_dir / "manifest.json"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="Output folder (default assets/demo/corpus).")
    args = parser.parse_args()
    from rnnt_tui.core.corpus import demo_manifest

    out = args.out or demo_manifest().parent
    manifest = build_corpus(out)
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"wrote {manifest} and {len(VARIANTS)} clips ({size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
