"""A checkpoint on disk: its summary (instant, config only), its content hash, and the restored NeMo model.

Restoring runs NeMo's loader, which unpickles the weights: only open checkpoints you trust. The file itself is
only ever read.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnt_tui.core.errors import BadInputError, CancelledError
from rnnt_tui.core.quiet import calm_loggers, gc_frozen, quiet
from rnnt_tui.core.summary import ModelSummary, read_summary

_HASH_CHUNK = 8 * 1024 * 1024


def content_hash(path: Path, cache_dir: Path | None = None, cancel: threading.Event | None = None) -> str:
    """SHA-256 of the file, remembered per (path, size, mtime, inode) so a large checkpoint is hashed once."""
    stat = path.stat()
    stamp = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ino}"
    memo = cache_dir / "hashes" / (hashlib.sha256(stamp.encode()).hexdigest()[:32] + ".json") if cache_dir else None
    if memo is not None and memo.is_file():
        try:
            return str(json.loads(memo.read_text())["sha256"])
        except (ValueError, KeyError, OSError):
            pass
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            if cancel is not None and cancel.is_set():
                raise CancelledError("cancelled while hashing the checkpoint")
            digest.update(chunk)
    value = digest.hexdigest()
    if memo is not None:
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            tmp = memo.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"sha256": value, "stamp": stamp}))
            os.replace(tmp, memo)
        except OSError:
            pass  # an unwritable cache only costs a re-hash next time
    return value


@dataclass
class LoadedModel:
    """A restored NeMo transducer in eval mode on CPU, with the summary it was opened from."""

    path: Path
    summary: ModelSummary
    model: Any
    sha256: str
    restore_s: float
    notes: list[str] = field(default_factory=list)

    def eval(self) -> Any:
        """Put every module in eval mode (NeMo's restore and transcribe leave them training) and return it.
        Cheap when nothing is training (it runs before every component call): only the modules that
        `transcribe()` is known to leave training are looked at before walking the whole tree."""
        model = self.model
        parts = [model, *(getattr(model, n, None) for n in ("preprocessor", "encoder", "decoder", "joint"))]
        if any(getattr(part, "training", False) for part in parts):
            model.eval()
        return model


def _restore_problem(exc: BaseException, model_class: str) -> str:
    """What NeMo's failure means for the user, in one line."""
    import pickle

    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    lowered = f"{type(exc).__name__} {detail}".lower()
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in lowered or "unpickl" in lowered:
        return "model_weights.ckpt is not a plain state dict (corrupt, or it holds pickled code, which is refused)"
    if "unsafetarget" in lowered or "could not" in lowered or "locate" in lowered or "import" in lowered:
        return f"NeMo cannot build the model class the config names ({model_class}): {detail}"
    if "size mismatch" in lowered or "missing key" in lowered or "unexpected key" in lowered:
        return f"the weights do not fit the model its config describes ({detail})"
    return f"NeMo could not restore it ({type(exc).__name__}: {detail})"


def restore(path: Path | str, summary: ModelSummary | None = None, cache_dir: Path | None = None,
            cancel: threading.Event | None = None) -> LoadedModel:
    """Restore the full model through NeMo on CPU in eval mode. Raises BadInputError naming the file."""
    import time

    path = Path(path).expanduser()
    summary = summary or read_summary(path)
    sha = content_hash(path, cache_dir, cancel)
    start = time.perf_counter()
    with quiet() as captured:
        with gc_frozen():
            import torch  # heavy: only when a model is really restored
            from nemo.collections.asr.models import ASRModel
        calm_loggers()  # NeMo's own logger exists only now

        try:
            model = ASRModel.restore_from(str(path), map_location=torch.device("cpu"))
        except Exception as exc:
            raise BadInputError(path, _restore_problem(exc, summary.model_class)) from exc
    if not hasattr(model, "joint") or not hasattr(model, "decoder"):
        raise BadInputError(path, f"restored a {type(model).__name__}, which is not a transducer")
    model.eval()
    from rnnt_tui.core.fuse import fuse_mode_of

    fuse_mode_of(model)  # remember the saved mode before any session switches it
    loaded = LoadedModel(path=path, summary=summary, model=model, sha256=sha,
                         restore_s=time.perf_counter() - start)
    if captured.text.strip():
        loaded.notes.append(captured.text.strip())
    return loaded


def copy_model(model: Any) -> Any:
    """A deep copy of a NeMo model. ModelPT wraps `training_step` in a wrapt proxy that refuses deepcopy; the
    copy shares those proxies (nothing here trains)."""
    import copy

    memo = {id(v): v for v in vars(model).values() if hasattr(v, "__wrapped__")}
    return copy.deepcopy(model, memo)
