"""`rnnt-tui [CHECKPOINT] [AUDIO]`: open the interactive app (Textual is imported only here)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from rnnt_tui.cli import options


@click.command("open")
@click.argument("checkpoint", required=False)
@click.argument("audio", required=False)
@options.against(required=False)
@options.compute_units
@options.precision
@options.threads
@options.runs
@options.warmup
@options.packages
def open_app(checkpoint: str | None, audio: str | None, against: str | None, compute_units: str, precision: str,
             runs: int, warmup: int, packages: str | None) -> None:
    """Open the interactive app (the default command). Second runtime: coreml on macOS, onnx elsewhere; for a
    recorded bundle, what it can replay."""
    from rnnt_tui.app.main import run_app

    code = run_app(Path(checkpoint).expanduser() if checkpoint else None,
                   Path(audio).expanduser() if audio else None, against=against, compute_units=compute_units,
                   precision=precision, runs=runs, warmup=warmup, packages=packages)
    sys.exit(code)
