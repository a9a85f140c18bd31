"""`rnnt-tui convert`: the model's components as Core ML packages (works on Linux too).

Precisions: fp32; fp16 as the tool converts it (index arithmetic and time-axis statistics kept in fp32, listed);
mixed (fp16 except the fewest ops the tool finds must stay fp32 on the given clips, printed as a reusable
op_selector); fp16-all (coremltools' plain fp16, to see what the exceptions fix). `--weights` compresses them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from rnnt_tui.cli import options
from rnnt_tui.cli.common import checkpoint_path, emit_json, guard, out, status
from rnnt_tui.exit_codes import ExitCode
from rnnt_tui.formatting import num

CONVERT_PRECISIONS = ("fp32", "fp16", "mixed", "fp16-all")  # coreml/convert_one.py PRECISIONS, not imported
WEIGHTS = ("int8", "palettize6", "palettize4")  # core/precision/weights.py WEIGHTS


def _kept(kept: list[dict[str, str]]) -> str:
    """The fp32 ops as op types and why (their MIL names are the tracer's numbers), e.g. "12: reduce_mean x4
    (normalisation statistic), cast x8 (shape arithmetic)"; --json lists every op by name."""
    if not kept:
        return "-"
    from collections import Counter

    groups = Counter((k.get("op_type", "?"), k.get("reason", "")) for k in kept)
    return f"{len(kept)}: " + ", ".join(f"{op_type} x{n}" + (f" ({reason})" if reason else "")
                                        for (op_type, reason), n in groups.most_common())


@click.command()
@click.argument("checkpoint", required=False)
@click.option("--precision", type=click.Choice(CONVERT_PRECISIONS), default="fp32", show_default=True,
              help="fp16: the tool's fp16 (shape / index arithmetic and normalisation statistics stay fp32); mixed: "
                   "fp16 except the ops the tool finds must stay fp32 on --clip; fp16-all: coremltools' plain fp16.")
@click.option("--weights", type=click.Choice(WEIGHTS), default=None,
              help="Compress the weights (coremltools.optimize: int8 linear quantisation, 6- or 4-bit palettes).")
@click.option("--clip", "clips", multiple=True, type=click.Path(dir_okay=False),
              help="Clips the mixed-precision search checks (repeat; default: the demo's clips).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="coreml-packages", show_default=True,
              help="Folder for the .mlpackage files (created; existing packages of the same name are replaced).")
@click.option("--max-frames", type=click.IntRange(16, 100000), default=None,
              help="Upper bound of the flexible encoder time axis, in encoder frames.")
@click.option("--target", "deployment_target", default="macOS14", show_default=True,
              help="Minimum deployment target (macOS14, macOS15, iOS17, ...).")
@options.json_mode
def convert(checkpoint: str | None, precision: str, weights: str | None, clips: tuple[str, ...], out_dir: str,
            max_frames: int | None, deployment_target: str, json_mode: bool) -> None:
    """Convert CHECKPOINT's components to Core ML packages (works on Linux too)."""
    def body() -> int:
        from rnnt_tui.core.coreml.convert import write_packages
        from rnnt_tui.core.precision.mixed import find_mixed_precision

        with status(json_mode) as progress:
            def keep_fp32(loaded: Any) -> dict[str, tuple[str, ...]]:  # the mixed-precision search (cached)
                return find_mixed_precision(loaded, clips=[Path(c) for c in clips], max_frames=max_frames,
                                            minimum_deployment_target=deployment_target, progress=progress
                                            ).keep_by_component()

            packages = write_packages(checkpoint_path(checkpoint), Path(out_dir), precision=precision,
                                      max_frames=max_frames, minimum_deployment_target=deployment_target,
                                      progress=progress, weights=weights, keep_fp32=keep_fp32)
        rows = [p.to_json() for p in packages]
        if json_mode:
            emit_json(rows)
            return ExitCode.OK
        label = precision + (f", {weights} weights" if weights else "")
        table = Table(title=f"Core ML packages ({label}) in {out_dir}", title_justify="left")
        for col in ("component", "package", "seconds", "cached", "meant for", "ops kept in fp32"):
            table.add_column(col, overflow="fold")
        for row in rows:
            table.add_row(str(row.get("component")), str(row.get("path")), num(row.get("seconds")),
                          "yes" if row.get("cached") else "no", str(row.get("intended_compute_units") or "-"),
                          _kept(row.get("fp32_ops") or []))
        out.print(table)
        for row in rows:
            out.print(f"{row.get('component')}: meant for {row.get('intended_compute_units')}: "
                      f"{row.get('intended_why')}", highlight=False)
        return ExitCode.OK

    guard(body)
