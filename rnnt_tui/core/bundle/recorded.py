"""`RecordedRuntime`: the reference runtime of a replay, answering every call from one recorded clip.

Replay feeds the reference exactly the inputs that were recorded, so every answer is an exact lookup keyed by a
content digest of the inputs (`format.content_key`): the preprocessor and encoder by their whole inputs, each
decoder step by (token, h, c) - the chain and the greedy decode alike - each greedy joint step by (frame, decoder
output), and each chunk of the joint grid by its first frame, checked against the recorded encoder output. A
bundle recorded with `--joint path` holds only the decode-path cells, so the grid cannot be asked for
(`RecordedRuntime.joint_storage` says which). Inputs the recording never saw raise `StepFailedError` naming the
component: a replay never makes up a number.

`RecordedModel` stands in for `core.checkpoint.LoadedModel` where a candidate runtime wants one (its summary,
checkpoint path and SHA-256); it has no NeMo model behind it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rnnt_tui.core.bundle.format import Bundle, content_key
from rnnt_tui.core.components import DECODER, ENCODER, INPUTS, JOINT, OUTPUTS, PREPROCESSOR
from rnnt_tui.core.errors import StepFailedError
from rnnt_tui.core.names import RUNTIME_LABELS
from rnnt_tui.core.runtimes.base import (
    Availability,
    BoundCall,
    FunctionCall,
    PrepareReport,
    Progress,
    Runtime,
    no_progress,
)
from rnnt_tui.core.summary import ModelSummary

FULL = "full"
PATH = "path"
RECORDED_LABEL = f"{RUNTIME_LABELS['pytorch']} (recorded)"
Arrays = dict[str, np.ndarray]


@dataclass
class RecordedModel:
    """What a candidate runtime reads of a restored model, from a bundle: no NeMo model (`model` is None)."""

    path: Path
    summary: ModelSummary
    sha256: str | None
    model: Any = None
    notes: list[str] = field(default_factory=list)
    restore_s: float = 0.0

    def eval(self) -> Any:
        raise StepFailedError("a recorded reference has no NeMo model; this step needs the checkpoint itself")


def _key(*arrays: np.ndarray) -> tuple[bytes, ...]:
    return tuple(content_key(a) for a in arrays)


def _token(token: int) -> np.ndarray:
    return np.array([[token]], dtype=np.int64)


class RecordedRuntime(Runtime):
    """The reference of one recorded clip."""

    name: ClassVar[str] = "recorded"
    label: ClassVar[str] = RECORDED_LABEL
    components: ClassVar[tuple[str, ...]] = (PREPROCESSOR, ENCODER, DECODER, JOINT)

    def __init__(self, bundle: Bundle, clip: int, loaded: RecordedModel) -> None:
        super().__init__(loaded)  # type: ignore[arg-type]  # a RecordedModel stands in for it
        self.bundle = bundle
        self.clip = bundle.meta["clips"][clip]
        self.joint_storage: str = self.clip["joint"]["storage"]
        arr = self._arrays
        self._components: dict[str, tuple[tuple[bytes, ...], Arrays]] = {}
        for component in (PREPROCESSOR, ENCODER):
            ins = {n: arr(f"{component}.{n}" if component == PREPROCESSOR else f"preprocessor.{n}")
                   for n in INPUTS[component]}
            outs = {n: arr(f"{component}.{n}") for n in OUTPUTS[component]}
            self._components[component] = (_key(*ins.values()), outs)
        self.h0, self.c0 = arr("decoder.h0"), arr("decoder.c0")
        self._g = arr("decoder.decoder_output")
        self._chain = self._steps(arr("decoder.targets").reshape(-1), self._g, arr("decoder.h"), arr("decoder.c"),
                                  self.h0, self.c0)
        decode_g = arr("decode.g")
        self._decode = self._steps(arr("decode.tokens").reshape(-1), decode_g, arr("decode.h"), arr("decode.c"),
                                   self.h0, self.c0)
        encoded = arr("encoder.encoded")
        self._encoded = encoded
        frame_keys = [content_key(encoded[:, :, t:t + 1]) for t in range(encoded.shape[2])]
        self._frames: dict[bytes, int] = {}
        for t in range(len(frame_keys) - 1, -1, -1):  # the first frame wins if two are equal
            self._frames[frame_keys[t]] = t
        cells, rows = arr("decode.cells"), arr("decode.rows")
        g_keys = [content_key(np.ascontiguousarray(decode_g[:, :, u:u + 1])) for u in range(decode_g.shape[2])]
        self._rows = {(frame_keys[int(t)], g_keys[int(u)]): rows[i] for i, (t, u) in enumerate(cells)}
        self._grid = bundle.array(self.clip["arrays"]["joint.grid"], mmap=True) if self.joint_storage == FULL \
            else None

    def _arrays(self, role: str) -> np.ndarray:
        return self.bundle.array(self.clip["arrays"][role])

    @staticmethod
    def _steps(tokens: np.ndarray, g: np.ndarray, h: np.ndarray, c: np.ndarray, h0: np.ndarray,
               c0: np.ndarray) -> dict[tuple[bytes, ...], Arrays]:
        """(token, h in, c in) -> that step's outputs, for a chain of steps fed `tokens` from (h0, c0)."""
        table: dict[tuple[bytes, ...], Arrays] = {}
        h_in, c_in = h0, c0
        for k, token in enumerate(tokens):
            table.setdefault(_key(_token(int(token)), h_in, c_in),
                             {"decoder_output": np.ascontiguousarray(g[:, :, k:k + 1]), "h": h[k], "c": c[k]})
            h_in, c_in = h[k], c[k]
        return table

    @classmethod
    def availability(cls) -> Availability:
        return Availability(ok=True)

    def describe(self) -> dict[str, Any]:
        recorded = dict(self.bundle.meta["model"].get("reference", {}))
        return {**recorded, "name": self.name, "label": self.label, "recorded": True,
                "recorded_at": self.bundle.meta.get("created"), "bundle": str(self.bundle.path)}

    def prepare(self, progress: Progress = no_progress,
                cancel: threading.Event | None = None) -> list[PrepareReport]:
        recorded = self.bundle.meta["model"].get("prepare", {})
        self.reports = {c: PrepareReport(component=c, action="recorded", prepare_ms=float(r.get("prepare_ms") or 0),
                                         load_ms=r.get("load_ms"), notes=["recorded reference"])
                        for c, r in recorded.items()}
        return list(self.reports.values())

    # -- components --------------------------------------------------------------------------------
    def bind(self, component: str, inputs: Arrays) -> BoundCall:
        outputs = self._lookup(component, inputs)
        return FunctionCall(lambda: outputs, lambda raw: {k: np.array(v) for k, v in raw.items()})

    def _lookup(self, component: str, inputs: Arrays) -> Arrays:
        if component in (PREPROCESSOR, ENCODER):
            key, outs = self._components[component]
            if _key(*(inputs[n] for n in INPUTS[component])) == key:
                return outs
        elif component == DECODER:
            found = self._chain.get(_key(np.asarray(inputs["targets"], np.int64).reshape(1, 1), inputs["h"],
                                         inputs["c"]))
            if found is not None:
                return found
        elif component == JOINT:
            return {"logits": self._grid_chunk(inputs)}
        else:
            raise ValueError(f"unknown component {component!r}")
        raise StepFailedError(f"the recorded reference has no {component} output for these inputs (the replay fed "
                              f"it something other than what was recorded)")

    def _grid_chunk(self, inputs: Arrays) -> np.ndarray:
        if self._grid is None:
            raise StepFailedError("this bundle holds only the joint's decode-path cells (recorded with --joint path),"
                                  " not the whole T x U grid")
        encoded = np.asarray(inputs["encoded"])
        start = self._frames.get(content_key(encoded[:, :, :1])) if encoded.shape[2] else None
        stop = None if start is None else start + encoded.shape[2]
        if start is None or stop is None or stop > self._grid.shape[1] \
                or not np.array_equal(encoded, self._encoded[:, :, start:stop]) \
                or content_key(np.asarray(inputs["decoder_output"])) != content_key(self._g):
            raise StepFailedError("the recorded reference has no joint output for these inputs (frames or decoder "
                                  "outputs differ from the recording)")
        return np.array(self._grid[:, start:stop])

    # -- greedy decoding steps ---------------------------------------------------------------------
    def initial_state(self) -> Any:
        return (self.h0.copy(), self.c0.copy())

    def decoder_step(self, token: int, state: Any) -> tuple[Any, Any]:
        found = self._decode.get(_key(_token(token), np.asarray(state[0]), np.asarray(state[1])))
        if found is None:
            raise StepFailedError(f"the recorded reference's greedy decode never fed token {token} in this state: "
                                  f"the replay left the recorded decode path")
        return found["decoder_output"], (found["h"], found["c"])

    def joint_step(self, frame: np.ndarray, decoder_output: Any) -> np.ndarray:
        row = self._rows.get((content_key(frame), content_key(np.asarray(decoder_output))))
        if row is None:
            raise StepFailedError("the recorded reference's greedy decode never visited this joint cell: the replay "
                                  "left the recorded decode path")
        return np.array(row)
