"""The `rnnt-tui` command: opens the app, or runs a headless subcommand (`cli.group` reads the command line).

`rnnt-tui` with nothing after it - the most common start - opens the app on the bundled demo without importing
click or reading options (every option has its default then), so the first frame does not wait for them.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv) == []:
        from rnnt_tui.app.main import run_app
        from rnnt_tui.core.names import DEFAULT_COMPUTE_UNITS, DEFAULT_PRECISION

        return run_app(compute_units=DEFAULT_COMPUTE_UNITS, precision=DEFAULT_PRECISION)
    from rnnt_tui.cli.group import run

    return run(argv)
