"""What a streaming comparison's files and options alone show it cannot do, said before NeMo is imported.

`rnnt-tui stream` calls `check_stream_inputs` (and `record --stream` calls `check_streaming_checkpoint`) first,
so a missing or corrupt checkpoint or clip, a checkpoint whose config says it is not cache-aware, an
`--att-context` that is malformed or not one the config lists, an unknown windowed candidate, or
`--cache-states` on the wrong runtime is refused in a fraction of a second, not after NeMo's import (~5 s), the
restore and the streaming step's conversion. The checks on the restored model (`config.streaming_contexts`,
`audio.load_audio`) stay the authority; these only come first, in the same words. Nothing here imports NeMo or
torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rnnt_tui.core.errors import BadInputError, RuntimeUnavailableError
from rnnt_tui.core.stream.config import (
    ALL_CONTEXTS,
    WINDOW_CANDIDATES,
    StreamRequest,
    cache_states_problem,
    context_problem,
    pairs,
    parse_att_context,
    trained_context,
)

#: encoders whose config this reads as NeMo's ConformerEncoder does (att_context_style "regular" and an unlimited
#: context when the config leaves them out); another encoder is left to the check on the restored model
CONFORMER = "Conformer"


def check_stream_inputs(request: StreamRequest) -> None:
    """BadInputError (exit 2) or RuntimeUnavailableError (exit 3) for what `request` cannot do, from its options,
    the checkpoint's archive and config, and the clip's header; the user's step packages are checked before the
    checkpoint, as the comparison itself does."""
    request = request.resolved()
    problem = cache_states_problem(request)
    if problem:
        raise BadInputError(None, problem)
    if request.windowed and request.against not in WINDOW_CANDIDATES:
        raise RuntimeUnavailableError(f"no windowed candidate {request.against!r} (choose "
                                      f"{', '.join(WINDOW_CANDIDATES)})")
    if request.step_packages:
        from rnnt_tui.core.stream.package_io import package_roles

        package_roles(request.step_packages, request.role_map, request.against)
    if not request.windowed:
        check_streaming_checkpoint(request.checkpoint, request.att_context)
    else:
        from rnnt_tui.core.summary import read_summary

        if request.att_context not in (None, ALL_CONTEXTS):
            parse_att_context(request.att_context)
        read_summary(request.checkpoint)
    from rnnt_tui.core.audio import check_readable

    check_readable(request.clip)


def check_streaming_checkpoint(path: Path, att_context: str | None = None) -> None:
    """BadInputError naming `path` when its archive or config cannot be used, when its config says the encoder
    cannot stream, or when `att_context` ("L,R") is not one of the contexts the config lists."""
    from rnnt_tui.core.archive import read_archive
    from rnnt_tui.core.summary import parse_config, read_summary

    path = Path(path).expanduser()
    if att_context not in (None, ALL_CONTEXTS):
        parse_att_context(att_context)
    read_summary(path)
    encoder: Any = parse_config(read_archive(path).config_text, path).get("encoder")
    if not isinstance(encoder, dict) or CONFORMER not in str(encoder.get("_target_", "")):
        return
    try:
        contexts = pairs(encoder.get("att_context_size") or [[-1, -1]])
    except (TypeError, ValueError, IndexError, KeyError):
        return  # a layout NeMo may still read: the restored model's check says what is wrong
    problem = context_problem(encoder.get("att_context_style", "regular"), contexts)
    if problem:
        raise BadInputError(path, problem)
    if att_context not in (None, ALL_CONTEXTS):
        trained_context(path, att_context, contexts)
