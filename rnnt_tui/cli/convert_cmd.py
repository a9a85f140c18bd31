"""`rnnt-tui convert`: the model's components as Core ML packages (works on Linux too)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from rnnt_tui.cli import options
from rnnt_tui.cli.common import checkpoint_path, emit_json, guard, out, status
from rnnt_tui.exit_codes import ExitCode
from rnnt_tui.formatting import num


@click.command()
@click.argument("checkpoint", required=False)
@options.precision
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="coreml-packages", show_default=True,
              help="Folder for the .mlpackage files (created; existing packages of the same name are replaced).")
@click.option("--max-frames", type=click.IntRange(16, 100000), default=None,
              help="Upper bound of the flexible encoder time axis, in encoder frames.")
@click.option("--target", "deployment_target", default="macOS14", show_default=True,
              help="Minimum deployment target (macOS14, macOS15, iOS17, ...).")
@options.json_mode
def convert(checkpoint: str | None, precision: str, out_dir: str, max_frames: int | None, deployment_target: str,
            json_mode: bool) -> None:
    """Convert CHECKPOINT's components to Core ML packages (works on Linux too)."""
    def body() -> int:
        from rnnt_tui.core.coreml.convert import write_packages

        with status(json_mode) as progress:
            packages = write_packages(checkpoint_path(checkpoint), Path(out_dir), precision=precision,
                                      max_frames=max_frames, minimum_deployment_target=deployment_target,
                                      progress=progress)
        rows = [p.to_json() for p in packages]
        if json_mode:
            emit_json(rows)
            return ExitCode.OK
        table = Table(title=f"Core ML packages ({precision}) in {out_dir}", title_justify="left")
        for col in ("component", "package", "seconds", "cached"):
            table.add_column(col)
        for row in rows:
            table.add_row(str(row.get("component")), str(row.get("path")), num(row.get("seconds")),
                          "yes" if row.get("cached") else "no")
        out.print(table)
        return ExitCode.OK

    guard(body)
