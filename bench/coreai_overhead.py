"""Core AI: the tool's overhead around a Core AI call, whether Apple's runtime uses every core, and cold conversion /
cached load against the Core ML conversion - ratios from one run, on the demo (or a bench model).

How, in one child process with a fresh cache: (1) cold conversion of all four components to Core AI
(`core.coreai.convert`) and to Core ML (`core.coreml.convert`), each timed; (2) `CoreAIRuntime.prepare` twice: the
assets from the cache but lowered by the runtime now, then everything cached (the lowered programs loaded as
they are), against a Core ML cache hit (Core ML cannot load on Linux: its cached figure is the lookup alone);
(3) for the encoder on a `--seconds` clip and one decoder step: the raw call (`loop.run_until_complete(f(arrays))`
on arrays made once) against the bound call (`bound()`, what the pipeline times) and the round trip (`bound()` then
`bound.outputs(raw)`: reading the outputs back by name as numpy, cropped), alternated, `--runs` each; overhead =
(tool - raw) / raw of the medians; (4) process CPU time over wall time during the calls (> 1 means the runtime ran
on more than one core; on a busy machine a process gets less) and, independent of the load, how many threads
did at least 10 % of the process's CPU work during them (1: the runtime computes on one thread).
Goal (issue 19): overhead <= 5 % of the call.

Run:   python bench/coreai_overhead.py [--model demo] [--seconds 10] [--runs 5]
Writes bench/results/coreai_overhead.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from common import child_env, emit, median, model_path, run_child, save, speech_like, spread, ungated

TAG = "coreai_overhead"
GOAL_OVERHEAD = 0.05


def _thread_cpu() -> dict[str, int]:
    """Clock ticks of CPU time per thread of this process (utime + stime from /proc/self/task/*/stat)."""
    from pathlib import Path

    out = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            out[task.name] = int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return out


def _child(model: str, seconds: float, runs: int) -> None:
    import os
    import warnings

    import numpy as np

    warnings.simplefilter("ignore")
    from rnnt_tui.core.checkpoint import restore
    from rnnt_tui.core.coreai.convert import convert_components as coreai_convert
    from rnnt_tui.core.coreml.convert import convert_components as coreml_convert
    from rnnt_tui.core.options import RuntimeOptions
    from rnnt_tui.core.quiet import quiet
    from rnnt_tui.core.runtimes.coreai_runtime import CoreAIRuntime
    from rnnt_tui.core.runtimes.torch_runtime import TorchRuntime

    with quiet():
        loaded = restore(model_path(model))
    out: dict[str, Any] = {}
    start = time.perf_counter()
    coreai_convert(loaded)
    out["coreai_cold_convert_s"] = time.perf_counter() - start
    start = time.perf_counter()
    with quiet():
        coreml_convert(loaded)
    out["coreml_cold_convert_s"] = time.perf_counter() - start
    start = time.perf_counter()
    with quiet():
        coreml_convert(loaded)
    out["coreml_cached_s"] = time.perf_counter() - start

    runtime = CoreAIRuntime(loaded, RuntimeOptions())
    start = time.perf_counter()
    reports = runtime.prepare()  # assets from the cache; the runtime lowers them now (and the lowering is cached)
    out["coreai_lowering_prepare_s"] = time.perf_counter() - start
    out["coreai_lowering_load_ms"] = {r.component: round(r.load_ms or 0, 1) for r in reports}
    runtime.close()
    runtime = CoreAIRuntime(loaded, RuntimeOptions())
    start = time.perf_counter()
    reports = runtime.prepare()  # everything cached: the lowered programs are loaded as they are
    out["coreai_cached_prepare_s"] = time.perf_counter() - start
    out["coreai_cached_load_ms"] = {r.component: round(r.load_ms or 0, 1) for r in reports}
    assert all(r.cached and "lowered program from the cache" in r.action for r in reports), [r.action for r in reports]

    reference = TorchRuntime(loaded)
    reference.prepare()
    audio = speech_like(seconds)
    features = reference.run("preprocessor", {"audio_signal": audio[None, :].astype(np.float32),
                                              "length": np.array([audio.shape[0]])})
    state = runtime.initial_state()
    cases = {"encoder": ("encoder", {"features": features["features"], "features_length": features["features_length"]}),
             "decoder_step": ("decoder", {"targets": np.array([[loaded.summary.blank_id]]), "h": state[0],
                                          "c": state[1]})}
    from coreai.runtime import NDArray

    for name, (component, inputs) in cases.items():
        bound = runtime.bind(component, inputs)
        fmap = runtime.maps[component][0]
        function = runtime.functions[(component, fmap.function.name)]
        feed = runtime._feed(fmap, component, inputs, runtime._choose(component, inputs)[2])
        arrays = {k: NDArray(v) for k, v in feed.items()}
        loop = runtime.executor._loop
        bound.outputs(bound())  # warm-up
        raw_t, tool_t, trip_t = [], [], []
        threads0 = _thread_cpu()
        cpu0, wall0 = os.times(), time.perf_counter()
        n = runs if component == "encoder" else runs * 20
        for _ in range(n):
            t = time.perf_counter()
            loop.run_until_complete(function(arrays))
            raw_t.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            raw = bound()
            tool_t.append((time.perf_counter() - t) * 1000)
            bound.outputs(raw)
            trip_t.append((time.perf_counter() - t) * 1000)
        cpu1, wall1 = os.times(), time.perf_counter()
        threads1 = _thread_cpu()
        busy = {t: threads1[t] - threads0.get(t, 0) for t in threads1}
        total = sum(busy.values()) or 1
        cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        out[name] = {"raw_ms": spread(raw_t), "timed_call_ms": spread(tool_t), "round_trip_ms": spread(trip_t),
                     "overhead": (median(tool_t) - median(raw_t)) / median(raw_t),
                     "round_trip_overhead": (median(trip_t) - median(raw_t)) / median(raw_t),
                     "cpu_over_wall": cpu / (wall1 - wall0),
                     "threads_with_10pct_of_cpu": sum(1 for v in busy.values() if v >= 0.1 * total),
                     "busiest_thread_share": max(busy.values()) / total}
    torch_t = []
    for _ in range(runs):
        bound = reference.bind("encoder", cases["encoder"][1])
        t = time.perf_counter()
        bound()
        torch_t.append((time.perf_counter() - t) * 1000)
    out["torch_encoder_ms"] = spread(torch_t)
    out["cpus"] = os.cpu_count()
    runtime.close()
    emit(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="demo")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        _child(args.model, args.seconds, args.runs)
        return
    started, gate = ungated()
    sizes = ["--model", args.model, "--seconds", str(args.seconds), "--runs", str(args.runs)]
    result = run_child(Path(__file__), sizes, env=child_env(TAG, fresh_cache=True))
    ratios = {"coreai_cold_vs_coreml_cold": result["coreai_cold_convert_s"] / result["coreml_cold_convert_s"],
              "coreai_cached_prepare_vs_coreml_cached": result["coreai_cached_prepare_s"] / result["coreml_cached_s"],
              "coreai_cached_prepare_vs_lowering_prepare": result["coreai_cached_prepare_s"]
              / result["coreai_lowering_prepare_s"],
              "coreai_encoder_vs_torch": result["encoder"]["raw_ms"]["median"] / result["torch_encoder_ms"]["median"],
              "overhead_encoder": result["encoder"]["overhead"],
              "overhead_decoder_step": result["decoder_step"]["overhead"],
              "round_trip_overhead_encoder": result["encoder"]["round_trip_overhead"],
              "round_trip_overhead_decoder_step": result["decoder_step"]["round_trip_overhead"]}
    goals = {"overhead_encoder": ratios["overhead_encoder"] <= GOAL_OVERHEAD,
             "overhead_decoder_step": ratios["overhead_decoder_step"] <= GOAL_OVERHEAD}
    save(TAG, {"model": args.model, "seconds": args.seconds, "result": result, "ratios": ratios, "goals": goals},
         gate=gate, started=started)
    print({k: round(v, 4) for k, v in ratios.items()}, goals, file=sys.stderr)


if __name__ == "__main__":
    main()
