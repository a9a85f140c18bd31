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
@options.subset
@options.rest
def open_app(checkpoint: str | None, audio: str | None, against: str | None, compute_units: str, precision: str,
             runs: int, warmup: int, packages: str | None, subset_spec: str | None, rest: str) -> None:
    """Open the interactive app (the default command). Second runtime: coreml on macOS, onnx elsewhere; for a
    recorded bundle, what it can replay. AUDIO may be a corpus manifest (`--subset` / `--rest` fill the Corpus
    tab's subset field, as `corpus` takes them)."""
    from rnnt_tui.app.main import run_app

    subset = options.parse_subset(subset_spec, rest, against)
    code = run_app(Path(checkpoint).expanduser() if checkpoint else None,
                   Path(audio).expanduser() if audio else None, against=against, compute_units=compute_units,
                   precision=precision, runs=runs, warmup=warmup, packages=packages, subset=subset)
    sys.exit(code)
