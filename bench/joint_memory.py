"""Joint grid memory: peak extra memory of the full T x U joint comparison at Parakeet dimensions, for 5, 15,
30 and 60 s clips, chunked (the default, 32 frames) vs whole-grid (`--joint-chunk 0`).

How: each configuration runs in a fresh process on bench/.models/parakeet-0.6b.nemo (random weights; vocab
1024, so C = 1025 logits per cell). T is what the encoder gives for the clip length (12.5 frames/s); U is
controlled - random weights would let the greedy decode emit up to max_symbols per frame - at a realistic
2.5 tokens/s + the blank start (U = 2.5 x seconds + 1), and the decoder outputs are made by stepping the real
prediction net along those tokens. The encoder output is random (the joint's memory does not depend on its
values). Then `rnnt_tui.core.grid.compare_joint_grid` runs exactly as a comparison runs it (reference PyTorch,
candidate ONNX Runtime by default, timings with --runs/--warmup) with `Settings(joint_chunk_frames=32 or
0)`. Memory is RSS from /proc/self/status: the peak (VmHWM, reset with /proc/self/clear_refs just before the
call) minus the RSS just before it, so torch's and onnxruntime's native allocations count (tracemalloc would
miss them).

Run:   python bench/joint_memory.py [--seconds 5,15,30,60] [--chunks 32,0] [--reps 3] [--candidate onnx|pytorch]
Takes: ~25-40 s per configuration (a Parakeet-size restore each), ~15-20 min for the default 24.
Writes bench/results/joint_memory.json. Needs ~10 GB free RAM for the 60 s whole-grid case.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    add_load_options,
    child_env,
    emit,
    gated,
    median,
    model_path,
    peak_rss_mib,
    reset_peak_rss,
    rss_mib,
    run_child,
    save,
    spread,
)

MODEL = "parakeet-0.6b"
TOKENS_PER_S = 2.5
GOAL_MIB = 256.0


def child(seconds: float, chunk: int, candidate_name: str, runs: int, warmup: int) -> None:
    import gc

    import numpy as np

    from rnnt_tui.core.checkpoint import restore
    from rnnt_tui.core.components import ENCODER, PREPROCESSOR
    from rnnt_tui.core.coreml.convert import expected_frames
    from rnnt_tui.core.fuse import VALIDATION, fuse_mode_of
    from rnnt_tui.core.pipeline.joint_grid import compare_joint_grid
    from rnnt_tui.core.pipeline.request import Settings
    from rnnt_tui.core.runtimes.base import no_progress
    from rnnt_tui.core.runtimes.torch_runtime import TorchRuntime
    from rnnt_tui.paths import cache_dir

    loaded = restore(model_path(MODEL), cache_dir=cache_dir())
    fuse_mode_of(loaded.model).set(VALIDATION)  # as a Session does: fuse off, log_softmax off (like NeMo's export)
    ref = TorchRuntime(loaded)
    ref.prepare()
    if candidate_name == "onnx":
        from rnnt_tui.core.runtimes.onnx_runtime import OnnxRuntime

        cand: Any = OnnxRuntime(loaded)
    else:
        cand = TorchRuntime(loaded)
    cand.prepare()
    rate = loaded.summary.sample_rate or 16000
    frames = expected_frames(loaded, ENCODER, expected_frames(loaded, PREPROCESSOR, int(seconds * rate)))
    steps = round(TOKENS_PER_S * seconds) + 1
    rng = np.random.default_rng(0)
    model = loaded.model
    encoded = rng.standard_normal((1, int(model.joint.encoder_hidden), frames)).astype(np.float32)
    blank = loaded.summary.blank_id
    targets = [blank, *rng.integers(0, blank, steps - 1).tolist()]
    layers, hidden = int(model.decoder.pred_rnn_layers), int(model.decoder.pred_hidden)
    h = np.zeros((layers, 1, hidden), dtype=np.float32)
    c = np.zeros_like(h)
    outs = []
    for token in targets:
        out = ref.run("decoder", {"targets": np.array([[token]], dtype=np.int64), "h": h, "c": c})
        h, c = out["h"], out["c"]
        outs.append(out["decoder_output"])
    g = np.concatenate(outs, axis=2)
    target_arr = np.array([targets], dtype=np.int64)
    settings = Settings(runs=runs, warmup=warmup, joint_chunk_frames=chunk)
    gc.collect()
    baseline = rss_mib()
    reset_ok = reset_peak_rss()
    start = time.perf_counter()
    result = compare_joint_grid(ref, cand, encoded, g, target_arr, settings, no_progress, None)
    elapsed = time.perf_counter() - start
    peak = peak_rss_mib()
    classes = result.reference_outputs[0].shape[-1] if result.reference_outputs else None
    stats = result.comparisons[0].stats if result.comparisons else None
    emit({"seconds": seconds, "chunk": chunk, "candidate": candidate_name, "T": frames, "U": steps, "C": classes,
          "grid_mib": frames * steps * (classes or 0) * 4 / 2**20, "baseline_rss_mib": baseline, "peak_rss_mib": peak,
          "extra_mib": peak - baseline, "hwm_reset": reset_ok, "elapsed_s": elapsed, "status": result.status,
          "error": result.error, "max_abs": None if stats is None else stats.max_abs,
          "timed_on": result.notes[-1] if result.notes else None})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", default="5,15,30,60")
    parser.add_argument("--chunks", default="32,0", help="joint_chunk_frames values; 0 = whole grid")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--candidate", default="onnx", choices=("onnx", "pytorch"))
    parser.add_argument("--runs", type=int, default=5, help="timed joint calls (Settings.runs)")
    parser.add_argument("--warmup", type=int, default=1)
    add_load_options(parser)
    parser.add_argument("--tag", default="joint_memory")
    parser.add_argument("--child", nargs=3, metavar=("SECONDS", "CHUNK", "CANDIDATE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(float(args.child[0]), int(args.child[1]), args.child[2], args.runs, args.warmup)
        return
    model_path(MODEL)
    started, gate = gated(args)
    env = child_env("joint")  # one ONNX export of the Parakeet-size model, reused by every child
    rows: list[dict[str, Any]] = []
    for rep in range(args.reps):
        for seconds in (float(s) for s in args.seconds.split(",")):
            for chunk in (int(c) for c in args.chunks.split(",")):
                res = run_child(Path(__file__).resolve(),
                                [str(seconds), str(chunk), args.candidate, "--runs", str(args.runs),
                                 "--warmup", str(args.warmup)], env=env, timeout=3600)
                rows.append(res)
                print(f"rep {rep + 1} {seconds:g} s chunk {chunk}: T x U = {res['T']} x {res['U']}, grid "
                      f"{res['grid_mib']:.0f} MiB, extra {res['extra_mib']:.0f} MiB ({res['status']}, "
                      f"{res['elapsed_s']:.1f} s)", file=sys.stderr)
    table = []
    for seconds in sorted({r["seconds"] for r in rows}):
        for chunk in sorted({r["chunk"] for r in rows}, reverse=True):
            sel = [r for r in rows if r["seconds"] == seconds and r["chunk"] == chunk]
            if not sel:
                continue
            extra = [r["extra_mib"] for r in sel]
            grid = max(sel[0]["grid_mib"], 1e-9)
            table.append({"seconds": seconds, "mode": f"chunk {chunk}" if chunk else "whole grid",
                          "T": sel[0]["T"], "U": sel[0]["U"], "grid_mib": round(grid, 1),
                          "extra_mib": round(median(extra), 1), "extra_over_grid": round(median(extra) / grid, 2),
                          "elapsed_s": round(median([r["elapsed_s"] for r in sel]), 2), "extra_spread": spread(extra)})
    chunked_60 = [t["extra_mib"] for t in table if t["seconds"] == 60 and t["mode"] != "whole grid"]
    summary = {"goal": f"chunked under {GOAL_MIB:.0f} MiB extra at 60 s; whole grid grows with T x U",
               "goal_met": bool(chunked_60 and max(chunked_60) < GOAL_MIB), "candidate": args.candidate,
               "table": table}
    save(args.tag, {"summary": summary, "rows": rows, "model": MODEL, "tokens_per_s": TOKENS_PER_S}, gate, started)
    print(json.dumps({k: v for k, v in summary.items() if k != "table"}, indent=1))
    for t in table:
        print({k: v for k, v in t.items() if k != "extra_spread"})


if __name__ == "__main__":
    main()
