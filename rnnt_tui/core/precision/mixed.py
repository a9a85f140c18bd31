"""`convert --precision mixed`: fp16 except the fewest ops this model needs in fp32, found on the given clips.

Start: the tool's fp16 conversion, whose structural exceptions (`policy`: index arithmetic, statistics over the
flexible axis) are kept whatever the clips — their values pass fp16's exact range within the inputs the package
declares, so no short clip can prove them unneeded. Check, in the MIL interpreter, on every clip: each component
within the fp16 tolerances (`core.tolerances.FP16`, numpy's allclose rule) of its fp32 program on NeMo's inputs,
and the greedy decode through the candidate programs token for token equal to the decode through the fp32
programs. While something fails: add the ops contributing most drift to the failing component (an op's relative
drift minus the largest of its inputs'), emulated in fp32 (`runs.run_with_fp32`); then prune the added ops one by
one where the checks still pass. The set found is converted for real (`precision="mixed"`) and checked again.

Limits: at most `MAX_FP32_SHARE` of the program's ops in fp32, and a time budget of `BUDGET` x one fp32 run of the
same clips (the fp32 programs run on them, decode included); the result says if either stopped the search.
Results are cached per (checkpoint, clips, tolerances, target, max_frames, versions). Numbers are "Core ML
program, MIL interpreter".
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rnnt_tui.core.cache import ArtifactCache, make_key
from rnnt_tui.core.checkpoint import LoadedModel
from rnnt_tui.core.components import COMPONENTS, DECODER, ENCODER, JOINT
from rnnt_tui.core.errors import CancelledError
from rnnt_tui.core.precision.runs import Feeds, ProgramDecoder, program_decode, run_with_fp32
from rnnt_tui.core.progress import Progress, no_progress
from rnnt_tui.core.tolerances import FP16, Tolerance

LABEL = "Core ML program, MIL interpreter"
MAX_FP32_SHARE = 0.05
BUDGET = 3.0
_NOT_CANDIDATES = frozenset({"const", "cast", "shape"})


@dataclass(frozen=True)
class MixedResult:
    """The fp32 set (component -> op names as the saved program writes them, with why) and how it was found."""

    keep: dict[str, list[dict[str, str]]]
    total_ops: int
    clips: list[str]
    passed: bool
    verified: bool
    component_ok: dict[str, bool]
    decode_identical: bool
    search_s: float
    baseline_s: float
    stopped: str | None = None
    snippet: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def fp32_ops(self) -> int:
        return sum(len(v) for v in self.keep.values())

    @property
    def share(self) -> float:
        return self.fp32_ops / self.total_ops if self.total_ops else 0.0

    def keep_by_component(self) -> dict[str, tuple[str, ...]]:
        return {c: tuple(k["name"] for k in ops) for c, ops in self.keep.items()}

    def to_json(self) -> dict[str, Any]:
        return {"label": LABEL, "keep_fp32": self.keep, "fp32_ops": self.fp32_ops, "total_ops": self.total_ops,
                "share": round(self.share, 5), "clips": self.clips, "passed": self.passed,
                "verified": self.verified, "component_ok": self.component_ok,
                "decode_identical": self.decode_identical, "search_s": round(self.search_s, 3),
                "baseline_s": round(self.baseline_s, 3),
                "budget_ratio": round(self.search_s / self.baseline_s, 3) if self.baseline_s else None,
                "stopped": self.stopped, "snippet": self.snippet, "notes": self.notes}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MixedResult:
        return cls(keep=data["keep_fp32"], total_ops=data["total_ops"], clips=data["clips"], passed=data["passed"],
                   verified=data["verified"], component_ok=data["component_ok"],
                   decode_identical=data["decode_identical"], search_s=data["search_s"],
                   baseline_s=data["baseline_s"], stopped=data.get("stopped"), snippet=data.get("snippet", ""),
                   notes=data.get("notes", []))


def within(reference: np.ndarray, candidate: np.ndarray, tol: Tolerance) -> bool:
    ref = np.asarray(reference, np.float64)
    cand = np.asarray(candidate, np.float64)
    return ref.shape == cand.shape and bool(np.isfinite(cand).all()) and bool(
        np.all(np.abs(cand - ref) <= tol.atol + tol.rtol * np.abs(ref)))


class _Checker:
    """The fp32 programs' results per clip (computed once) and the checks of a candidate fp32 set."""

    def __init__(self, ref: dict[str, Any], cand: dict[str, Any], clips: list[dict[str, Feeds]],
                 blank: int, state: tuple[int, int, int], durations: list[int] | None,
                 cancel: threading.Event | None, tolerances: dict[str, Tolerance],
                 max_symbols: int | None = None) -> None:
        self.ref, self.cand, self.clips, self.tolerances = ref, cand, clips, tolerances
        self.blank, self.state, self.durations, self.cancel = blank, state, durations, cancel
        self.max_symbols = max_symbols
        start = time.perf_counter()
        self.ref_out = [{c: ref[c].run(feeds[c]) for c in COMPONENTS} for feeds in clips]
        self.ref_tokens = [self._decode(self.ref, out[ENCODER], feeds, {}) for out, feeds in zip(
            self.ref_out, clips, strict=True)]
        self.baseline_s = time.perf_counter() - start

    def _decode(self, progs: dict[str, Any], enc_out: Feeds, feeds: dict[str, Feeds],
                sets: dict[str, set[str]]) -> list[int]:
        decoder = ProgramDecoder(progs[DECODER], progs[JOINT], self.blank, self.state,
                                 sets.get(DECODER, ()), sets.get(JOINT, ()), max_symbols=self.max_symbols)
        return program_decode(decoder, enc_out["encoded"], int(np.asarray(enc_out["encoded_length"]).reshape(-1)[0]),
                              self.durations, self.cancel)

    def check(self, sets: dict[str, set[str]]) -> tuple[dict[str, bool], bool]:
        ok = dict.fromkeys(COMPONENTS, True)
        identical = True
        for feeds, ref_out, ref_tokens in zip(self.clips, self.ref_out, self.ref_tokens, strict=True):
            if self.cancel is not None and self.cancel.is_set():
                raise CancelledError("cancelled during the mixed-precision search")
            outs = {c: run_with_fp32(self.cand[c], feeds[c], sets.get(c, ())) for c in COMPONENTS}
            for c in COMPONENTS:
                ok[c] = ok[c] and all(within(ref_out[c][k], outs[c][k], self.tolerances[c]) for k in ref_out[c]
                                      if np.asarray(ref_out[c][k]).dtype.kind == "f")
            identical = identical and self._decode(self.cand, outs[ENCODER], feeds, sets) == ref_tokens
        return ok, identical


