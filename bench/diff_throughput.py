"""Diff throughput: GB/s of float32 (reference, candidate) pairs through the tool's statistics
(`rnnt_tui.core.stats.diff.DiffAccumulator`), against plain numpy passes over the same data in the same run.

How: a reference tensor and a candidate = reference + 1e-4-scale noise, float32. Throughput counts the bytes of
both sides (2 x 4 bytes per element) per second of `update()` + `result()`. Cases: an encoder-like output
([1, 1024, T], one update of the whole tensor, as `compare_outputs` does), and the joint's logits mode
([1, 32, U, 1025] chunks: argmax agreement and top-5 overlap too) as `compare_joint_grid` feeds it. Baselines, same
data, same process: `np.abs(c - r).max()` (what a one-off script prints) and `np.allclose`. Each figure is the
median of --reps timed passes (after one warm-up pass); the ratio is tool time / baseline time.
The same cases run through `bench/proposed_stats.ProposedAccumulator` (the faster logits path this bench
proposes) and are checked to give identical statistics. The "statistics only" case over the same logits shows
what the argmax / top-5 part costs.

Run:   python bench/diff_throughput.py [--mib 256] [--reps 5]
Takes: ~1 min.  Writes bench/results/diff_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from common import add_load_options, gated, median, save, spread

GOAL_GBPS = 1.0


def timed(fn: Callable[[], Any], reps: int) -> list[float]:
    fn()
    out = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def stream(ref: np.ndarray, cand: np.ndarray, chunk: int, logits: bool, axis: int, proposed: bool = False) -> Any:
    from rnnt_tui.core.stats.diff import DiffAccumulator

    cls = DiffAccumulator
    if proposed:
        from proposed_stats import ProposedAccumulator

        cls = ProposedAccumulator
    acc = cls(ref.shape, 1e-3, 1e-3, axis=axis, logits=logits, topk=5)
    for start in range(0, ref.shape[axis], chunk):
        index = [slice(None)] * ref.ndim
        index[axis] = slice(start, start + chunk)
        acc.update(ref[tuple(index)], cand[tuple(index)])
    return acc.result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=256, help="size of ONE side in MiB (the pair is twice that)")
    parser.add_argument("--reps", type=int, default=5)
    add_load_options(parser)
    args = parser.parse_args()
    started, gate = gated(args)
    rng = np.random.default_rng(0)
    n = args.mib * 2**20 // 4
    # encoder-like: [1, 1024, T] (D-major), one update of the whole tensor, as compare_outputs does
    frames = n // 1024
    enc_ref = rng.standard_normal((1, 1024, frames), dtype=np.float32)
    enc_cand = enc_ref + rng.standard_normal(enc_ref.shape, dtype=np.float32) * np.float32(1e-4)
    # joint-like logits: [1, T, U, 1025], streamed in chunks of 32 frames
    steps, classes = 151, 1025
    t_frames = max(32, n // (steps * classes))
    log_ref = rng.standard_normal((1, t_frames, steps, classes), dtype=np.float32)
    log_cand = log_ref + rng.standard_normal(log_ref.shape, dtype=np.float32) * np.float32(1e-4)
    cases: dict[str, Any] = {}
    for name, ref, cand, chunk, logits, axis in (
            ("encoder-like [1,1024,T], plain statistics", enc_ref, enc_cand, frames, False, 2),
            ("joint logits [1,T,151,1025], chunks of 32 frames, + argmax/top-5", log_ref, log_cand, 32, True, 1),
            ("joint logits, statistics only (logits=False)", log_ref, log_cand, 32, False, 1)):
        pair_gb = 2 * ref.nbytes / 1e9
        tool = timed(lambda ref=ref, cand=cand, chunk=chunk, logits=logits, axis=axis:
                     stream(ref, cand, chunk, logits, axis), args.reps)
        maxabs = timed(lambda ref=ref, cand=cand: float(np.abs(cand - ref).max()), args.reps)
        allclose = timed(lambda ref=ref, cand=cand: bool(np.allclose(cand, ref, atol=1e-3, rtol=1e-3)), args.reps)
        proposed = timed(lambda ref=ref, cand=cand, chunk=chunk, logits=logits, axis=axis:
                         stream(ref, cand, chunk, logits, axis, proposed=True), args.reps)
        same = stream(ref, cand, chunk, logits, axis) == stream(ref, cand, chunk, logits, axis, proposed=True)
        cases[name] = {"pair_gb": round(pair_gb, 3),
                       "proposed_gbps": round(pair_gb / median(proposed), 3), "proposed_s": spread(proposed),
                       "proposed_equal_results": same,
                       "tool_gbps": round(pair_gb / median(tool), 3), "tool_s": spread(tool),
                       "maxabs_gbps": round(pair_gb / median(maxabs), 3), "maxabs_s": spread(maxabs),
                       "allclose_gbps": round(pair_gb / median(allclose), 3), "allclose_s": spread(allclose),
                       "tool_over_maxabs": round(median(tool) / median(maxabs), 2),
                       "tool_over_allclose": round(median(tool) / median(allclose), 2)}
        print(f"{name}: tool {cases[name]['tool_gbps']:.2f} GB/s (proposed {cases[name]['proposed_gbps']:.2f}, "
              f"same results: {same}), max|d| {cases[name]['maxabs_gbps']:.2f} GB/s, "
              f"allclose {cases[name]['allclose_gbps']:.2f} GB/s", file=sys.stderr)
    plain = cases["encoder-like [1,1024,T], plain statistics"]["tool_gbps"]
    joint = cases["joint logits [1,T,151,1025], chunks of 32 frames, + argmax/top-5"]["tool_gbps"]
    prop = {k: v["proposed_gbps"] for k, v in cases.items()}
    summary = {"goal": f"at least {GOAL_GBPS} GB/s of float32 pairs", "plain_gbps": plain, "joint_logits_gbps": joint,
               "goal_met": bool(plain >= GOAL_GBPS), "goal_met_logits_mode": bool(joint >= GOAL_GBPS),
               "proposed_gbps": prop,
               "proposed_equal_results": all(v["proposed_equal_results"] for v in cases.values()),
               "table": [{"case": k, "tool_gbps": v["tool_gbps"], "proposed_gbps": v["proposed_gbps"],
                          "maxabs_gbps": v["maxabs_gbps"], "allclose_gbps": v["allclose_gbps"],
                          "tool_over_allclose": v["tool_over_allclose"]} for k, v in cases.items()]}
    save("diff_throughput", {"summary": summary, "cases": cases, "mib_per_side": args.mib}, gate, started)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
