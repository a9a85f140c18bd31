"""Cache: re-opening a checkpoint performs zero exports / conversions, and a cache hit costs at most 5 % of the
export or conversion it saves - for a small and a large model.

How: per model, a fresh artifact cache (bench/.work/cache-<model>). One "cold" child process opens the checkpoint
the way the app and `rnnt-tui compare` do (hash + NeMo restore, then `OnnxRuntime.prepare` - NeMo's ONNX export
- and `CoreMLRuntime.prepare` - conversion of the four components to ML programs, which runs on Linux too), and
reports what the runtimes report (prepare_ms: the export/conversion or the cache lookup; load_ms: creating the
ONNX Runtime sessions, paid either way) and the cache's build counter. Then `--warm` children re-open the same
checkpoint with the now-filled cache. Figures: builds in the warm children (goal 0) and
median(warm prepare_ms) / median(cold prepare_ms) per runtime (goal <= 0.05). The cold side is one run per
model unless --cold-runs says more (the Parakeet-size conversion takes many minutes).

Run:   python bench/cache_hits.py [--models demo,conformer-120m,parakeet-0.6b] [--warm 3] [--cold-runs 1]
       [--runtimes onnx,coreml]
Takes: demo ~1 min, conformer-120m ~4 min, parakeet-0.6b ~15-25 min (cold export + conversion dominate).
Writes bench/results/cache.json (also read by bench/scaling.py for its export/convert columns).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from common import add_load_options, child_env, emit, gated, median, model_path, peak_rss_mib, run_child, save, spread

GOAL = 0.05


def child(model: str, runtimes: list[str]) -> None:
    from rnnt_tui.core.cache import ArtifactCache
    from rnnt_tui.core.checkpoint import content_hash, restore
    from rnnt_tui.core.summary import read_summary
    from rnnt_tui.paths import cache_dir

    path = model_path(model)
    start = time.perf_counter()
    content_hash(path, cache_dir())
    hash_ms = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    loaded = restore(path, read_summary(path), cache_dir=cache_dir())
    restore_s = time.perf_counter() - start
    out: dict[str, Any] = {"hash_ms": hash_ms, "restore_s": restore_s}
    for name in runtimes:
        before = ArtifactCache.stats.builds, ArtifactCache.stats.hits
        if name == "onnx":
            from rnnt_tui.core.runtimes.onnx_runtime import OnnxRuntime as Cls
        else:
            from rnnt_tui.core.runtimes.coreml_runtime import CoreMLRuntime as Cls  # type: ignore[assignment]
        runtime = Cls(loaded)
        start = time.perf_counter()
        reports = runtime.prepare()
        wall_ms = (time.perf_counter() - start) * 1000
        if name == "onnx":  # one export serves all three components: count it once
            prepare_ms = reports[0].prepare_ms
            load_ms = sum({r.load_ms for r in reports if r.load_ms is not None})
        else:
            prepare_ms = sum(r.prepare_ms for r in reports)
            load_ms = sum(r.load_ms or 0.0 for r in reports)
        out[name] = {"prepare_ms": prepare_ms, "load_ms": load_ms, "wall_ms": wall_ms,
                     "cached": [r.cached for r in reports], "actions": sorted({r.action for r in reports}),
                     "per_component_prepare_ms": {r.component: round(r.prepare_ms, 2) for r in reports},
                     "builds": ArtifactCache.stats.builds - before[0], "hits": ArtifactCache.stats.hits - before[1]}
        runtime.close()
    out["peak_rss_mib"] = peak_rss_mib()
    emit(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="demo,conformer-120m,parakeet-0.6b")
    parser.add_argument("--runtimes", default="onnx,coreml")
    parser.add_argument("--warm", type=int, default=3, help="warm re-opens per model")
    parser.add_argument("--cold-runs", type=int, default=1, help="cold runs per model (each on an empty cache)")
    add_load_options(parser)
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "RUNTIMES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1].split(","))
        return
    started, gate = gated(args)
    runtimes = args.runtimes.split(",")
    script = Path(__file__).resolve()
    models: dict[str, Any] = {}
    for model in args.models.split(","):
        model_path(model)
        cold_runs, warm_runs = [], []
        for i in range(args.cold_runs):
            env = child_env(f"cache-{model}", fresh_cache=True)
            cold_runs.append(run_child(script, [model, ",".join(runtimes)], env=env, timeout=7200))
            print(f"{model} cold {i + 1}: " + ", ".join(f"{r} {cold_runs[-1][r]['prepare_ms'] / 1000:.1f} s"
                                                       for r in runtimes), file=sys.stderr)
        for i in range(args.warm):
            env = child_env(f"cache-{model}")
            warm_runs.append(run_child(script, [model, ",".join(runtimes)], env=env, timeout=7200))
            print(f"{model} warm {i + 1}: " + ", ".join(f"{r} {warm_runs[-1][r]['prepare_ms']:.1f} ms "
                                                       f"({warm_runs[-1][r]['builds']} builds)" for r in runtimes),
                  file=sys.stderr)
        per_runtime = {}
        for r in runtimes:
            cold = [c[r]["prepare_ms"] for c in cold_runs]
            warm = [w[r]["prepare_ms"] for w in warm_runs]
            per_runtime[r] = {
                "cold_prepare_ms": spread(cold), "hit_prepare_ms": spread(warm),
                "hit_over_cold": round(median(warm) / median(cold), 5),
                "warm_builds": [w[r]["builds"] for w in warm_runs],
                "load_ms_cold": spread([c[r]["load_ms"] for c in cold_runs]),
                "load_ms_warm": spread([w[r]["load_ms"] for w in warm_runs]),
                "wall_ms_cold": spread([c[r]["wall_ms"] for c in cold_runs]),
                "wall_ms_warm": spread([w[r]["wall_ms"] for w in warm_runs]),
                "per_component_cold_ms": cold_runs[0][r]["per_component_prepare_ms"],
                "per_component_hit_ms": warm_runs[0][r]["per_component_prepare_ms"] if warm_runs else None,
            }
        models[model] = {"runtimes": per_runtime,
                         "hash_ms_cold": spread([c["hash_ms"] for c in cold_runs]),
                         "hash_ms_warm": spread([w["hash_ms"] for w in warm_runs]),
                         "restore_s": spread([x["restore_s"] for x in cold_runs + warm_runs]),
                         "peak_rss_mib_cold": spread([c["peak_rss_mib"] for c in cold_runs]),
                         "peak_rss_mib_warm": spread([w["peak_rss_mib"] for w in warm_runs]),
                         "cold": cold_runs, "warm": warm_runs}
    ratios = [v["hit_over_cold"] for m in models.values() for v in m["runtimes"].values()]
    zero_builds = all(b == 0 for m in models.values() for v in m["runtimes"].values() for b in v["warm_builds"])
    summary = {"goal": f"warm re-open builds nothing; hit prepare <= {GOAL:.0%} of cold",
               "goal_met": bool(zero_builds and ratios and max(ratios) <= GOAL), "warm_builds_all_zero": zero_builds,
               "table": [{"model": name, "runtime": r, "cold_s": round(v["cold_prepare_ms"]["median"] / 1000, 2),
                          "hit_ms": v["hit_prepare_ms"]["median"], "ratio": v["hit_over_cold"],
                          "load_ms_warm": v["load_ms_warm"]["median"]}
                         for name, m in models.items() for r, v in m["runtimes"].items()]}
    save("cache", {"summary": summary, "models": models}, gate, started)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
