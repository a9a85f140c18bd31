"""Per-chunk candidate latency of the streaming comparison at Parakeet-streaming dims (random weights).

Builds (once, into bench/.models/, gitignored) a cache-aware FastConformer-Transducer with the dims of NeMo's
`stt_en_fastconformer_hybrid_large_streaming_*` checkpoints: 17 layers, d_model 512, 8 heads, 80 mels, dw_striding
8x with causal downsampling, conv kernel 9, a 1-layer LSTM 640 prediction net, joint 640, att_context_size
[70, 13] (its char vocabulary is smaller than those models' 1024 BPE pieces, so the joint is cheaper than theirs).
Then runs the real streaming comparison (`core.stream.compare.StreamSession`) against the candidate on --seconds
of the bundled speech clips, and reports per chunk: the candidate's streaming step, its step + decode, NeMo's
`conformer_stream_step` (encoder + decode), against the chunk's audio (the real-time margin) and the algorithmic
latency ((right + 1) encoder frames). The step's build (ONNX export / Core ML conversion) is outside the figures.

`--cache-states both` prepares the explicit-cache step and the one with its caches in states (`stream
--cache-states`: Core ML states with mil, Core AI states with coreai) and compares them in one run, alternated
`--rounds` times on the same clip: per variant the step's figures, and the ratio of their medians (states /
explicit), so a porter sees what carrying the caches in the runtime's states costs or saves per chunk.

Run:   OMP_NUM_THREADS=1 python bench/stream_latency.py [--seconds 20] [--against onnx|mil|coreai]
       [--cache-states no|yes|both] [--rounds 2] [--tag NAME]
Writes bench/results/stream_latency.json (or TAG.json).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import MODELS, REPO, save, speech_like, ungated

sys.path.insert(0, str(REPO / "tests"))

import factory  # tests/ is not a package

NAME = "parakeet-streaming"
DIMS = factory.Dims(n_mels=80, d_model=512, n_layers=17, n_heads=8, subsampling="dw_striding", subsampling_factor=8,
                    conv_kernel_size=9, pred_hidden=640, pred_rnn_layers=1, joint_hidden=640)
CONTEXT = [70, 13]


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": round(statistics.median(ordered), 2), "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 2),
            "max": round(ordered[-1], 2)}


def _figures(result: Any) -> dict[str, Any]:
    """A run's per-chunk figures (the steady-state chunks: the first and the last are shorter)."""
    context = result.contexts[0]
    full = [c for c in context.chunks if c.audio_s > 0][1:-1]
    step = [c.candidate_step_ms for c in full]
    audio_ms = 1000 * statistics.median(c.audio_s for c in full)
    return {"candidate": result.candidate_label, "caches_carried_in": result.caches_carried_in,
            "chunks": len(context.chunks), "chunk_audio_ms": round(audio_ms, 1),
            "algorithmic_latency_ms": context.latency_ms, "candidate_step_ms": _stats(step),
            "candidate_step_and_decode_ms": _stats([c.candidate_ms for c in full]),
            "nemo_stream_step_ms": _stats([c.reference_ms for c in full]),
            "candidate_real_time_factor": round(statistics.median(step) / audio_ms, 4),
            "max_drift_free_running": context.max_drift, "identical_transcript": context.ok, "step_ms": step}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--against", default="onnx", choices=("onnx", "mil", "coreai"))
    ap.add_argument("--cache-states", default="no", choices=("no", "yes", "both"))
    ap.add_argument("--rounds", type=int, default=1, help="Comparisons per variant, alternated (with both).")
    ap.add_argument("--tag", default="stream_latency", help="Results file name (bench/results/TAG.json).")
    args = ap.parse_args()
    started, gate = ungated()

    import soundfile as sf
    import torch

    torch.set_num_threads(1)
    from rnnt_tui.core.checkpoint import restore
    from rnnt_tui.core.quiet import quiet
    from rnnt_tui.core.stream.compare import StreamSession
    from rnnt_tui.core.stream.config import StreamRequest

    ckpt = MODELS / f"{NAME}.nemo"
    if not ckpt.is_file():
        began = time.perf_counter()
        with quiet():
            factory.build_streaming(ckpt, DIMS, att_context_size=[CONTEXT])
        print(f"built {ckpt} in {time.perf_counter() - began:.1f} s", file=sys.stderr)
    variants = {"no": [False], "yes": [True], "both": [False, True]}[args.cache_states]
    runs: dict[bool, list[dict[str, Any]]] = {v: [] for v in variants}
    prepare_s: dict[bool, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "speech.wav"
        sf.write(str(clip), speech_like(args.seconds), 16000)
        loaded = restore(ckpt)
        params = sum(p.numel() for p in loaded.model.parameters())
        sessions = {}
        try:
            for states in variants:
                began = time.perf_counter()
                sessions[states] = StreamSession(StreamRequest(ckpt, clip, args.against, cache_states=states),
                                                 lambda e: None, loaded=loaded)
                prepare_s[states] = round(time.perf_counter() - began, 1)
            for _ in range(args.rounds):
                for states in variants:
                    runs[states].append(_figures(sessions[states].compare(clip)))
        finally:
            for session in sessions.values():
                session.close()
    label = {False: "explicit", True: "states"}
    payload: dict[str, Any] = {
        "model": {"name": NAME, "params": params, "dims": DIMS.__dict__, "att_context_size": CONTEXT},
        "against": args.against, "clip_s": args.seconds, "rounds": args.rounds,
        "prepare_s": {label[v]: s for v, s in prepare_s.items()},
        "variants": {label[v]: {**{k: x for k, x in r[0].items() if k != "step_ms"},
                                "candidate_step_ms": _stats([ms for one in r for ms in one["step_ms"]]),
                                "per_round_step_median_ms": [one["candidate_step_ms"]["median"] for one in r]}
                     for v, r in runs.items()},
        "note": "random weights (the transcript is not words); machine shared with other engineers"}
    if len(variants) == 2:
        medians = {v: statistics.median(ms for one in runs[v] for ms in one["step_ms"]) for v in variants}
        payload["states_over_explicit_step_median"] = round(medians[True] / medians[False], 3)
    print({k: v for k, v in payload.items() if k != "model"})
    save(args.tag, payload, gate, started)


if __name__ == "__main__":
    main()
