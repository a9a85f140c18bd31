"""Core AI conversion memory at Parakeet dims: peak RSS of converting the encoder to a Core AI asset against PyTorch's
own peak running it (restore + one 15 s call), in fresh child processes, one at a time.

How: child `torch` restores bench/.models/parakeet-0.6b.nemo and runs the encoder wrapper on 15 s of features
(VmHWM after); child `convert` restores it and runs `core.coreai.convert.convert_one` for the encoder into a temp
folder (flexible time axis over the Core ML range; VmHWM after) and times it. Goal (issue 19): conversion peak <=
1.5x PyTorch's. Never part of CI (needs ~10 GiB; one process at a time on a shared machine).

Run:   python bench/coreai_memory.py [--model parakeet-0.6b] [--seconds 15]
Writes bench/results/coreai_memory.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from common import child_env, emit, model_path, peak_rss_mib, rss_mib, run_child, save, speech_like, ungated

TAG = "coreai_memory"
GOAL = 1.5


def _child(kind: str, model: str, seconds: float) -> None:
    import tempfile
    import warnings

    warnings.simplefilter("ignore")
    import numpy as np
    import torch

    from rnnt_tui.core.checkpoint import restore
    from rnnt_tui.core.quiet import quiet

    with quiet():
        loaded = restore(model_path(model))
    out: dict[str, Any] = {"rss_after_restore_mib": rss_mib()}
    start = time.perf_counter()
    if kind == "torch":
        from rnnt_tui.core.runtimes.torch_runtime import TorchRuntime

        runtime = TorchRuntime(loaded)
        runtime.prepare()
        audio = speech_like(seconds)
        features = runtime.run("preprocessor", {"audio_signal": audio[None, :].astype(np.float32),
                                                "length": np.array([audio.shape[0]])})
        with torch.inference_mode():
            runtime.run("encoder", features)
    else:
        from rnnt_tui.core.coreai.convert import convert_one

        with tempfile.TemporaryDirectory() as tmp:
            _notes, multiple = convert_one(loaded, "encoder", Path(tmp) / "encoder.aimodel")
            out["asset_mib"] = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file()) / 2**20
            out["time_multiple"] = multiple
    out["seconds"] = time.perf_counter() - start
    out["peak_rss_mib"] = peak_rss_mib()
    emit(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="parakeet-0.6b")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--child", choices=["torch", "convert"])
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.model, args.seconds)
        return
    started, gate = ungated()
    env = child_env(TAG, fresh_cache=True)
    sizes = ["--model", args.model, "--seconds", str(args.seconds)]
    torch_side, convert_side = (run_child(Path(__file__), [kind, *sizes], env=env) for kind in ("torch", "convert"))
    ratio = convert_side["peak_rss_mib"] / torch_side["peak_rss_mib"]
    save(TAG, {"model": args.model, "seconds": args.seconds, "torch": torch_side, "convert": convert_side,
               "ratio_peak_rss": ratio, "goal": GOAL, "met": ratio <= GOAL}, gate=gate,
         started=started)
    print({"ratio_peak_rss": round(ratio, 3), "met": ratio <= GOAL}, file=sys.stderr)


if __name__ == "__main__":
    main()
