"""The `rnnt-tui` command: opens the app, or runs a headless subcommand (`cli.group` reads the command line).

`rnnt-tui` with nothing after it - the most common start - or with only a checkpoint (or bundle) and a clip opens
the app without importing click or reading options (every option has its default then), so the first frame does
not wait for them.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: subcommand -> "module:click command" in this package (`cli.group` loads each when named)
COMMANDS = {
    "open": "open_app:open_app",
    "inspect": "inspect_cmd:inspect",
    "run": "run_cmd:run",
    "compare": "compare_cmd:compare",
    "convert": "convert_cmd:convert",
    "cache": "cache_cmd:cache",
    "corpus": "corpus_cmd:corpus",
    "corpus-report": "corpus_cmd:corpus_report",
    "record": "bundle_cmd:record",
    "replay": "bundle_cmd:replay",
    "precision": "precision_cmd:precision",
    "lint": "precision_cmd:lint",
    "stream": "stream_cmd:stream",
    "coreai-drift": "coreai_cmd:coreai_drift",
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) <= 2 and not any(arg.startswith("-") for arg in args) and (not args or args[0] not in COMMANDS):
        from rnnt_tui.app.main import run_app  # `rnnt-tui [CHECKPOINT] [AUDIO]`: what `open` does with them
        from rnnt_tui.core.names import DEFAULT_COMPUTE_UNITS, DEFAULT_PRECISION

        paths = [Path(arg).expanduser() if arg else None for arg in args] + [None, None]
        return run_app(paths[0], paths[1], compute_units=DEFAULT_COMPUTE_UNITS, precision=DEFAULT_PRECISION)
    from rnnt_tui.cli.group import run

    return run(argv)
