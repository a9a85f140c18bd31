"""The live per-context rows of `corpus --stream`: what keeping them up to date costs per utterance, as a run grows.

After every utterance the corpus runner sends the headline with the per-att-context rows
(`core.corpus.streaming`). A fresh child process per checkout (`--src A,B`, alternating A/B/A/B) builds N
synthetic streaming records (two contexts, text scored with the corpus's own WER library; no NeMo) and times,
utterance by utterance, what that checkout's runner does for the rows: `StreamTotals.add` + `rows()` where the
checkout has it (incremental), else `stream_rows` over every record so far (the rebuild it replaced). Reported:
the milliseconds per utterance at the last 10 % of the run and the total over the run. Generating the records is
not timed.

Run:   python bench/stream_totals.py --src /work/main,. [--utterances 2000] [--rounds 2]
Takes: ~1 min at 2000 utterances (the rebuild is quadratic).
Writes bench/results/stream_totals.json.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from common import emit, run_child, save, spread, ungated

WORDS = ["hello", "world", "the", "quick", "brown", "fox", "core", "ml", "on", "a", "mac"]


def _records(n: int) -> list[Any]:
    from rnnt_tui.core.corpus.metrics import score
    from rnnt_tui.core.corpus.records import OK, UtteranceRecord

    rng = random.Random(0)

    def sentence() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))

    out = []
    for i in range(n):
        text = sentence()
        stream = []
        for context in ([70, 13], [70, 0]):
            ref, cand, off = sentence(), sentence(), sentence()
            stream.append({
                "att_context_size": context, "latency_ms": 80.0 * (context[1] + 1), "ok": True,
                "identical": ref == cand, "streaming_equals_offline": ref == off,
                "max_drift_free_running": rng.random(), "max_step_error_teacher_forced": rng.random(),
                "vs_streaming": score(ref, cand).words.to_json(), "vs_offline": score(off, cand).words.to_json(),
                "streaming_vs_offline": score(off, ref).words.to_json(),
                "text_scores": {"reference": score(text, ref).to_json(), "candidate": score(text, cand).to_json(),
                                "nemo_offline": score(text, off).to_json()}})
        out.append(UtteranceRecord(uid=f"u{i}", index=i, line=i + 1, audio=f"{i}.wav", text=text, status=OK,
                                   stream=stream))
    return out


def child(n: int, src: str) -> None:
    sys.path.insert(0, src)  # before the bench's own checkout (`common` puts it first)
    from rnnt_tui.core.corpus import streaming

    records = _records(n)
    incremental = hasattr(streaming, "StreamTotals")
    per: list[float] = []
    if incremental:
        totals = streaming.StreamTotals()
        for record in records:
            start = time.perf_counter()
            totals.add(record)
            totals.rows()
            per.append(time.perf_counter() - start)
    else:
        for k in range(1, n + 1):
            start = time.perf_counter()
            streaming.stream_rows(records[:k])
            per.append(time.perf_counter() - start)
    tail = per[-max(1, n // 10):]
    emit({"mode": "incremental" if incremental else "rebuild", "module": streaming.__file__,
          "ms_per_utterance_last_10pct": 1000 * sum(tail) / len(tail), "total_s": sum(per)})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--src", default=".", help="checkouts to measure, comma-separated (alternated)")
    parser.add_argument("--utterances", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if args.child:
        child(args.utterances, args.src)
        return
    started, gate = ungated()
    sources = [str(Path(s).resolve()) for s in args.src.split(",")]
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in sources}
    for _ in range(args.rounds):
        for src in sources:
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            runs[src].append(run_child(Path(__file__), ["--src", src, "--utterances", str(args.utterances)], env))
            print(src, runs[src][-1], file=sys.stderr)
    results = {src: {"mode": r[0]["mode"],
                     "ms_per_utterance_last_10pct": spread([x["ms_per_utterance_last_10pct"] for x in r]),
                     "total_s": spread([x["total_s"] for x in r])} for src, r in runs.items()}
    save("stream_totals", {"utterances": args.utterances, "results": results}, gate, started)


if __name__ == "__main__":
    main()
