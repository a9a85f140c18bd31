"""`ClipInfo`, the clip less its samples that events carry to the app: the same facts as the `Audio` it comes
from, and readable in a process that never imports numpy (the app's)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from rnnt_tui.core.audio import load_audio
from rnnt_tui.core.pipeline import events as ev


def test_clip_info_says_what_the_audio_says_without_its_samples(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    sf.write(path, np.zeros((22050, 2), dtype=np.float32), 22050)
    audio = load_audio(path, 16000)
    info = audio.info()
    assert not hasattr(info, "samples")
    assert info.duration_s == audio.duration_s and info.sample_rate == 16000 and info.original_rate == 22050
    assert info.notes() == audio.notes() and any("downmixed 2 channels" in n for n in info.notes())

    blob = pickle.dumps(ev.ClipLoaded(info))
    code = ("import pickle, sys; event = pickle.loads(sys.stdin.buffer.read()); "
            "assert 'numpy' not in sys.modules, 'numpy imported'; print(event.audio.path.name)")
    out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, check=True)
    assert out.stdout.decode().strip() == "stereo.wav"
    assert len(blob) < 2000  # the samples (88 KB here) stay in the engine
