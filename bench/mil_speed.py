"""MIL interpreter speed and memory: the Parakeet-dims encoder on a 60 s clip, the interpreter running the tool's
own fp32 Core ML package vs PyTorch running the module it was converted from (the same call, same machine, one run).

How: a first child restores bench/.models/parakeet-0.6b.nemo (random weights), converts its encoder to an fp32
ML program (cached under bench/.work/mil_speed/) and saves the 60 s clip's features (the PyTorch preprocessor on
`speech_like(60)`). Then fresh children alternate: `torch` (restore, `EncoderWrapper(encoder)` under no_grad) and
`mil` (`MilProgram.load` — load + plan — then `run`). Each does a warm-up call and `--runs` timed calls; memory is
the peak extra RSS of a call (VmHWM reset just before it, minus the RSS just before it; max over the calls), so
numpy's, BLAS's and torch's native allocations all count. The children also check that the two outputs agree.

The time ratio is the median over rounds of (mil median / torch median) of the same round, so a load change
between rounds does not skew it. Goals (issue 12): interpreter time <= 2x PyTorch's; plan building <= 10 % of one
call; peak extra RSS <= 1.5x PyTorch's. Never part of CI (the model is 2.5 GB; the conversion takes minutes and
~10 GB of RAM).

Run:   python bench/mil_speed.py [--seconds 60] [--runs 3] [--rounds 2] [--max-load 1.5 --wait 0]
Writes bench/results/mil_speed.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    WORK,
    add_load_options,
    child_env,
    emit,
    gated,
    loadavg,
    median,
    model_path,
    peak_rss_mib,
    reset_peak_rss,
    rss_mib,
    run_child,
    save,
    speech_like,
    spread,
)

MODEL = "parakeet-0.6b"
TAG = "mil_speed"
GOALS = {"time_ratio": 2.0, "plan_fraction": 0.10, "memory_ratio": 1.5}


def _measure(call: Any, runs: int) -> dict[str, Any]:
    """Warm-up once, then `runs` timed calls; per call its seconds and peak extra RSS (MiB)."""
    out = call()
    times, extra = [], []
    for _ in range(runs):
        before = rss_mib()
        reset_peak_rss()
        start = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - start)
        extra.append(peak_rss_mib() - before)
    return {"out": out, "seconds": times, "extra_mib": extra}


def child_prepare(seconds: float) -> None:
    import numpy as np
    import torch

    from rnnt_tui.core.checkpoint import restore
    from rnnt_tui.core.coreml.convert import convert_components

    loaded = restore(model_path(MODEL))
    model = loaded.eval()
    audio = torch.from_numpy(speech_like(seconds))[None, :]
    with torch.no_grad():
        feats, length = model.preprocessor(input_signal=audio, length=torch.tensor([audio.shape[1]]))
    np.save(WORK / TAG / "features.npy", feats.numpy().astype(np.float32))
    np.save(WORK / TAG / "length.npy", length.numpy().astype(np.int32))
    start = time.perf_counter()
    package = convert_components(loaded, precision="fp32", components=("encoder",))[0]
    emit({"package": str(package.path), "cached": package.cached, "convert_s": time.perf_counter() - start,
          "features_shape": list(feats.shape)})


def child_torch(runs: int) -> None:
    import numpy as np
    import torch

    from rnnt_tui.core.checkpoint import restore
    from rnnt_tui.core.coreml.wrappers import EncoderWrapper

    loaded = restore(model_path(MODEL))
    wrapper = EncoderWrapper(loaded.eval().encoder).eval()
    feats = torch.from_numpy(np.load(WORK / TAG / "features.npy"))
    length = torch.from_numpy(np.load(WORK / TAG / "length.npy"))

    def call() -> Any:
        with torch.no_grad():
            return wrapper(feats, length)[0].numpy()

    got = _measure(call, runs)
    np.save(WORK / TAG / "torch_encoded.npy", got.pop("out"))
    emit({"threads": torch.get_num_threads(), **got})


def child_mil(package: str, runs: int) -> None:
    import numpy as np

    from rnnt_tui.core.mil import MilProgram

    start = time.perf_counter()
    program = MilProgram.load(Path(package))
    load_s = time.perf_counter() - start
    feeds = {"features": np.load(WORK / TAG / "features.npy"),
             "features_length": np.load(WORK / TAG / "length.npy")}
    got = _measure(lambda: program.run(feeds)["encoded"], runs)
    out = got.pop("out")
    ref_path = WORK / TAG / "torch_encoded.npy"
    diff = float(np.abs(out - np.load(ref_path)).max()) if ref_path.is_file() else None
    emit({"load_s": load_s, "plan_ms": program.plan_ms, "op_count": program.op_count,
          "precision": program.precision, "max_abs_diff_vs_torch": diff, "torch_in_sys_modules":
          "torch" in sys.modules, **got})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2, help="torch/mil child pairs, alternating")
    add_load_options(parser)
    args = parser.parse_args()
    if args.child:
        from rnnt_tui.core.quiet import calm_loggers

        calm_loggers()
        kind, rest = args.child[0], args.child[1:]
        if kind == "prepare":
            child_prepare(float(rest[0]))
        elif kind == "torch":
            child_torch(int(rest[0]))
        else:
            child_mil(rest[0], int(rest[1]))
        return
    started, gate = gated(args)
    env = child_env(TAG)
    (WORK / TAG).mkdir(parents=True, exist_ok=True)
    script = Path(__file__).resolve()
    prepared = run_child(script, ["prepare", str(args.seconds)], env, timeout=7200)
    print(f"prepared: {json.dumps(prepared)}", file=sys.stderr)
    torch_runs: list[dict[str, Any]] = []
    mil_runs: list[dict[str, Any]] = []
    for round_ in range(args.rounds):
        torch_runs.append(run_child(script, ["torch", str(args.runs)], env))
        print(f"round {round_} torch: {median(torch_runs[-1]['seconds']):.2f} s, load {loadavg()}", file=sys.stderr)
        mil_runs.append(run_child(script, ["mil", prepared["package"], str(args.runs)], env))
        print(f"round {round_} mil: {median(mil_runs[-1]['seconds']):.2f} s, load {loadavg()}", file=sys.stderr)
    t_torch = median([s for r in torch_runs for s in r["seconds"]])
    t_mil = median([s for r in mil_runs for s in r["seconds"]])
    m_torch = max(m for r in torch_runs for m in r["extra_mib"])
    m_mil = max(m for r in mil_runs for m in r["extra_mib"])
    plan_s = median([r["plan_ms"] / 1000 for r in mil_runs])
    per_round = [round(median(m["seconds"]) / median(t["seconds"]), 3)
                 for t, m in zip(torch_runs, mil_runs, strict=True)]
    ratios = {"time_ratio": round(median(per_round), 3), "plan_fraction": round(plan_s / t_mil, 4),
              "memory_ratio": round(m_mil / m_torch, 3) if m_torch > 0 else None}
    payload = {
        "model": MODEL, "seconds_of_audio": args.seconds, "package": prepared,
        "torch": {"seconds": spread([s for r in torch_runs for s in r["seconds"]]), "extra_mib_max": round(m_torch, 1),
                  "runs": torch_runs},
        "mil": {"seconds": spread([s for r in mil_runs for s in r["seconds"]]), "extra_mib_max": round(m_mil, 1),
                "plan_s": round(plan_s, 3), "load_s": spread([r["load_s"] for r in mil_runs]), "runs": mil_runs},
        "ratios": ratios, "time_ratio_per_round": per_round, "pooled_time_ratio": round(t_mil / t_torch, 3),
        "goals": GOALS,
        "met": {k: (v is not None and v <= GOALS[k]) for k, v in ratios.items()},
    }
    save(TAG, payload, gate, started)
    print(json.dumps({"ratios": ratios, "met": payload["met"], "torch_s": t_torch, "mil_s": t_mil,
                      "torch_extra_mib": m_torch, "mil_extra_mib": m_mil}, indent=1))


if __name__ == "__main__":
    main()
