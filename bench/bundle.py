"""Bundles: replay overhead against the candidate's own work, and the size of `--joint path` against the whole grid.

1. Replay wall time. A bundle of one demo clip is recorded (with the tool's fp32 conversion and NeMo's ONNX
   export); then, in a fresh process per candidate (mil, onnx), the replay runs as `rnnt-tui replay` runs it -
   open and verify the bundle, prepare the candidate, every step, the report - with the candidate wrapped in a
   timer that adds up its prepare (load) and every call it makes (components, warm-ups and timed runs, the joint
   grid, greedy steps). Figure: replay wall / (candidate load + compute); goal ≤ 1.2. Process start-up and
   imports (coremltools, onnxruntime: the same for `compare`) are reported beside it, not in the ratio. On the
   demo the ONNX candidate's whole work is ~0.7 s, so fixed costs show: most of the overhead is the report's
   `all_versions()` (importlib.metadata reads, ~0.2-0.3 s here, the same in `compare`).
2. Bundle size at Parakeet dims, 60 s clip, computed analytically from the shapes `record` writes (building the
   0.6 B model's recording would need its whole T x U grid in memory and a random-weight decode that emits up to
   max_symbols per frame): T = 751 encoder frames (8x subsampling of 6001 feature frames), C = 1025 logits, U =
   1 + tokens at 2.5 tokens/s (and at 4/s), decode-path cells N = T + tokens (RNNT greedy: one blank per frame plus
   each token). The same size model is checked against the demo bundles' real manifests (arrays' bytes). Goal:
   path ≤ 5 % of full.

Run:   python bench/bundle.py [--reps 3]
Writes bench/results/bundle.json.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from common import WORK, child_env, emit, run_child, save, spread, wait_for_quiet

NPY_HEADER = 128
PARAKEET = {"seconds": 60.0, "rate": 16000, "hop": 160, "n_mels": 128, "subsampling": 8, "d_model": 1024,
            "pred_hidden": 640, "pred_layers": 2, "classes": 1025}


def array_bytes(shape: tuple[int, ...], itemsize: int) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return NPY_HEADER + count * itemsize


def bundle_sizes(samples: int, features: int, frames: int, tokens: int, dims: dict[str, int],
                 path_cells: int | None = None) -> dict[str, int]:
    """Bytes of the arrays `record` writes for one clip, per joint storage (identical arrays stored once)."""
    steps = tokens + 1
    cells = path_cells if path_cells is not None else frames + tokens
    hidden, layers, classes = dims["pred_hidden"], dims["pred_layers"], dims["classes"]
    common = sum([
        array_bytes((1, samples), 4), array_bytes((1,), 8),                       # audio_signal, length
        array_bytes((1, dims["n_mels"], features), 4), array_bytes((1,), 8),      # features, length
        array_bytes((1, dims["d_model"], frames), 4), array_bytes((1,), 8),       # encoded, length
        array_bytes((1, steps), 8), 2 * array_bytes((layers, 1, hidden), 4),      # targets, h0, c0
        array_bytes((1, hidden, steps), 4), 2 * array_bytes((steps, layers, 1, hidden), 4),  # chain g, h, c
        array_bytes((steps,), 8),                                                 # decode tokens (g/h/c = chain)
        array_bytes((cells, 2), 4), array_bytes((cells, classes), 4),             # decode cells, rows
    ])
    path = sum([array_bytes((cells, classes), 4), array_bytes((cells,), 4),       # path logits, argmax
                array_bytes((cells, 5), 4), array_bytes((cells, 5), 4)])          # top-5 ids, values
    return {"common": common, "full": common + array_bytes((1, frames, steps, classes), 4), "path": common + path}


def parakeet_sizes(tokens_per_s: float) -> dict[str, Any]:
    d = PARAKEET
    samples = int(d["seconds"] * d["rate"])
    features = samples // d["hop"] + 1
    frames = -(-features // d["subsampling"])
    tokens = int(tokens_per_s * d["seconds"])
    dims = {"n_mels": d["n_mels"], "d_model": d["d_model"], "pred_hidden": d["pred_hidden"],
            "pred_layers": d["pred_layers"], "classes": d["classes"]}
    sizes = bundle_sizes(samples, features, frames, tokens, dims)
    return {"tokens_per_s": tokens_per_s, "T": frames, "U": tokens + 1, "C": d["classes"],
            "path_cells": frames + tokens, "full_mb": round(sizes["full"] / 1e6, 1),
            "path_mb": round(sizes["path"] / 1e6, 2), "path_over_full": round(sizes["path"] / sizes["full"], 4)}


def measured_sizes(bundle_dir: Path) -> dict[str, Any]:
    """A real bundle's array bytes against what `bundle_sizes` predicts from its shapes."""
    from rnnt_tui.core.bundle.format import Bundle

    bundle = Bundle.open(bundle_dir)
    clip, model = bundle.meta["clips"][0], bundle.meta["model"]
    arr = {role: bundle.array(name, mmap=True) for role, name in clip["arrays"].items()}
    actual = sum(e["bytes"] for e in bundle.manifest["arrays"].values())
    summary = model["summary"]
    dims = {"n_mels": arr["preprocessor.features"].shape[1], "d_model": arr["encoder.encoded"].shape[1],
            "pred_hidden": summary["decoder"]["pred_hidden"], "pred_layers": summary["decoder"]["pred_rnn_layers"],
            "classes": summary["joint"]["num_classes_with_blank"]}
    predicted = bundle_sizes(arr["preprocessor.audio_signal"].shape[1], arr["preprocessor.features"].shape[2],
                             int(arr["encoder.encoded_length"][0]), arr["decoder.targets"].shape[1] - 1, dims,
                             path_cells=arr["decode.cells"].shape[0])[clip["joint"]["storage"]]
    bundle.close()
    return {"storage": clip["joint"]["storage"], "actual_bytes": actual, "predicted_bytes": predicted,
            "predicted_over_actual": round(predicted / actual, 4)}


