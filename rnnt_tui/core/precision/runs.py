"""Running component programs for the precision analyses: the same inputs for the fp32 and the candidate program, a run
with chosen ops computed in fp32, and a greedy decode driven by decoder and joint programs.

Inputs are NeMo's own (`reference_feeds`): the clip's samples, NeMo's features, NeMo's encoder output, the
prediction net's first step (blank, zero state), so a drift is the component's own, not inherited.

`run_with_values` replaces chosen ops' outputs with the fp32 program's values (how hazards are ranked: the error
removed if those ops were exact). `run_with_fp32` emulates "these ops compute in fp32" in the MIL interpreter: their
outputs are not rounded to fp16 (the interpreter's fp16 ops compute in fp32 and round their outputs, so leaving the
rounding out is what an fp32 op would give from the same fp16 inputs), and the casts to fp16 that feed them are left
out too (constants stay as the program stores them). It is how the mixed-precision search tries a set without
reconverting; the set it settles on is then converted for real and checked again. All numbers are "Core ML program,
MIL interpreter".
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, cast

import numpy as np

from rnnt_tui.core.checkpoint import LoadedModel
from rnnt_tui.core.components import DECODER, ENCODER, JOINT, PREPROCESSOR

Feeds = dict[str, np.ndarray]


def reference_feeds(loaded: LoadedModel, samples: np.ndarray) -> dict[str, Feeds]:
    """Each component's inputs for the clip `samples` (mono float32 at the model's rate), computed by NeMo."""
    import torch

    from rnnt_tui.core.coreml.wrappers import state_shape, wrap

    model = loaded.eval()
    with torch.inference_mode():
        audio = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))[None]
        length = torch.tensor([audio.shape[1]], dtype=torch.int32)
        features, features_length = wrap(model, PREPROCESSOR)(audio, length)
        encoded, _ = wrap(model, ENCODER)(features, features_length)
        layers, _, hidden = state_shape(model.decoder)
        zeros = torch.zeros(layers, 1, hidden)
        blank = torch.tensor([[int(model.decoder.blank_idx)]], dtype=torch.int32)
        g, _, _ = wrap(model, DECODER)(blank, zeros, zeros)
    return {PREPROCESSOR: {"audio_signal": audio.numpy(), "length": length.numpy()},
            ENCODER: {"features": features.numpy(), "features_length": features_length.numpy()},
            DECODER: {"targets": blank.numpy(), "h": zeros.numpy(), "c": zeros.numpy()},
            JOINT: {"encoded": encoded.numpy(), "decoder_output": g.numpy()}}


def fp32_plan(program: Any, names: Iterable[str]) -> Any:
    """A copy of `program`'s execution plan in which the ops `names` (and the casts to fp16 feeding them) keep
    their fp32 results."""
    plan = program.plan
    wanted = set(names)
    if not wanted:
        return plan
    produced_by = {out: step for step in plan.steps for out in step.outputs}
    widen: set[str] = set()
    for step in plan.steps:
        if step.meta.name not in wanted:
            continue
        widen.add(step.meta.name)
        for _, ref in step.dynamic:
            for name in ref if isinstance(ref, tuple) else (ref,):
                source = produced_by.get(name)
                if source is not None and source.meta.type == "cast":
                    widen.add(source.meta.name)
    steps = []
    for step in plan.steps:
        if step.meta.name in widen:
            dtypes = tuple(np.dtype(np.float32) if d is not None and d == np.float16 else d
                           for d in step.meta.out_dtypes)
            step = replace(step, meta=replace(step.meta, out_dtypes=dtypes))
        steps.append(step)
    return replace(plan, steps=steps)


def run_with_fp32(program: Any, feeds: Feeds, names: Iterable[str] = (), trace: Any = None) -> Feeds:
    """Run `program` (a `MilProgram`) with the ops `names` computed in fp32 (see the module docstring)."""
    names = set(names)
    plan = fp32_plan(program, names) if names else program.plan
    return cast(Feeds, program.run_plan(plan, feeds, trace))


def run_with_values(program: Any, feeds: Feeds, values: dict[str, np.ndarray]) -> Feeds:
    """Run `program` with the outputs named in `values` replaced by those arrays (held as given, unrounded):
    "what if these ops gave their fp32 program's values". Used to rank hazards."""
    return cast(Feeds, program.run_plan(program.plan, feeds, values=values))


class ProgramDecoder:
    """Greedy decoding's three calls (`initial_state`, `decoder_step`, `joint_step`) on decoder and joint
    programs, each with its own fp32 set; drives `core.pipeline.greedy.greedy_decode`."""

    def __init__(self, decoder: Any, joint: Any, blank_id: int, state: tuple[int, int, int],
                 decoder_fp32: Iterable[str] = (), joint_fp32: Iterable[str] = (), *,
                 max_symbols: int | None) -> None:
        """`max_symbols`: the model's own per-frame symbol cap (`nemo_decoding.max_symbols`), as `compare` uses."""
        self.decoder, self.joint, self.blank_id, self.state = decoder, joint, blank_id, state
        self.max_symbols = max_symbols
        self.decoder_fp32, self.joint_fp32 = set(decoder_fp32), set(joint_fp32)

    decodes_through_decision = False  # decisions come from the joint program's logits

    def decide_step(self, frame: np.ndarray, decoder_output: Any) -> tuple[int, int, float]:
        raise NotImplementedError("program decoding goes through the joint's logits")

    def initial_state(self) -> Any:
        return np.zeros(self.state, np.float32), np.zeros(self.state, np.float32)

    def decoder_step(self, token: int, state: Any) -> tuple[Any, Any]:
        out = run_with_fp32(self.decoder, {"targets": np.array([[token]], np.int32), "h": state[0],
                                           "c": state[1]}, self.decoder_fp32)
        f32 = {k: np.asarray(v, np.float32) for k, v in out.items()}
        return f32["decoder_output"], (f32["h_out"], f32["c_out"])

    def joint_step(self, frame: np.ndarray, decoder_output: Any) -> np.ndarray:
        out = run_with_fp32(self.joint, {"encoded": np.asarray(frame, np.float32),
                                         "decoder_output": np.asarray(decoder_output, np.float32)}, self.joint_fp32)
        return np.asarray(out["logits"], np.float32).reshape(-1)


