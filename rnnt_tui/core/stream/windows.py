"""Fixed windows over long audio, the way apps run window-sized packages: cut, run both runtimes, merge by time.

Entry point `run_windows(request, emit, cancel)`; progress goes out as `Progress` events and each window, once both
runtimes ran it, as a `WindowCompared` event. The clip is cut into windows of `window_s` with `overlap_s`
between neighbours; each window is fed with `mel_left_s` of audio before it (mel and encoder left context), and
tokens from that lead-in are dropped. Merging: a window owns the span from the middle of its left overlap to the
middle of its right overlap, and keeps only its tokens whose time falls in that span (the common app rule).
Both runtimes see the same features (the reference preprocessor's: NeMo's ONNX export has no preprocessor; a
user's fused mel+encoder package is fed the window's audio):
the reference is NeMo / PyTorch, the candidate its converted encoder, decoder and joint (`get_runtime_class`),
both decoded with `core.decode.greedy_decode`. The merged transcripts are compared with NeMo's full-context
transcript word by word (`seams`): words lost, doubled or changed, each with its time and nearest seam.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rnnt_tui.core.audio import load_audio
from rnnt_tui.core.checkpoint import LoadedModel, restore
from rnnt_tui.core.components import ENCODER, PREPROCESSOR
from rnnt_tui.core.coreml.matching import MEL_ENCODER
from rnnt_tui.core.errors import BadInputError, CancelledError, RuntimeUnavailableError
from rnnt_tui.core.names import RUNTIME_LABELS
from rnnt_tui.core.nemo_decoding import max_symbols, tokens_to_pieces, tokens_to_text
from rnnt_tui.core.pipeline.events import Emit, Event, progress_of
from rnnt_tui.core.pipeline.greedy import greedy_decode
from rnnt_tui.core.stats.diff import diff_stats
from rnnt_tui.core.stream.config import (
    WINDOW_CANDIDATES,
    StreamRequest,
    cache_states_problem,
    frame_ms,
)
from rnnt_tui.core.stream.seams import Edit, Word, by_seam, edits, words
from rnnt_tui.core.stream.window_fit import capacity_s, encoder_of, fit_window
from rnnt_tui.core.tolerances import FP16, FP32, Tolerance


@dataclass(frozen=True)
class Window:
    index: int
    start_s: float
    end_s: float
    keep_from_s: float
    keep_to_s: float
    encoder_max_abs: float
    encoder_ok: bool
    reference_text: str  # the tokens this window kept, decoded on their own
    candidate_text: str
    reference_piece: str = ""  # what this window adds to the merged transcript (the pieces concatenate to it)
    candidate_piece: str = ""

    def to_json(self) -> dict[str, Any]:
        """The window's figures; `encoder_max_abs` None when the two encoders' outputs differ in shape (NaN here,
        which is not JSON), as a stream chunk's `max_abs` is."""
        out = {k: (round(v, 4) if isinstance(v, float) and k.endswith("_s") else v) for k, v in self.__dict__.items()}
        if math.isnan(self.encoder_max_abs):
            out["encoder_max_abs"] = None
        return out


@dataclass(frozen=True)
class WindowCompared(Event):
    """One window run by both runtimes and compared (the app's window timeline grows by one column); `total`:
    how many windows the clip is cut into."""

    window: Window
    total: int


@dataclass(frozen=True)
class WindowsResult:
    checkpoint: str
    clip: str
    clip_s: float
    reference_label: str
    candidate_label: str
    window_s: float
    overlap_s: float
    mel_left_s: float
    windows: tuple[Window, ...]
    full_text: str
    reference_text: str
    candidate_text: str
    seams_s: tuple[float, ...]
    edits: tuple[Edit, ...]
    packages: str | None = None  # the user's packages run as the candidate (`--packages`), else the tool's conversion
    notes: tuple[str, ...] = ()  # where the window came from, whose tolerance judged it
    tolerance: dict[str, float] = field(default_factory=dict)  # the encoder's per-window check: atol, rtol

    @property
    def status(self) -> str:
        port_ok = self.candidate_text == self.reference_text and all(w.encoder_ok for w in self.windows)
        seams_ok = not any(e.side == "candidate" for e in self.edits)
        return "ok" if port_ok and seams_ok else "mismatch"

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "checkpoint": self.checkpoint, "clip": self.clip, "clip_s": self.clip_s,
                "reference": self.reference_label, "candidate": self.candidate_label, "window_s": self.window_s,
                "overlap_s": self.overlap_s, "mel_left_s": self.mel_left_s,
                "merge_rule": "each window keeps tokens from the middle of its left overlap to the middle of its "
                              "right overlap",
                "windows": [w.to_json() for w in self.windows], "full_text": self.full_text,
                "reference_text": self.reference_text, "candidate_text": self.candidate_text,
                "port_identical": self.candidate_text == self.reference_text, "tolerance": self.tolerance,
                "seams": by_seam(list(self.edits), list(self.seams_s)), "packages": self.packages,
                "notes": list(self.notes)}