class _TimedCall:
    """A bound call whose calls count as the candidate's compute (other attributes pass through)."""

    def __init__(self, inner: Any, meter: _Timed) -> None:
        self._inner, self._meter = inner, meter

    def __call__(self) -> Any:
        start = time.perf_counter()
        try:
            return self._inner()
        finally:
            self._meter.compute_s += time.perf_counter() - start

    def outputs(self, raw: Any) -> Any:
        return self._inner.outputs(raw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _Timed:
    """Adds up the wall time a runtime spends in its own calls (prepare, bound calls, runs, greedy steps)."""

    def __init__(self) -> None:
        self.prepare_s = 0.0
        self.compute_s = 0.0

    def wrap(self, runtime: Any) -> Any:
        meter = self

        def timed(fn: Any, field: str) -> Any:
            def call(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    setattr(meter, field, getattr(meter, field) + time.perf_counter() - start)
            return call

        bind = runtime.bind

        def bind_timed(component: str, inputs: Any) -> Any:
            start = time.perf_counter()
            bound = bind(component, inputs)
            meter.compute_s += time.perf_counter() - start
            return _TimedCall(bound, meter)

        runtime.prepare = timed(runtime.prepare, "prepare_s")
        runtime.bind = bind_timed
        for name in ("decoder_step", "joint_step", "initial_state", "decide_step"):
            if hasattr(runtime, name):
                setattr(runtime, name, timed(getattr(runtime, name), "compute_s"))
        return runtime


def child(bundle_dir: str, against: str) -> None:
    started = time.perf_counter()
    from rnnt_tui.core.bundle.replay import Recording, open_recording
    from rnnt_tui.core.options import RuntimeOptions
    from rnnt_tui.core.pipeline.driver import run_steps
    from rnnt_tui.core.pipeline.pipeline import Pipeline
    from rnnt_tui.core.pipeline.request import Request
    from rnnt_tui.core.report import build_report

    if against == "mil":
        import coremltools  # noqa: F401 - imported before the clock, as `compare` would also import it
    else:
        import onnxruntime  # noqa: F401
    imports_s = time.perf_counter() - started
    start = time.perf_counter()
    recording = open_recording(bundle_dir, against)  # as `rnnt-tui replay` opens it
    meter = _Timed()

    class Metered(Recording):
        def candidate(self, name: str, options: RuntimeOptions) -> Any:
            return meter.wrap(super().candidate(name, options))

    recording.__class__ = Metered
    pipeline = Pipeline()
    path = Path(bundle_dir)
    report = build_report(run_steps(pipeline.open(Request(path, path, against), reference=recording)))
    pipeline.close()
    wall_s = time.perf_counter() - start
    assert report["status"] == "ok", report["status"]
    emit({"wall_s": wall_s, "candidate_prepare_s": meter.prepare_s, "candidate_compute_s": meter.compute_s,
          "imports_s": imports_s, "ratio": wall_s / (meter.prepare_s + meter.compute_s)})


def record(out: Path, joint: str, extra: list[str]) -> Path:
    import subprocess

    from rnnt_tui.paths import demo_checkpoint, demo_dir

    if out.exists():
        shutil.rmtree(out)
    subprocess.run([sys.executable, "-m", "rnnt_tui", "record", str(demo_checkpoint()),
                    str(demo_dir() / "the-quick-brown-fox.wav"), "--out", str(out), "--joint", joint, *extra],
                   check=True, env=child_env("bundle"), capture_output=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=2)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    started = time.monotonic()
    gate = wait_for_quiet()
    work = WORK / "bundle"
    full = record(work / "demo-full", "full", ["--convert", "fp32", "--export", "onnx"])
    path = record(work / "demo-path", "path", [])
    replays = {}
    for against in ("mil", "onnx"):
        runs = [run_child(Path(__file__), [str(full), against], env=child_env("bundle")) for _ in range(args.reps)]
        replays[against] = {key: spread([r[key] for r in runs]) for key in runs[0]}
        print(f"{against}: replay / (candidate load + compute) = {replays[against]['ratio']['median']:.3f}",
              file=sys.stderr)
    sizes = {"parakeet_60s": [parakeet_sizes(rate) for rate in (2.5, 4.0)],
             "model_check_on_demo": [measured_sizes(full), measured_sizes(path)]}
    for row in sizes["parakeet_60s"]:
        print(f"Parakeet 60 s at {row['tokens_per_s']} tokens/s: path {row['path_mb']} MB / full {row['full_mb']} "
              f"MB = {100 * row['path_over_full']:.2f} %", file=sys.stderr)
    save("bundle", {"replay": replays, "sizes": sizes,
                    "goals": {"replay_ratio_max": 1.2, "path_over_full_max": 0.05}}, gate, started)


if __name__ == "__main__":
    main()
