"""Scaling table: how the tool's cost grows with model size and clip length, and which step dominates.

Models: the bundled demo (368 k params), conformer-120m (116 M) and parakeet-0.6b (618 M) - the last two built by
bench/models.py with random weights. Clips: 5, 15 and 60 s of the demo's speech, repeated. Per (model, clip), a
fresh process measures: importing torch + NeMo, NeMo's restore, preparing ONNX Runtime from the artifact cache
(session creation; the first process per model also does the cold export, reported as a cross-check), then each
component exactly as a comparison times it (`runtime.bind` + `timing.measure`, first call, --warmup, median of
--runs): preprocessor (PyTorch; NeMo exports none to ONNX), encoder, one decoder step, and the joint on one
chunk of 32 frames x U (U = 2.5 tokens/s + 1, the random-weight models' own greedy decode is meaningless), on
PyTorch and ONNX Runtime; and the process's peak RSS (VmHWM). Export / conversion cold and cached come from
bench/results/cache.json (bench/cache_hits.py measures them; they do not depend on the clip).

Run:   python bench/scaling.py [--models demo,conformer-120m,parakeet-0.6b] [--seconds 5,15,60] [--runs 5]
Takes: ~1 min per demo clip, ~2 min per conformer-120m clip, ~3-4 min per parakeet-0.6b clip (~20 min total).
Writes bench/results/scaling.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    RESULTS,
    add_load_options,
    child_env,
    emit,
    gated,
    model_path,
    peak_rss_mib,
    rss_mib,
    run_child,
    save,
    speech_like,
)

TOKENS_PER_S = 2.5
JOINT_CHUNK = 32


def child(model: str, seconds: float, runs: int, warmup: int) -> None:
    start = time.perf_counter()
    import nemo.collections.asr  # noqa: F401
    import torch  # noqa: F401 - timed: the first thing a restore pays for

    import_s = time.perf_counter() - start
    import numpy as np

    from rnnt_tui.core.checkpoint import restore
    from rnnt_tui.core.fuse import VALIDATION, fuse_mode_of
    from rnnt_tui.core.runtimes.onnx_runtime import OnnxRuntime
    from rnnt_tui.core.runtimes.torch_runtime import TorchRuntime
    from rnnt_tui.core.timing import measure
    from rnnt_tui.paths import cache_dir

    loaded = restore(model_path(model), cache_dir=cache_dir())
    fuse_mode_of(loaded.model).set(VALIDATION)
    rss_restored = rss_mib()
    ref = TorchRuntime(loaded)
    ref.prepare()
    onnx = OnnxRuntime(loaded)
    prep = onnx.prepare()
    onnx_report = {"cached": prep[0].cached, "prepare_ms": prep[0].prepare_ms,
                   "load_ms": sum({r.load_ms or 0.0 for r in prep})}
    signal = speech_like(seconds)[None, :]
    audio = {"audio_signal": signal, "length": np.array([signal.shape[1]], dtype=np.int64)}
    timings: dict[str, dict[str, Any]] = {}

    def timed(component: str, runtime: Any, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        bound = runtime.bind(component, inputs)
        raw, t = measure(bound, runs=runs, warmup=warmup)
        timings.setdefault(component, {})[runtime.name] = {"first_ms": t.first_ms, "median_ms": t.median_ms,
                                                           "p90_ms": t.p90_ms}
        return bound.outputs(raw)

    features = timed("preprocessor", ref, audio)
    encoded = timed("encoder", ref, features)
    timed("encoder", onnx, features)
    blank = loaded.summary.blank_id
    h, c = (np.asarray(x) for x in (onnx.initial_state()))
    dec_inputs = {"targets": np.array([[blank]], dtype=np.int64), "h": h, "c": c}
    timed("decoder", ref, dec_inputs)
    timed("decoder", onnx, dec_inputs)
    steps = round(TOKENS_PER_S * seconds) + 1
    rng = np.random.default_rng(0)
    targets = [blank, *rng.integers(0, blank, steps - 1).tolist()]
    outs = []
    for token in targets:
        out = ref.run("decoder", {"targets": np.array([[token]], dtype=np.int64), "h": h, "c": c})
        h, c = out["h"], out["c"]
        outs.append(out["decoder_output"])
    frames = int(encoded["encoded"].shape[2])
    joint_inputs = {"encoded": encoded["encoded"][:, :, :JOINT_CHUNK], "decoder_output": np.concatenate(outs, axis=2),
                    "targets": np.array([targets], dtype=np.int64)}
    timed("joint", ref, joint_inputs)
    timed("joint", onnx, joint_inputs)
    emit({"model": model, "seconds": seconds, "import_s": import_s, "restore_s": loaded.restore_s,
          "rss_after_restore_mib": rss_restored, "peak_rss_mib": peak_rss_mib(), "onnx_prepare": onnx_report,
          "T": frames, "U": steps, "timings": timings, "params": sum(p.numel() for p in loaded.model.parameters())})


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.1f} ms" if ms >= 1 else f"{ms * 1000:.0f} µs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="demo,conformer-120m,parakeet-0.6b")
    parser.add_argument("--seconds", default="5,15,60")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    add_load_options(parser)
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], float(args.child[1]), args.runs, args.warmup)
        return
    started, gate = gated(args)
    cache_doc = json.loads((RESULTS / "cache.json").read_text()) if (RESULTS / "cache.json").is_file() else None
    rows = []
    for model in args.models.split(","):
        model_path(model)
        env = child_env(f"scaling-{model}")
        for seconds in (float(s) for s in args.seconds.split(",")):
            res = run_child(Path(__file__).resolve(), [model, str(seconds), "--runs", str(args.runs),
                                                       "--warmup", str(args.warmup)], env=env, timeout=7200)
            rows.append(res)
            t = res["timings"]
            print(f"{model} {seconds:g} s: restore {res['restore_s']:.1f} s, encoder torch "
                  f"{fmt_ms(t['encoder']['pytorch']['median_ms'])} / onnx {fmt_ms(t['encoder']['onnx']['median_ms'])},"
                  f" peak RSS {res['peak_rss_mib'] / 1024:.2f} GiB", file=sys.stderr)
    prepare: dict[str, Any] = {}
    if cache_doc is not None:
        for model, info in cache_doc["models"].items():
            prepare[model] = {r: {"cold_ms": v["cold_prepare_ms"]["median"], "hit_ms": v["hit_prepare_ms"]["median"],
                                  "load_ms_warm": v["load_ms_warm"]["median"]} for r, v in info["runtimes"].items()}
    table = []
    for r in rows:
        t = r["timings"]
        entry = {"model": r["model"], "seconds": r["seconds"], "T": r["T"], "U": r["U"],
                 "import_s": round(r["import_s"], 2), "restore_s": round(r["restore_s"], 2),
                 "onnx_session_load_ms": round(r["onnx_prepare"]["load_ms"], 1),
                 "peak_rss_gib": round(r["peak_rss_mib"] / 1024, 2)}
        for component, per in t.items():
            for runtime, v in per.items():
                entry[f"{component}_{runtime}_ms"] = round(v["median_ms"], 3)
        table.append(entry)
    save("scaling", {"summary": {"table": table, "prepare_from_cache_json": prepare,
                                 "cache_json_date": cache_doc["date"] if cache_doc else None},
                     "rows": rows, "runs": args.runs, "warmup": args.warmup, "joint_chunk": JOINT_CHUNK,
                     "tokens_per_s": TOKENS_PER_S}, gate, started)
    for entry in table:
        print(entry)


if __name__ == "__main__":
    main()