def _contributions(ref: Any, cand: Any, feeds: Feeds, fp32: set[str]) -> list[str]:
    """Candidate op names by the drift each adds over its inputs' (largest first)."""
    from rnnt_tui.core.mil import TraceOptions, compare_traces
    from rnnt_tui.core.mil.trace import base_name

    ref.run(feeds, trace=TraceOptions())
    run_with_fp32(cand, feeds, fp32, trace=TraceOptions())
    rows = compare_traces(ref.last_trace, cand.last_trace, 0.0, relative=True).rows
    drift = {r.output: r.relative for r in rows if np.isfinite(r.relative)}
    op_of = {r.output: r.op_b for r in rows}
    types = {s.meta.name: s.meta.type for s in cand.plan.steps}
    gains: dict[str, float] = {}
    for step in cand.plan.steps:
        outs = [base_name(o) for o in step.outputs]
        own = max((drift.get(o, 0.0) for o in outs), default=0.0)
        inputs = [base_name(r) for _, ref_ in step.dynamic for r in (ref_ if isinstance(ref_, tuple) else (ref_,))]
        gain = own - max((drift.get(i, 0.0) for i in inputs), default=0.0)
        name = op_of.get(outs[0], step.meta.name) if outs else step.meta.name
        if gain > 0 and types.get(name) not in _NOT_CANDIDATES and name not in fp32:
            gains[name] = gain
    return sorted(gains, key=lambda n: -gains[n])