def plan(clip_s: float, window_s: float, overlap_s: float,
         min_s: float = 0.0) -> list[tuple[float, float, float, float]]:
    """(start, end, keep_from, keep_to) of every window. A last window that would be shorter than `min_s` (one
    encoder frame: too short for the encoder to give a frame, where NeMo and a port disagree on its length) is not
    cut: the window before it runs to the end of the clip instead."""
    stride = window_s - overlap_s
    starts = [0.0]
    while starts[-1] + window_s < clip_s and clip_s - (starts[-1] + stride) >= min_s:
        starts.append(starts[-1] + stride)
    out = []
    for i, s in enumerate(starts):
        last = i == len(starts) - 1
        keep_from = 0.0 if i == 0 else s + overlap_s / 2
        keep_to = clip_s + 1.0 if last else s + window_s - overlap_s / 2
        out.append((s, clip_s if last else min(s + window_s, clip_s), keep_from, keep_to))
    return out


def _piece(before: str, after: str, own: str) -> tuple[str, str]:
    """What a window added to a merged transcript (`before` → `after`: the decoding of the tokens kept so far, with
    this window's), and `after`. A window's text decoded on its own (`own`) loses how it joins the one before (a
    word glued across a seam, a SentencePiece word's space); the difference keeps it. Decoding is prefix-stable for
    char and SentencePiece models; were it not, the piece is `own` after a space."""
    return (after[len(before):] if after.startswith(before) else " " + own), after


def _runtime(loaded: LoadedModel, request: StreamRequest) -> Any:
    """The candidate: the tool's offline conversion for `request.against`, or the user's packages in
    `request.packages_dir`."""
    from rnnt_tui.core.options import RuntimeOptions
    from rnnt_tui.core.runtimes import get_runtime_class

    if request.against not in WINDOW_CANDIDATES:
        raise RuntimeUnavailableError(f"no windowed candidate {request.against!r} (choose "
                                      f"{', '.join(WINDOW_CANDIDATES)})")
    packages = str(request.packages_dir) if request.packages_dir else None
    return get_runtime_class(request.against)(loaded, RuntimeOptions(use_cache=request.use_cache,
                                                                     packages_dir=packages))


