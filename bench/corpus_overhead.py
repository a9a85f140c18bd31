"""Corpus-run overhead and memory: is a corpus run the two runtimes' own compute plus little else, and flat in RSS?

A fresh child process runs `run_corpus` (the real runner: results.jsonl appended and fsync'd per utterance,
aggregates, reports at the end) against ONNX Runtime on a manifest that repeats the bundled test corpus
(assets/demo/corpus, 12 clips of 1.3-3.3 s) up to --utterances entries. Every call into either runtime is timed
by wrapping the runtime objects' entry points (`bind`, the bound call and its output conversion, `decoder_step`,
`joint_step`; nested calls counted once) and NeMo's own greedy decode (the reference check), so

    overhead ratio = wall time of the utterance loop (first utterance started -> reports written)
                     / (reference runtime + candidate runtime + NeMo's decode) compute

and everything else (statistics, text metrics, records, I/O, fsync, aggregates, reports) is the difference.
Goal: <= 1.15. RSS (VmRSS) is read after every utterance; goal: after utterance 200 within 10 % of after
utterance 20. `--threads N` sets torch's intra-op threads in the child (recorded; on a shared, loaded 2-core
machine torch's default of 2 spinning threads is 10-50x slower on the demo model, which only inflates both sides).

Run:   python bench/corpus_overhead.py [--models demo,conformer-120m] [--utterances 204] [--threads 1] [--tag T]
Takes: ~3-5 min for the demo at 204 utterances; the 116 M model ~1-2 s per utterance more.
Writes bench/results/corpus_overhead.json (a model measured earlier keeps its entry unless measured again).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import (
    RESULTS,
    WORK,
    add_load_options,
    child_env,
    emit,
    gated,
    loadavg,
    model_path,
    rss_mib,
    run_child,
    save,
    spread,
)


class Meter:
    """Seconds spent inside one side's runtime calls (outermost calls only)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._depth = 0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._depth += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.seconds += time.perf_counter() - start
                    self.calls += 1

        return timed


class _MeteredCall:
    """A runtime's BoundCall whose call and output conversion are metered."""

    def __init__(self, bound: Any, meter: Meter) -> None:
        self._call = meter.wrap(bound.__call__)
        self.outputs = meter.wrap(bound.outputs)

    def __call__(self) -> Any:
        return self._call()


def meter_runtime(runtime: Any, meter: Meter) -> None:
    bind = runtime.bind

    def metered_bind(component: str, inputs: Any) -> Any:
        return _MeteredCall(meter.wrap(bind)(component, inputs), meter)

    runtime.bind = metered_bind
    for name in ("decoder_step", "joint_step"):
        setattr(runtime, name, meter.wrap(getattr(runtime, name)))


def manifest_of(n: int, folder: Path) -> Path:
    """A manifest of `n` entries cycling through the bundled test corpus (absolute paths)."""
    from rnnt_tui.core.corpus import demo_manifest

    source = demo_manifest()
    entries = [json.loads(line) for line in source.read_text().splitlines()]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"manifest-{n}.json"
    lines = []
    for i in range(n):
        entry = dict(entries[i % len(entries)])
        entry["audio_filepath"] = str(source.parent / entry["audio_filepath"])
        lines.append(json.dumps(entry))
    path.write_text("\n".join(lines) + "\n")
    return path


