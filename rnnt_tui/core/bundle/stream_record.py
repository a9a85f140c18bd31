"""`record --stream`: NeMo's chunked (cache-aware) reference and the candidates' streaming steps, into a bundle.

Called by `core.bundle.record.record` before the bundle is sealed, on the model it restored and each clip's samples
as the model saw them (one clip, or every usable clip of a manifest: a corpus). For each att context asked for,
NeMo's own loop (`core.stream.reference.nemo_chunks`) runs once per clip and per chunk stores what the comparison's
chunk loop reads: the features fed, the caches going in (the first chunk's; later ones are the previous chunk's
out) and coming out, the encoder output (its valid frames), the cut (length, drop_extra_pre_encoded,
keep_all_outputs, start and audio seconds), the tokens so far and NeMo's compute time; and once per clip the
offline tokens at that context; once per context the streaming_cfg and the algorithmic latency. The streaming
steps (`core.stream.steps`: NeMo's ONNX export with cache support, the Core ML programs the MIL interpreter runs)
are copied in from the artifact cache once per context, so `replay --against onnx|mil` runs the same comparison on
every clip with no NeMo (and `--against coreml` on a Mac: Core ML predicts the same packages). With `cache_states`
(`record --stream --cache-states`) the stateful Core ML programs (`core.stream.state_step`: the two float caches in
Core ML states) are recorded too, under `steps` key `STATES_STEP`, for `replay --against mil|coreml --cache-states`.
With `coreai` (`record --stream --convert coreai`) the Core AI step too (`CORE_AI_STEP`; and `CORE_AI_STATES_STEP`
with `cache_states`), for `replay --against coreai [--cache-states]`.

bundle.json `stream` (STREAM_FORMAT 3): {format, att_context, sample_rate, contexts: [{att_context_size,
streaming_cfg, latency_ms, steps: {onnx|mil[|mil-states|coreai|coreai-states]: folder}, clips: [{clip,
offline_tokens, offline (how they were made, `OfflineHow`; absent: one pass), chunks: [{index, length,
drop_extra_pre_encoded, keep_all_outputs, start_s, audio_s, encoded_length, tokens, compute_ms, arrays: {role: array
name}}]}]}]}; `clip` is the index into bundle.json `clips`. A bundle is written as format 3 only when it holds the
stateful Core ML step, which is now one multifunction package (an older rnnt-tui, expecting a package per phase,
then says to upgrade rather than failing on a missing package); otherwise as 2, which every reader since takes.
Format 1 (one clip: `offline_tokens` and `chunks` on the context) is still read (`core.bundle.stream_replay`).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from rnnt_tui.core.bundle.format import BundleWriter
from rnnt_tui.core.progress import Progress

if TYPE_CHECKING:
    from rnnt_tui.core.checkpoint import LoadedModel

STREAM_FORMAT = 3
#: what a bundle without the multifunction stateful step is written as (readable by rnnt-tui since format 2)
STREAM_FORMAT_PLAIN = 2
STREAM_CANDIDATES = ("onnx", "mil")
#: the `steps` key of the stateful programs (`record --stream --cache-states`)
STATES_STEP = "mil-states"
#: the `steps` keys of the Core AI steps (`record --stream --convert coreai`; the stateful one with --cache-states)
CORE_AI_STEP, CORE_AI_STATES_STEP = "coreai", "coreai-states"
STATE_KEYS = (STATES_STEP, CORE_AI_STATES_STEP)


def add_stream(writer: BundleWriter, loaded: LoadedModel, clips: list[tuple[np.ndarray, int]],
               att_context: str | None, progress: Progress, cancel: threading.Event | None,
               cache_states: bool = False, coreai: bool = False) -> dict[str, Any]:
    """Record NeMo's chunked reference on every clip (samples, sample rate) at every context asked for, and each
    candidate's streaming step (the Core AI step too with `coreai`; with `cache_states` the stateful Core ML step,
    and the stateful Core AI step with `coreai`)."""
    from rnnt_tui.core.errors import CancelledError
    from rnnt_tui.core.stream.config import choose_contexts, states_kind
    from rnnt_tui.core.stream.reference import CACHE_NAMES, NemoStream, set_context
    from rnnt_tui.core.stream.step_kinds import STATE_STEPS, STEPS

    reference = NemoStream(loaded)
    model = reference.model
    if getattr(model, "cur_decoder", "rnnt") != "rnnt":
        model.change_decoding_strategy(decoder_type="rnnt", verbose=False)
    default = [int(x) for x in model.encoder.att_context_size]
    contexts = choose_contexts(loaded.path, model.encoder, att_context)
    out: list[dict[str, Any]] = []
    try:
        for context in contexts:
            name = f"{context[0]}_{context[1]}"
            reference.begin(context)
            recorded = []
            for clip, (samples, sample_rate) in enumerate(clips):
                chunks = []
                for ref in reference.chunks(samples, sample_rate):
                    if cancel is not None and cancel.is_set():
                        raise CancelledError("cancelled while recording the streaming reference")
                    prefix = f"stream/{name}/{clip}/{ref.index}"
                    arrays = {"features": writer.array(f"{prefix}/features", ref.features),
                              "encoded": writer.array(f"{prefix}/encoded", ref.encoded[:, :, : ref.encoded_length])}
                    if ref.index == 0:
                        arrays.update({f"in.{n}": writer.array(f"{prefix}/in.{n}", ref.caches_in[n])
                                       for n in CACHE_NAMES})
                    arrays.update({f"out.{n}": writer.array(f"{prefix}/out.{n}", ref.caches_out[n])
                                   for n in CACHE_NAMES})
                    chunks.append({"index": ref.index, "length": ref.length,
                                   "drop_extra_pre_encoded": ref.drop_extra_pre_encoded,
                                   "keep_all_outputs": ref.keep_all_outputs, "start_s": ref.start_s,
                                   "audio_s": ref.audio_s, "encoded_length": ref.encoded_length, "tokens": ref.tokens,
                                   "compute_ms": ref.compute_ms, "arrays": arrays})
                offline = reference.offline(samples)
                recorded.append({"clip": clip, "offline_tokens": offline.tokens, "offline": offline.how.to_json(),
                                 "chunks": chunks})
                progress(f"att context {context}, clip {clip + 1}/{len(clips)}: {len(chunks)} chunks recorded", None)
            steps = {}
            kinds = [(against, STEPS[against]) for against in STREAM_CANDIDATES]
            kinds += [(CORE_AI_STEP, STEPS["coreai"])] if coreai else []
            kinds += [(STATES_STEP, STATE_STEPS["mil"])] if cache_states else []
            kinds += [(CORE_AI_STATES_STEP, STATE_STEPS["coreai"])] if cache_states and coreai else []
            for key, kind in kinds:
                step = kind(loaded, context, True)
                progress(f"{step.label}: the streaming step for att context {context}"
                         + (f" (caches in {states_kind(step.name)})" if key in STATE_KEYS else ""), None)
                step.prepare(progress, cancel)
                assert step.path is not None
                rel = f"stream/steps/{key}/{name}"
                for path in sorted(step.path.iterdir()):
                    writer.copy_tree(f"{rel}/{path.name}", path)
                steps[key] = rel
            out.append({"att_context_size": context, "streaming_cfg": reference.streaming_cfg(),
                        "latency_ms": reference.latency_ms(context), "steps": steps, "clips": recorded})
    finally:
        set_context(model, default)
    return {"format": STREAM_FORMAT if cache_states else STREAM_FORMAT_PLAIN, "att_context": att_context or "default",
            "sample_rate": clips[0][1] if clips else 16000, "contexts": out}
