"""`rnnt-tui precision CKPT [CLIP] [--packages DIR] [--weights W]`: hazards, lint, decode check and edge sweep of
one candidate (the tool's fp16 / mixed / compressed conversion, or the user's packages) in one report.

The candidate runs beside the tool's fp32 conversion of the same checkpoint in the MIL interpreter, on NeMo's
inputs for the clip. Every part goes on when another fails: a component whose package cannot be read or run,
an op the interpreter lacks, a clip too short — each is one line naming the file, op or clip in `errors`, and
the rest of the report is still there. The result is a plain dataclass with `to_json`, for the CLI and the app.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rnnt_tui.core.checkpoint import LoadedModel
from rnnt_tui.core.components import COMPONENTS, DECODER, ENCODER, JOINT
from rnnt_tui.core.errors import BadInputError, CancelledError, RnntTuiError
from rnnt_tui.core.precision.edges import EdgeSweep, sweep
from rnnt_tui.core.precision.hazards import FAILING_KINDS, LABEL, ComponentHazards, analyse
from rnnt_tui.core.precision.lint import LintReport, lint_package
from rnnt_tui.core.progress import Progress, no_progress


@dataclass(frozen=True)
class DecodeCheck:
    """Greedy decode through the candidate programs vs through the fp32 programs (same NeMo features)."""

    reference_tokens: list[int]
    candidate_tokens: list[int]
    joint_argmax_agreement: float | None = None

    @property
    def identical(self) -> bool:
        return self.reference_tokens == self.candidate_tokens

    @property
    def token_agreement(self) -> float:
        """Share of positions where the two token sequences agree (over the longer one)."""
        longest = max(len(self.reference_tokens), len(self.candidate_tokens))
        same = sum(a == b for a, b in zip(self.reference_tokens, self.candidate_tokens, strict=False))
        return same / longest if longest else 1.0

    def to_json(self) -> dict[str, Any]:
        return {"reference_tokens": self.reference_tokens, "candidate_tokens": self.candidate_tokens,
                "identical": self.identical, "token_agreement": round(self.token_agreement, 5),
                "joint_argmax_agreement": self.joint_argmax_agreement}


@dataclass(frozen=True)
class PrecisionReport:
    checkpoint: str
    clip: str
    candidate: str
    hazards: tuple[ComponentHazards, ...] = field(default_factory=tuple)
    lint: tuple[LintReport, ...] = field(default_factory=tuple)
    edges: tuple[EdgeSweep, ...] = field(default_factory=tuple)
    decode: DecodeCheck | None = None
    fp32_ops: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    errors: tuple[str, ...] = field(default_factory=tuple)
    label: str = LABEL  # what ran the candidate ("Core ML program, MIL interpreter" or Core AI's runtime)
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def status(self) -> str:
        """'failed' (something could not be analysed), 'hazards' (a range hazard: non-finite outputs, an fp16
        overflow, inexact integers or a bad constant; a decode that differs; an edge that fails or drifts; a lint
        error or warning) or 'ok'. Drift and underflow rows are listed as observations and do not fail."""
        if self.errors or any(h.error for h in self.hazards) or any(e.error for e in self.edges):
            return "failed"
        bad = (any(not h.finite for h in self.hazards) or (self.decode is not None and not self.decode.identical)
               or any(e.problems for e in self.edges) or any(r.failing for r in self.lint)
               or bool(self.failing_hazards))
        return "hazards" if bad else "ok"

    @property
    def failing_hazards(self) -> list[tuple[str, str, str]]:
        """(component, kind, op) of each range hazard: the kinds that fail certification."""
        return [(c.component, h.kind, h.op) for c in self.hazards for h in c.hazards if h.kind in FAILING_KINDS]

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "checkpoint": self.checkpoint, "clip": self.clip, "candidate": self.candidate,
                "status": self.status, "errors": list(self.errors), "fp32_ops": self.fp32_ops,
                "failing_hazards": [{"component": c, "kind": k, "op": o} for c, k, o in self.failing_hazards],
                "components": [h.to_json() for h in self.hazards], "lint": [r.to_json() for r in self.lint],
                "decode": self.decode.to_json() if self.decode else None,
                "edges": [e.to_json() for e in self.edges], "notes": list(self.notes)}


Renames = dict[str, tuple[dict[str, str], dict[str, str]]]


def _candidates(loaded: LoadedModel, packages: Path | None, precision: str, weights: str | None,
                cancel: threading.Event | None) -> tuple[dict[str, Path], Renames, dict[str, Any], list[str]]:
    """Candidate package per component, tensor renames, the fp32 sets of our own conversion, and errors."""
    from rnnt_tui.core.coreml.convert import convert_components
    from rnnt_tui.core.coreml.matching import match_packages
    from rnnt_tui.core.coreml.weights import compress_package

    errors: list[str] = []
    if packages is None:
        converted = convert_components(loaded, precision, weights=weights, cancel=cancel)
        return ({p.component: p.path for p in converted}, {},
                {p.component: [k.to_json() for k in p.fp32_ops] for p in converted}, errors)
    found = match_packages(packages, loaded.summary)
    paths: dict[str, Path] = {}
    names: Renames = {}
    for component in COMPONENTS:
        info = found.get(component)
        if info is None:
            errors.append(f"{packages}: no {component} package found")
            continue
        if info.layouts or info.per_step or info.feeds:
            errors.append(f"{info.path}: not analysed (its I/O differs from the tool's contract beyond names: "
                          "layout, per-step or constant feeds)")
            continue
        path = info.path
        if weights:
            try:
                path = compress_package(path, weights, cancel=cancel)
            except (BadInputError, ValueError) as exc:
                errors.append(str(exc))
                continue
        paths[component] = path
        names[component] = (dict(info.inputs), dict(info.outputs))
    return paths, names, {}, errors


def _decode_check(loaded: LoadedModel, references: dict[str, Path], candidates: dict[str, Path],
                  feeds: dict[str, Any], names: Renames,
                  cancel: threading.Event | None) -> DecodeCheck | None:
    from rnnt_tui.core.coreml.wrappers import state_shape
    from rnnt_tui.core.mil import MilProgram
    from rnnt_tui.core.nemo_decoding import max_symbols
    from rnnt_tui.core.precision.runs import ProgramDecoder, program_decode

    if names or not all(c in candidates for c in (ENCODER, DECODER, JOINT)):
        return None  # decoding others' packages goes through the `mil` runtime's bindings (`compare`)
    model = loaded.eval()
    blank, state, durations = int(model.decoder.blank_idx), state_shape(model.decoder), loaded.summary.durations
    tokens = []
    argmax: list[np.ndarray] = []
    for source in (references, candidates):
        progs = {c: MilProgram.load(source[c]) for c in (ENCODER, DECODER, JOINT)}
        enc = progs[ENCODER].run(feeds[ENCODER])
        decoder = ProgramDecoder(progs[DECODER], progs[JOINT], blank, state, max_symbols=max_symbols(loaded))
        length = int(np.asarray(enc["encoded_length"]).reshape(-1)[0])
        tokens.append(program_decode(decoder, enc["encoded"], length, durations, cancel))
        logits = np.asarray(progs[JOINT].run(feeds[JOINT])["logits"], np.float32)
        width = logits.shape[-1] - (len(durations) if durations else 0)
        argmax.append(logits[..., :width].argmax(-1))
    agreement = float((argmax[0] == argmax[1]).mean()) if argmax[0].shape == argmax[1].shape else None
    return DecodeCheck(tokens[0], tokens[1], agreement)


def certify(loaded: LoadedModel, clip: Path | str, packages: Path | str | None = None, precision: str = "fp16",
            weights: str | None = None, max_seconds: float = 60.0, edges: bool = True,
            progress: Progress = no_progress, cancel: threading.Event | None = None) -> PrecisionReport:
    """The full precision report for `loaded` on `clip` (see the module docstring)."""
    from rnnt_tui.core.audio import encoder_frame_seconds, load_audio
    from rnnt_tui.core.coreml.convert import convert_components
    from rnnt_tui.core.precision.runs import reference_feeds

    clip = Path(clip).expanduser()
    pkg_dir = Path(packages).expanduser() if packages else None
    candidate = f"packages {pkg_dir}" if pkg_dir else precision
    candidate += f", {weights} weights" if weights else ""
    summary = loaded.summary
    audio = load_audio(clip, summary.sample_rate or 16000,
                       min_seconds=encoder_frame_seconds(summary.window_stride, summary.encoder.subsampling_factor))
    progress("Precision: fp32 reference programs (the tool's own conversion)", 0.0)
    references = {p.component: p.path for p in convert_components(loaded, "fp32", cancel=cancel)}
    progress(f"Precision: candidate ({candidate})", 0.1)
    candidates, names, fp32_ops, errors = _candidates(loaded, pkg_dir, precision, weights, cancel)
    feeds = reference_feeds(loaded, audio.samples)
    hazards = analyse(feeds, candidates, references, names=names, cancel=cancel,
                      progress=lambda m, f: progress(m, None if f is None else 0.2 + 0.4 * f))
    lints = tuple(lint_package(p) for p in candidates.values())
    decode = None
    try:
        decode = _decode_check(loaded, references, candidates, feeds, names, cancel)
    except CancelledError:
        raise
    except (RnntTuiError, ValueError) as exc:
        errors.append(f"decode through the candidate programs failed: {exc}")
    sweeps: list[EdgeSweep] = []
    if edges and not names:
        sweeps = sweep(loaded, candidates, audio.samples, max_seconds, cancel=cancel,
                       progress=lambda m, f: progress(m, None if f is None else 0.7 + 0.3 * f))
    return PrecisionReport(checkpoint=str(loaded.path), clip=str(clip), candidate=candidate,
                           hazards=tuple(hazards), lint=lints, edges=tuple(sweeps), decode=decode,
                           fp32_ops=fp32_ops, errors=tuple(errors))
