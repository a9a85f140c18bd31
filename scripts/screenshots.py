"""Take the README's screenshots: the real app on the bundled demo, driven by keys, saved as SVG.

Run:  python scripts/screenshots.py [--out assets/screenshots] [--size 130x40]
Each shot is the app as a user sees it after the keys listed next to it (the comparison against ONNX Runtime,
which runs on Linux and macOS alike). Takes about 2 minutes (the corpus and the fp16 conversion).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from textual.worker import WorkerState

from rnnt_tui.app.app import RnntApp
from rnnt_tui.app.choices import RuntimeChoices
from rnnt_tui.core.corpus import demo_manifest
from rnnt_tui.paths import demo_audio, demo_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SHOTS: list[tuple[str, tuple[str, ...], str]] = [
    ("01-ready", (), "The demo opened: model, fuse mode (validation), pipeline, nothing run yet"),
    ("02-run-all-tables", ("r", "2"), "r: every step ran; the Tables tab"),
    ("03-pictures", ("3",), "The encoder's per-frame diff and the joint's T x U heatmaps"),
    ("04-transcripts", ("4",), "Both transcripts, token for token"),
    ("05-step-detail", ("1", "left_square_bracket"), "One step's inputs and outputs in both runtimes"),
    ("06-fuse-as-saved", ("f",), "f: the joint as saved (fuse_loss_wer true): NeMo's error, not logits"),
    ("07-corpus", ("f", "corpus"), "The demo corpus against ONNX Runtime: WER, QoI, identical, utterances"),
    ("08-precision", ("p", "r"), "p, r: the tool's fp16 conversion certified in the MIL interpreter"),
]


async def settle(app: RnntApp, pilot: Any) -> None:
    deadline = time.monotonic() + 300
    while app.state.session is None or any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in app.workers):
        if time.monotonic() > deadline:
            raise SystemExit("the app did not settle in 300 s")
        await pilot.pause(0.05)
    await pilot.pause(0.3)
    app.clear_notifications()
    await pilot.pause(0.1)


async def take(out: Path, size: tuple[int, int]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    app = RnntApp(demo_checkpoint(), demo_audio(), RuntimeChoices())
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        for name, keys, caption in SHOTS:
            for key in keys:
                if key == "corpus":  # what `a` + the demo manifest does, without the file dialog
                    app.start_corpus(demo_manifest())
                else:
                    await pilot.press(key)
                await settle(app, pilot)
            app.save_screenshot(filename=f"{name}.svg", path=str(out))
            print(f"{out / name}.svg  ({' '.join(keys) or 'start'}): {caption}")


def main() -> None:
    os.environ.setdefault("RNNT_TUI_DATA_DIR", tempfile.mkdtemp(prefix="rnnt-tui-shots-"))  # a fresh corpus run
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "screenshots")
    parser.add_argument("--size", default="130x40")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    asyncio.run(take(args.out, (width, height)))


if __name__ == "__main__":
    main()
