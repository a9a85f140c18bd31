"""The app's small memory across runs: recently opened checkpoints and clips, and the chosen theme.

Stored as JSON at `paths.recent_files()` (the user state dir, RNNT_TUI_STATE_DIR overrides it). A missing or
unreadable file is an empty memory; a failed write raises `OSError` (the app says so once, and goes on).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnt_tui.paths import recent_files

KINDS = ("checkpoints", "audio")
KEEP = 10


@dataclass
class Recent:
    """Most recent first, absolute paths as strings."""

    checkpoints: list[str] = field(default_factory=list)
    audio: list[str] = field(default_factory=list)
    theme: str | None = None

    @classmethod
    def load(cls, path: Path | None = None) -> Recent:
        path = path or recent_files()
        try:
            data: Any = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls()
        if not isinstance(data, dict):
            return cls()

        def strings(key: str) -> list[str]:
            value = data.get(key)
            return [str(v) for v in value if isinstance(v, str)][:KEEP] if isinstance(value, list) else []

        theme = data.get("theme")
        return cls(checkpoints=strings("checkpoints"), audio=strings("audio"),
                   theme=theme if isinstance(theme, str) else None)

    def add(self, kind: str, path: Path) -> None:
        entries: list[str] = getattr(self, kind)
        text = str(path.expanduser().resolve())
        entries[:] = [text, *[e for e in entries if e != text]][:KEEP]

    def existing(self, kind: str) -> list[Path]:
        return [Path(p) for p in getattr(self, kind) if Path(p).is_file()]

    def save(self, path: Path | None = None) -> None:
        """Write atomically; `OSError` (an unwritable state dir, a full disk) is the caller's to report."""
        path = path or recent_files()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps({"checkpoints": self.checkpoints, "audio": self.audio, "theme": self.theme},
                                      indent=2))
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
