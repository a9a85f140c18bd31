"""Every file location rnnt-tui uses, in one place.

The cache (exports, conversions, hash memos) lives in the platform's user cache dir, overridable with
RNNT_TUI_CACHE_DIR; app state (recent files) in the user state dir, overridable with RNNT_TUI_STATE_DIR; results
the app keeps (corpus runs) in the user data dir, overridable with RNNT_TUI_DATA_DIR. The
bundled demo lives in the package (wheel installs) or in the repository's `assets/demo` (editable installs).
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "rnnt-tui"
DEMO_CHECKPOINT = "demo-rnnt.nemo"
DEMO_CLIPS = "clips.json"


def cache_dir() -> Path:
    env = os.environ.get("RNNT_TUI_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def state_dir() -> Path:
    env = os.environ.get("RNNT_TUI_STATE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_state_dir(APP_NAME, appauthor=False))


def data_dir() -> Path:
    """Where results the user keeps live (the app's corpus runs); RNNT_TUI_DATA_DIR overrides."""
    env = os.environ.get("RNNT_TUI_DATA_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def corpus_run_dir(checkpoint_sha256: str, manifest: Path, against: str, options: str) -> Path:
    """The app's results folder for one corpus run: the same checkpoint, manifest, candidate and options always
    map to the same folder, so opening the corpus again resumes it."""
    import hashlib

    key = hashlib.sha256(f"{checkpoint_sha256}|{manifest.resolve()}|{against}|{options}".encode()).hexdigest()[:12]
    return data_dir() / "corpus-runs" / f"{manifest.resolve().parent.name}-{manifest.stem}-{against}-{key}"


def recent_files() -> Path:
    return state_dir() / "recent.json"


def demo_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "assets" / "demo", here.parent / "assets" / "demo"):
        if (candidate / DEMO_CHECKPOINT).is_file():
            return candidate
    return here.parent / "assets" / "demo"


def demo_checkpoint() -> Path:
    return demo_dir() / DEMO_CHECKPOINT


def demo_audio() -> Path:
    """The first clip of the demo (clips.json order)."""
    import json

    directory = demo_dir()
    try:
        clips = json.loads((directory / DEMO_CLIPS).read_text())
        return directory / clips[0]["audio"]
    except (OSError, ValueError, KeyError, IndexError):
        wavs = sorted(directory.glob("*.wav"))
        return wavs[0] if wavs else directory / "missing.wav"