def program_decode(decoder: ProgramDecoder, encoded: np.ndarray, length: int, durations: list[int] | None,
                   cancel: threading.Event | None = None) -> list[int]:
    """Greedy tokens of `encoded` [1,D,T] through the programs (NeMo's greedy loop, `core.pipeline.greedy`)."""
    from rnnt_tui.core.pipeline.greedy import greedy_decode
    result = greedy_decode(decoder, np.asarray(encoded, np.float32), length, decoder.blank_id,
                           durations=durations, max_symbols=decoder.max_symbols, cancel=cancel)
    return list(result.tokens)


def max_diff(a: Feeds, b: Feeds) -> float:
    """Largest |Δ| over the float outputs both runs gave (inf when exactly one side is non-finite)."""
    worst = 0.0
    for name, x in a.items():
        y = b.get(name)
        if y is None or np.asarray(x).dtype.kind != "f" or np.asarray(x).shape != np.asarray(y).shape:
            continue
        xa, ya = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if (np.isfinite(xa) != np.isfinite(ya)).any():
            return float("inf")
        both = np.isfinite(xa)
        if both.any():
            worst = max(worst, float(np.abs(xa[both] - ya[both]).max()))
    return worst


def value_range(outputs: Feeds, name: str) -> float:
    arr = np.asarray(outputs[name], np.float64)
    finite = arr[np.isfinite(arr)]
    return float(finite.max() - finite.min()) if finite.size else 0.0
