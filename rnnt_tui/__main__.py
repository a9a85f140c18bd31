"""`python -m rnnt_tui` is the same as the `rnnt-tui` command."""

from rnnt_tui.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
