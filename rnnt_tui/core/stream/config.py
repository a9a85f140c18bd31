"""What a streaming comparison is asked to do, and what the checkpoint's encoder allows.

`StreamRequest` is the one object front ends build. `streaming_contexts` reads a restored model's
cache-aware setup (att_context_style, the [left, right] contexts of a multi-lookahead model) and refuses a model
that cannot stream in one line naming why; `algorithmic_latency_ms` is the chunk plus its lookahead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnt_tui.core.errors import BadInputError
from rnnt_tui.core.tolerances import Tolerance

#: candidates the cache-aware streaming comparison runs
STREAM_CANDIDATES = ("onnx", "mil", "coreml", "coreai")
#: candidates the fixed-window pipeline runs (each window through the candidate's offline conversion)
WINDOW_CANDIDATES = STREAM_CANDIDATES
#: candidates whose streaming step can hold the caches in states (`--cache-states`): Core ML states (macOS 15
#: programs) with mil and coreml, Core AI states with coreai
CACHE_STATE_CANDIDATES = ("mil", "coreml", "coreai")
ALL_CONTEXTS = "all"
#: clips longer than this many seconds get NeMo's offline transcript in windows this long (`--offline-window`)
OFFLINE_WINDOW_S = 60.0
#: neighbouring offline windows overlap by this share of a window
OFFLINE_OVERLAP = 1 / 3


@dataclass(frozen=True)
class StreamRequest:
    """One streaming or windowed comparison.

    `att_context`: None (the model's default context), "L,R", or "all" (every lookahead of a multi-lookahead
    model). `window_s` set: the windowed pipeline for offline models, `overlap_s` between windows and
    `mel_left_s` of audio before each window fed for the mel/encoder left context and then dropped.
    `step_packages`: a third-party streaming step (an ONNX model, Core ML packages or Core AI assets,
    `core.stream.package_step`) run instead of the tool's own conversion, `role_map` naming the roles of tensors
    the tool cannot map by name. `offline` False skips NeMo's offline transcript; otherwise clips longer than
    `offline_window_s` get it in windows (`core.stream.offline`). `cache_states`: the tool's Core ML step keeps
    cache_last_channel and cache_last_time in Core ML states (`core.stream.state_step`; `cache_states_problem`).
    `packages_dir`: windows through the user's own offline packages (Core ML) or assets (Core AI) instead of the
    tool's conversion; a fixed window they declare sets `window_s` when it is None (`core.stream.window_fit`).
    """

    checkpoint: Path
    clip: Path
    against: str = "onnx"
    att_context: str | None = None
    window_s: float | None = None
    overlap_s: float = 0.0
    mel_left_s: float = 0.0
    tolerance: Tolerance = field(default_factory=lambda: Tolerance(atol=1e-3, rtol=1e-3))
    use_cache: bool = True
    step_packages: tuple[Path, ...] = ()  # a user's streaming step packages (one, or first + rest) instead of ours
    role_map: Path | None = None  # their tensor name -> role, where the names are not ones the tool knows
    offline: bool = True  # False: NeMo's offline transcript is skipped (`--no-offline`)
    offline_window_s: float = OFFLINE_WINDOW_S  # clips longer than this get the offline transcript in windows this long
    cache_states: bool = False  # the two float caches in Core ML states (`--cache-states`), not inputs and outputs
    packages_dir: Path | None = None  # windows only: the user's offline packages / assets (`--packages`), as shipped
    tolerance_given: bool = True  # False: `tolerance` is the default, and a user's packages set their own

    def resolved(self) -> StreamRequest:
        from dataclasses import replace

        return replace(self, checkpoint=self.checkpoint.expanduser().resolve(), clip=self.clip.expanduser().resolve(),
                       step_packages=tuple(p.expanduser().resolve() for p in self.step_packages),
                       role_map=self.role_map.expanduser().resolve() if self.role_map else None,
                       packages_dir=self.packages_dir.expanduser().resolve() if self.packages_dir else None)

    @property
    def windowed(self) -> bool:
        """The fixed-window pipeline (`--window`, or a user's packages whose fixed window sets it)."""
        return self.window_s is not None or self.packages_dir is not None


def states_kind(against: str) -> str:
    """Whose states `--cache-states` puts the caches in for candidate `against` (said wherever it is shown)."""
    return "Core AI states" if against == "coreai" else "Core ML states"


def cache_states_problem(request: StreamRequest) -> str | None:
    """Why `request.cache_states` cannot be honoured (None: it can, or was not asked for)."""
    if not request.cache_states:
        return None
    if request.against not in CACHE_STATE_CANDIDATES:
        return (f"--cache-states needs a Core ML program or a Core AI asset (--against "
                f"{', '.join(CACHE_STATE_CANDIDATES[:-1])} or {CACHE_STATE_CANDIDATES[-1]}); {request.against} "
                "carries the caches as inputs and outputs")
    if request.windowed:
        return "--cache-states is for cache-aware streaming, not --window"
    if request.step_packages:
        return "--cache-states converts rnnt-tui's own step; a --step package carries its caches as it was built"
    return None


#: what a windowed run's settings may be, in seconds (`stream --window / --overlap / --mel-left`, the app's `w`)
WINDOW_S_RANGE = (0.5, 3600.0)
MEL_LEFT_S_RANGE = (0.0, 60.0)


def windows_problem(window_s: float, overlap_s: float, mel_left_s: float) -> str | None:
    """Why these window settings cannot run (None: they can): the rules `stream --window` applies."""
    import math

    low, high = WINDOW_S_RANGE
    if not math.isfinite(window_s) or not low <= window_s <= high:
        return f"the window must be {low:g} to {high:g} s"
    if not math.isfinite(overlap_s) or not 0 <= overlap_s < window_s:
        return "the overlap must be 0 s or more and shorter than the window"
    low, high = MEL_LEFT_S_RANGE
    if not math.isfinite(mel_left_s) or not low <= mel_left_s <= high:
        return f"the mel left context must be {low:g} to {high:g} s"
    return None


def pairs(value: Any) -> list[list[int]]:
    """att_context_size as a list of [left, right] pairs (NeMo accepts one pair or a list of pairs)."""
    items = list(value)
    if items and not isinstance(items[0], (list, tuple)) and not hasattr(items[0], "__len__"):
        return [[int(items[0]), int(items[1])]]
    return [[int(p[0]), int(p[1])] for p in items]


def streaming_problem(encoder: Any) -> str | None:
    """Why this encoder cannot run NeMo's cache-aware streaming (None when it can)."""
    if not hasattr(encoder, "cache_aware_stream_step"):
        return f"its encoder ({type(encoder).__name__}) has no cache-aware streaming step"
    return context_problem(getattr(encoder, "att_context_style", None),
                           pairs(getattr(encoder, "att_context_size_all", None) or [[-1, -1]]))


#: what a model that cannot stream is told to do instead (the CLI's words; the app names its key in their place)
WINDOWS_INSTEAD = "--window S runs it in fixed windows"


def context_problem(style: Any, contexts: list[list[int]]) -> str | None:
    """Why an encoder of this att_context_style and these [left, right] contexts cannot stream (None: it can);
    from the restored encoder (`streaming_problem`) or, before NeMo, from the checkpoint's config
    (`core.stream.precheck`)."""
    if style != "chunked_limited":
        return (f"not a cache-aware streaming model: att_context_style {style!r}, att_context_size {contexts} "
                f"(streaming needs chunked_limited); {WINDOWS_INSTEAD}")
    if any(right < 0 for _, right in contexts):
        return f"its att_context_size {contexts} has an unlimited right context, so chunks cannot be formed"
    return None


def streaming_contexts(path: Path, encoder: Any) -> list[list[int]]:
    """The [left, right] contexts the encoder was trained with (the first is its default); BadInputError naming
    the file when it cannot stream."""
    problem = streaming_problem(encoder)
    if problem is not None:
        raise BadInputError(path, problem)
    return pairs(encoder.att_context_size_all)


def choose_contexts(path: Path, encoder: Any, wanted: str | None) -> list[list[int]]:
    """The contexts to run: the default, every one ("all"), or the "L,R" asked for (which must be one of them)."""
    contexts = streaming_contexts(path, encoder)
    if wanted is None:
        return [contexts[0]]
    if wanted == ALL_CONTEXTS:
        return contexts
    return [trained_context(path, wanted, contexts)]


def parse_att_context(wanted: str) -> list[int]:
    """An "L,R" `--att-context` as [left, right]; BadInputError for anything else."""
    try:
        left, right = (int(x) for x in wanted.split(","))
    except ValueError as exc:
        raise BadInputError(None, f"--att-context {wanted!r}: give L,R (e.g. 70,13) or 'all'") from exc
    return [left, right]


def trained_context(path: Path, wanted: str, contexts: list[list[int]]) -> list[int]:
    """The "L,R" asked for, which must be one of the model's `contexts`; BadInputError naming `path` otherwise."""
    left, right = parse_att_context(wanted)
    if [left, right] not in contexts:
        raise BadInputError(path, f"att_context_size [{left}, {right}] is not one the model was trained with "
                                  f"({contexts})")
    return [left, right]


def subsampling_factor(encoder: Any) -> int:
    return int(getattr(encoder, "subsampling_factor", 1) or 1)


def frame_ms(model: Any) -> float:
    """Milliseconds per encoder output frame (mel hop x subsampling)."""
    stride = float(model.cfg.preprocessor.get("window_stride", 0.01))
    return stride * 1000.0 * subsampling_factor(model.encoder)


def algorithmic_latency_ms(model: Any, context: list[int]) -> float:
    """A chunked_limited context emits chunks of right+1 frames: the first frame of a chunk waits for the rest of
    its chunk, so the latency is (right + 1) frames of audio (the lookahead is the chunk)."""
    return (context[1] + 1) * frame_ms(model)


STREAM_DEMO_CHECKPOINT = "streaming-rnnt.nemo"
STREAM_DEMO_CLIP = "stream-demo.wav"


def stream_demo() -> tuple[Path, Path]:
    """The bundled cache-aware demo checkpoint and its ~5 s clip (used when `stream` is given no files)."""
    from rnnt_tui.paths import demo_dir

    return demo_dir() / STREAM_DEMO_CHECKPOINT, demo_dir() / STREAM_DEMO_CLIP
