"""`rnnt-tui inspect`: the model summary from the archive's config alone (nothing restored or executed)."""

from __future__ import annotations

import click

from rnnt_tui.cli import options
from rnnt_tui.cli.common import checkpoint_path, emit_json, guard, out
from rnnt_tui.exit_codes import ExitCode


@click.command()
@click.argument("checkpoint", required=False)
@options.json_mode
def inspect(checkpoint: str | None, json_mode: bool) -> None:
    """Summarise CHECKPOINT from its config alone (nothing is restored or executed)."""
    def body() -> int:
        from rnnt_tui.cli.render import summary_table
        from rnnt_tui.core.summary import read_summary

        summary = read_summary(checkpoint_path(checkpoint))
        if json_mode:
            emit_json(summary.to_json())
        else:
            out.print(summary_table(summary))
        return ExitCode.OK

    guard(body)