def run_windows(request: StreamRequest, emit: Emit, cancel: threading.Event | None = None,
                loaded: LoadedModel | None = None) -> WindowsResult:
    from rnnt_tui.core.runtimes.torch_runtime import TorchRuntime

    request = request.resolved()
    assert request.windowed
    problem = cache_states_problem(request)
    if problem:
        raise BadInputError(None, problem)
    progress = progress_of(emit, "windows")
    if loaded is None:
        progress("restoring the checkpoint with NeMo", None)
        loaded = restore(request.checkpoint, cancel=cancel)
    model = loaded.eval()
    rate = int(model.cfg.preprocessor.get("sample_rate", 16000))
    frame_s = frame_ms(model) / 1000
    audio = load_audio(request.clip, rate, min_seconds=frame_s)  # shorter: no encoder frame (as `compare` refuses)
    samples = audio.samples
    reference = TorchRuntime(loaded)
    reference.prepare()
    candidate = _runtime(loaded, request)
    candidate.prepare(lambda text, fraction=None: progress(text, fraction), cancel)
    blank, cap = int(model.decoder.blank_idx), max_symbols(loaded)
    notes: list[str] = []

    def decode(runtime: Any, encoded: np.ndarray, length: int) -> tuple[list[int], list[int]]:
        result = greedy_decode(runtime, encoded, length, blank, max_symbols=cap, cancel=cancel)
        return result.tokens, result.frames

    def features(chunk: np.ndarray) -> dict[str, np.ndarray]:
        return reference.run(PREPROCESSOR, {"audio_signal": chunk[None].astype(np.float32),
                                            "length": np.array([len(chunk)], np.int64)})

    merged: dict[str, tuple[list[int], list[float]]] = {"reference": ([], []), "candidate": ([], [])}
    so_far = {"reference": "", "candidate": ""}  # each side's merged transcript through the last window
    windows: list[Window] = []
    try:
        hop = round(float(model.cfg.preprocessor.get("window_stride", 0.01)) * rate)
        # the tool's own conversions take any window up to their bound, and say so at the first window past it
        fit = fit_window(request, capacity_s(candidate, features, rate, hop) if request.packages_dir else None)
        notes += [fit.note] if fit.note else []
        tol = _tolerance(request, candidate, notes)
        encoder = encoder_of(candidate)
        spans = plan(audio.duration_s, fit.window_s, request.overlap_s, frame_s)
        for index, (start, end, keep_from, keep_to) in enumerate(spans):
            if cancel is not None and cancel.is_set():
                raise CancelledError("cancelled between windows")
            progress(f"window {index + 1} of {len(spans)}", index / len(spans))
            lead_s = min(request.mel_left_s, start)
            a, b = round((start - lead_s) * rate), round(end * rate)
            feats = features(samples[a:b])
            enc_inputs = {"features": feats["features"], "features_length": feats["features_length"]}
            ref_enc = reference.run(ENCODER, enc_inputs)
            cand_enc = candidate.run(ENCODER, enc_inputs) if encoder == ENCODER else \
                candidate.run(MEL_ENCODER, {"audio_signal": samples[None, a:b].astype(np.float32),
                                            "length": np.array([b - a], np.int64)})
            n_ref, n_cand = int(ref_enc["encoded_length"][0]), int(cand_enc["encoded_length"][0])
            r, c = ref_enc["encoded"][:, :, :n_ref], cand_enc["encoded"][:, :, :n_cand]
            stats = diff_stats(r, c, tol.atol, tol.rtol) if r.shape == c.shape else None
            texts, pieces = {}, {}
            for side, runtime, enc, n in (("reference", reference, ref_enc["encoded"], n_ref),
                                          ("candidate", candidate, cand_enc["encoded"], n_cand)):
                tokens, frames = decode(runtime, enc, n)
                origin = start - lead_s
                kept = [(t, origin + f * frame_s) for t, f in zip(tokens, frames, strict=True)
                        if keep_from <= origin + f * frame_s < keep_to and origin + f * frame_s >= start]
                merged[side][0].extend(t for t, _ in kept)
                merged[side][1].extend(time for _, time in kept)
                texts[side] = tokens_to_text(loaded, [t for t, _ in kept])
                pieces[side], so_far[side] = _piece(so_far[side], tokens_to_text(loaded, merged[side][0]), texts[side])
            windows.append(Window(index, start, end, keep_from, min(keep_to, audio.duration_s),
                                  float("nan") if stats is None else stats.max_abs,
                                  stats is not None and stats.ok, texts["reference"], texts["candidate"],
                                  pieces["reference"], pieces["candidate"]))
            emit(WindowCompared(windows[-1], len(spans)))
        progress("full-context reference", 0.95)
        feats = features(samples)
        full_enc = reference.run(ENCODER, {"features": feats["features"],
                                           "features_length": feats["features_length"]})
        full_tokens, full_frames = decode(reference, full_enc["encoded"], int(full_enc["encoded_length"][0]))
    finally:
        candidate.close()
    full_words = words(tokens_to_pieces(loaded, full_tokens), [f * frame_s for f in full_frames])
    all_edits: list[Edit] = []
    for side, (tokens, times) in merged.items():
        side_words: list[Word] = words(tokens_to_pieces(loaded, tokens), times)
        all_edits += edits(side, full_words, side_words)
    seams = [s[0] + request.overlap_s / 2 for s in spans[1:]]
    return WindowsResult(str(request.checkpoint), str(request.clip), audio.duration_s, RUNTIME_LABELS["pytorch"],
                         candidate.label, fit.window_s, request.overlap_s, request.mel_left_s,
                         tuple(windows), tokens_to_text(loaded, full_tokens),
                         tokens_to_text(loaded, merged["reference"][0]), tokens_to_text(loaded, merged["candidate"][0]),
                         tuple(seams), tuple(all_edits),
                         str(request.packages_dir) if request.packages_dir else None, tuple(notes), asdict(tol))


def _tolerance(request: StreamRequest, candidate: Any, notes: list[str]) -> Tolerance:
    """The request's tolerance, or, for a user's packages when none was given, the one their programs' real
    compute precision calls for (fp16 packages are judged as fp16), said in `notes`."""
    if request.packages_dir is None or request.tolerance_given:
        return request.tolerance
    if encoder_of(candidate) == MEL_ENCODER:  # judged as the encoder output it gives, at its program's precision
        own: Tolerance | None = (FP16 if candidate.tolerance_precision(MEL_ENCODER) == "fp16" else FP32)[ENCODER]
    else:
        own = (candidate.tolerances() or {}).get(ENCODER)
    if own is None:
        return request.tolerance
    notes.append(f"encoder tolerance atol {own.atol:g}, rtol {own.rtol:g}: what the packages' compute precision "
                 "calls for (give --atol / --rtol to choose)")
    return own