def child(model: str, utterances: int, threads: int) -> None:
    import shutil

    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    from rnnt_tui.core.corpus.runner import CORPUS_SETTINGS, CorpusRequest, UtteranceFinished, run_corpus
    from rnnt_tui.core.pipeline.pipeline import Pipeline
    from rnnt_tui.core.pipeline.request import Request

    work = WORK / "corpus_overhead"
    manifest = manifest_of(utterances, work)
    out = work / f"out-{model}"
    shutil.rmtree(out, ignore_errors=True)
    first_clip = Path(json.loads(manifest.read_text().splitlines()[0])["audio_filepath"])
    pipe = Pipeline()
    started = time.perf_counter()
    pipe.open(Request(model_path(model), first_clip, "onnx", settings=CORPUS_SETTINGS))
    open_s = time.perf_counter() - started
    reference, candidate, nemo = Meter(), Meter(), Meter()
    assert pipe.reference is not None and pipe.candidate is not None and pipe.facts is not None
    meter_runtime(pipe.reference, reference)
    meter_runtime(pipe.candidate, candidate)
    pipe.facts.nemo_greedy = nemo.wrap(pipe.facts.nemo_greedy)  # type: ignore[method-assign]
    rss: list[float] = []
    per_utt: list[dict[str, float]] = []
    last = [0.0, 0.0, 0.0]
    loop_start = time.perf_counter()
    mark = loop_start
    request = CorpusRequest(model_path(model), manifest, "onnx", out)
    for event in run_corpus(request, threading.Event(), pipeline=pipe):
        if isinstance(event, UtteranceFinished):
            now = time.perf_counter()
            spent = [reference.seconds, candidate.seconds, nemo.seconds]
            per_utt.append({"wall_s": now - mark, "reference_s": spent[0] - last[0],
                            "candidate_s": spent[1] - last[1], "nemo_s": spent[2] - last[2],
                            "audio_s": event.record.duration_s or 0.0})
            last, mark = spent, now
            rss.append(rss_mib())
    wall = time.perf_counter() - loop_start
    compute = reference.seconds + candidate.seconds + nemo.seconds
    report = json.loads((out / "report.json").read_text())
    pipe.close()
    emit({"model": model, "utterances": utterances, "threads": torch.get_num_threads(), "open_s": open_s,
          "wall_s": wall, "reference_s": reference.seconds, "candidate_s": candidate.seconds,
          "nemo_decode_s": nemo.seconds, "calls": {"reference": reference.calls, "candidate": candidate.calls},
          "overhead_ratio": wall / compute, "rss_mib": rss, "per_utterance": per_utt,
          "summary": {k: report["summary"][k] for k in ("evaluated", "errors", "failed", "wer", "identical", "rtfx")}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="demo")
    parser.add_argument("--utterances", type=int, default=204)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads in the child (0: default)")
    add_load_options(parser)
    parser.add_argument("--tag", default="corpus_overhead", help="result file name (bench/results/TAG.json)")
    parser.add_argument("--child", nargs=3, metavar=("MODEL", "N", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]))
        return
    started, gate = gated(args)
    results: dict[str, Any] = {}
    for model in args.models.split(","):
        n = args.utterances
        print(f"{model}: {n} utterances…", file=sys.stderr)
        raw = run_child(Path(__file__), [model, str(n), str(args.threads)], env=child_env("corpus_overhead"),
                        timeout=6 * 3600)
        rss = raw["rss_mib"]
        at20, at200 = (rss[19] if len(rss) >= 20 else None), (rss[199] if len(rss) >= 200 else None)
        walls = [u["wall_s"] for u in raw["per_utterance"]]
        ratios = [u["wall_s"] / max(u["reference_s"] + u["candidate_s"] + u["nemo_s"], 1e-9)
                  for u in raw["per_utterance"]]
        results[model] = {**{k: v for k, v in raw.items() if k not in ("per_utterance",)},
                          "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_at_end": loadavg(),
                          "rss_after_20_mib": at20, "rss_after_200_mib": at200,
                          "rss_growth_20_to_200": (at200 / at20 - 1) if at20 and at200 else None,
                          "per_utterance_wall_s": spread(walls), "per_utterance_ratio": spread(ratios),
                          "per_utterance": raw["per_utterance"]}
        r = results[model]
        print(f"{model}: overhead ratio {r['overhead_ratio']:.3f} (wall {r['wall_s']:.1f} s, reference "
              f"{r['reference_s']:.1f} s, candidate {r['candidate_s']:.1f} s, NeMo decode {r['nemo_decode_s']:.1f} s); "
              f"RSS {at20} -> {at200} MiB", file=sys.stderr)
    goals = {"overhead_ratio_max": 1.15, "rss_growth_max": 0.10}
    previous = RESULTS / f"{args.tag}.json"
    if previous.is_file():  # models measured by earlier invocations stay, each with its own date and load
        results = {**json.loads(previous.read_text()).get("results", {}), **results}
    save(args.tag, {"goals": goals, "results": results}, gate=gate, started=started)


if __name__ == "__main__":
    main()