def _search(checker: _Checker, ref: dict[str, Any], cand: dict[str, Any], clips: list[dict[str, Feeds]],
            limit: int, deadline: float, progress: Progress) -> tuple[dict[str, set[str]], str | None]:
    sets: dict[str, set[str]] = {c: set() for c in COMPONENTS}
    ok, identical = checker.check(sets)
    stopped = None
    while not (all(ok.values()) and identical):
        failing = [c for c in COMPONENTS if not ok[c]] or [ENCODER, JOINT, DECODER]
        added = 0
        for component in failing:
            order = _contributions(ref[component], cand[component], clips[0][component], sets[component])
            step = max(1, len(order) // 20)
            for name in order[:step]:
                sets[component].add(name)
                added += 1
        if not added:
            return sets, "no op left that adds drift"
        if sum(len(s) for s in sets.values()) > limit:
            return sets, f"more than {MAX_FP32_SHARE:.0%} of the ops would be fp32"
        if time.perf_counter() > deadline:
            return sets, f"time budget ({BUDGET:g}x one fp32 run of the clips) spent"
        progress(f"Mixed precision: {sum(len(s) for s in sets.values())} ops in fp32 so far", None)
        ok, identical = checker.check(sets)
    for component in COMPONENTS:  # prune: drop added ops the checks do not need
        for name in sorted(sets[component]):
            if time.perf_counter() > deadline:
                return sets, stopped or f"time budget ({BUDGET:g}x one fp32 run of the clips) spent while pruning"
            trial = {c: (s - {name} if c == component else s) for c, s in sets.items()}
            ok, identical = checker.check(trial)
            if all(ok.values()) and identical:
                sets = trial
    return sets, stopped


def find_mixed_precision(loaded: LoadedModel, clips: Sequence[Path | str] | None = None, max_frames: int | None = None,
                         minimum_deployment_target: str | None = None, progress: Progress = no_progress,
                         cancel: threading.Event | None = None, cache: ArtifactCache | None = None,
                         use_cache: bool = True, tolerances: dict[str, Tolerance] | None = None) -> MixedResult:
    """Find (or read from the cache) the fp32 set for `loaded` on `clips` (default: the bundled demo's clips),
    checked against `tolerances` (default: `core.tolerances.FP16`)."""
    tolerances = dict(tolerances or FP16)
    from rnnt_tui.core.audio import load_audio
    from rnnt_tui.core.checkpoint import content_hash
    from rnnt_tui.core.coreml.convert import DEFAULT_TARGET, POLICY_VERSION, package_max_frames

    target = minimum_deployment_target or DEFAULT_TARGET
    paths = [Path(c).expanduser() for c in (clips or _demo_clips())]
    frames = package_max_frames(loaded, "mixed", max_frames)
    key = make_key(kind="mixed-precision", sha256=loaded.sha256, clips=[content_hash(p) for p in paths],
                   target=target, max_frames=frames, policy=POLICY_VERSION,
                   tolerances={c: (t.atol, t.rtol) for c, t in tolerances.items()}, share=MAX_FP32_SHARE)
    rate = loaded.summary.sample_rate or 16000
    audio = [load_audio(p, rate).samples for p in paths]

    def build(tmp: Path) -> dict[str, Any]:
        result = _find(loaded, paths, audio, frames, target, tolerances, progress, cancel)
        (tmp / "mixed.json").write_text(json.dumps(result.to_json(), indent=1))
        return {"kind": "mixed-precision", "sha256": loaded.sha256}

    if not use_cache:
        return _find(loaded, paths, audio, frames, target, tolerances, progress, cancel)
    entry, cached = (cache or ArtifactCache()).get_or_build(key, build, cancel)
    if cached:
        progress("Mixed precision: the fp32 set is from the cache", 1.0)
    return MixedResult.from_json(json.loads((entry.path / "mixed.json").read_text()))


def _demo_clips() -> list[Path]:
    from rnnt_tui.paths import DEMO_CLIPS, demo_dir

    directory = demo_dir()
    return [directory / c["audio"] for c in json.loads((directory / DEMO_CLIPS).read_text())]


def _find(loaded: LoadedModel, paths: list[Path], audio: list[np.ndarray], frames: int, target: str,
          tolerances: dict[str, Tolerance], progress: Progress, cancel: threading.Event | None) -> MixedResult:
    from rnnt_tui.core.coreml.convert import convert_components
    from rnnt_tui.core.coreml.fp16_policy import selector_snippet
    from rnnt_tui.core.coreml.wrappers import state_shape
    from rnnt_tui.core.mil import MilProgram
    from rnnt_tui.core.precision.runs import reference_feeds

    progress("Mixed precision: fp32 and fp16 programs", 0.0)
    ref_pk = {p.component: p for p in convert_components(loaded, "fp32", target, frames, cancel=cancel)}
    fp16_pk = {p.component: p for p in convert_components(loaded, "fp16", target, frames, cancel=cancel)}
    ref = {c: MilProgram.load(p.path) for c, p in ref_pk.items()}
    cand = {c: MilProgram.load(p.path) for c, p in fp16_pk.items()}
    feeds = [reference_feeds(loaded, samples) for samples in audio]
    model = loaded.eval()
    blank = int(model.decoder.blank_idx)
    state = state_shape(model.decoder)
    durations = loaded.summary.durations
    total = sum(p.op_count for p in cand.values())
    from rnnt_tui.core.nemo_decoding import max_symbols

    checker = _Checker(ref, cand, feeds, blank, state, durations, cancel, tolerances, max_symbols(loaded))
    start = time.perf_counter()
    deadline = start + BUDGET * checker.baseline_s
    structural = {c: {k.name for k in p.fp32_ops} for c, p in fp16_pk.items()}
    limit = int(MAX_FP32_SHARE * total) - sum(len(s) for s in structural.values())
    chosen, stopped = _search(checker, ref, cand, feeds, limit, deadline, progress)
    search_s = time.perf_counter() - start
    keep = {c: [{"name": k.name, "op_type": k.op_type, "reason": k.reason} for k in fp16_pk[c].fp32_ops]
            + [{"name": n, "op_type": cand[c].plan.op_types.get(n, "?"), "reason": "drift (search)"}
               for n in sorted(chosen[c])] for c in COMPONENTS}
    if any(chosen.values()):
        progress("Mixed precision: converting the set found and checking it again", 0.9)
        mixed_pk = {p.component: p for p in convert_components(
            loaded, "mixed", target, frames, cancel=cancel,
            keep_fp32={c: tuple(_unsuffixed(n) for n in s) for c, s in chosen.items()})}
        checker.cand = {c: MilProgram.load(p.path) for c, p in mixed_pk.items()}
    ok, identical = checker.check({})  # nothing chosen: the fp16 programs are the mixed ones
    notes = [f"{LABEL}: tolerances {', '.join(f'{c} atol {t.atol:g} rtol {t.rtol:g}' for c, t in tolerances.items())}",
             "search_s: the search after the fp32 run of the clips (baseline_s), conversions not counted"]
    return MixedResult(keep=keep, total_ops=total, clips=[str(p) for p in paths],
                       passed=all(ok.values()) and identical and stopped is None, verified=True,
                       component_ok=ok, decode_identical=identical, search_s=search_s,
                       baseline_s=checker.baseline_s, stopped=stopped,
                       snippet=selector_snippet({c: [_unsuffixed(k["name"]) for k in ops] for c, ops in keep.items()}),
                       notes=notes)


def _unsuffixed(name: str) -> str:
    """An op name as the fp16 pass sees it: the saved name without the `_cast_fp16` the pass appended."""
    from rnnt_tui.core.coreml.op_modules import sanitized
    from rnnt_tui.core.mil.trace import base_name

    return sanitized(base_name(name))
