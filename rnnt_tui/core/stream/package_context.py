"""Which of the model's att contexts a user's streaming step (`stream --step PKG`) was built for.

An exported cache-aware step has its att context baked in (the chunked attention mask is traced as constants), and
a package states it only through its declared shapes: the feature frames of a chunk (the context's chunk plus its
pre-encode cache, `steps.pre_encode`; one file for every chunk takes the later chunks' frames, the first chunk
zero-padded) and the time axis of `cache_last_channel` (the context's left cache). `package_contexts` reads those
against the model's streaming_cfg at each context:

- `--att-context all`: the contexts the package fits run (one line saying which, when that is not all of them);
  none fitting, or a dynamic time axis (the package does not say its context), is refused in one line naming the
  package and why (BadInputError: exit 2) - running it at a context it was not built for would look like a port bug;
- one context (`L,R`, or the model's default): refused the same way when the package's fixed shapes are another
  context's, naming the one to give; a dynamic axis runs as asked (the package cannot be checked).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rnnt_tui.core.errors import BadInputError
from rnnt_tui.core.stream.config import ALL_CONTEXTS, streaming_contexts
from rnnt_tui.core.stream.package_io import package_roles
from rnnt_tui.core.stream.reference import set_context
from rnnt_tui.core.stream.steps import PHASES, pre_encode


def _wanted(model: Any, context: list[int], single: bool) -> tuple[dict[str, int], int]:
    """(phase -> the chunk frames a package for `context` takes, cache_last_channel's time axis) at `context`."""
    set_context(model, context)
    cfg = model.encoder.streaming_cfg
    frames = {phase: sum(pre_encode(cfg, phase)) for phase in PHASES}
    if single:  # one program for every chunk: the later chunks' shape, the first padded into it
        frames = dict.fromkeys(PHASES, frames["next"])
    return frames, int(model.encoder.get_initial_cache_state(batch_size=1)[0].shape[2])


def _frames_text(frames: dict[str, int]) -> str:
    return str(frames["first"]) if frames["first"] == frames["next"] else f"{frames['first']}/{frames['next']}"


def package_contexts(packages: tuple[Path, ...], role_map: Path | None, engine: str, model: Any,
                     contexts: list[list[int]], asked: str | None) -> tuple[list[list[int]], list[str]]:
    """(the contexts to run the package at, notes); `contexts` are the ones `asked` chose (`choose_contexts`).
    The encoder is left at its default context."""
    paths, specs, inputs, _ = package_roles(packages, role_map, engine)
    single = len(set(paths.values())) == 1
    name = " + ".join(dict.fromkeys(p.name for p in paths.values()))
    declared_frames = {p: specs[p].input(inputs[p]["audio_signal"]).shape[-1] for p in PHASES}
    declared_cache = {p: specs[p].input(inputs[p]["cache_last_channel"]).shape[2] for p in PHASES}
    where = Path(paths["first"])
    default = [int(x) for x in model.encoder.att_context_size]
    every = streaming_contexts(where, model.encoder)
    try:
        wanted = {tuple(c): _wanted(model, c, single) for c in every}
    finally:
        set_context(model, default)
    dynamic = any(not isinstance(v, int) or v < 0 for v in (*declared_frames.values(), *declared_cache.values()))
    fits = [c for c in every if not dynamic and all(
        declared_frames[p] == wanted[tuple(c)][0][p] and declared_cache[p] == wanted[tuple(c)][1] for p in PHASES)]
    shapes = (f"a chunk of {_frames_text(declared_frames)} feature frames and a cache_last_channel of "
              f"{declared_cache['next']} frames")
    takes = "; ".join(f"{c} takes {_frames_text(wanted[tuple(c)][0])} and {wanted[tuple(c)][1]}" for c in every)
    if asked == ALL_CONTEXTS:
        if dynamic:
            raise BadInputError(where, f"--att-context all: {name} has a dynamic time axis, so it does not say which "
                                       f"att context it was built for (the model's: {every}); give --att-context L,R")
        if not fits:
            raise BadInputError(where, f"--att-context all: {name} declares {shapes}, which fits none of the model's "
                                       f"att contexts ({takes})")
        if len(fits) < len(every):
            rest = [c for c in every if c not in fits]
            return fits, [f"--att-context all: {name} declares {shapes}, att context "
                          f"{' and '.join(map(str, fits))} only; not run at {', '.join(map(str, rest))}"]
        return fits, []
    if not dynamic:
        for context in contexts:
            if context not in fits:
                hint = (f"give --att-context {','.join(map(str, fits[0]))}" if fits
                        else "it fits none of the model's att contexts")
                raise BadInputError(where, f"{name} declares {shapes}, not att context {context}'s ({takes}): {hint}")
    return contexts, []

