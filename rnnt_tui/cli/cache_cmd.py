"""`rnnt-tui cache`: list or clear the exports and conversions cached in the user cache dir."""

from __future__ import annotations

import click
from rich.table import Table

from rnnt_tui.cli import options
from rnnt_tui.cli.common import emit_json, err, guard, out
from rnnt_tui.exit_codes import ExitCode
from rnnt_tui.formatting import file_size


@click.command()
@click.argument("action", type=click.Choice(["list", "clear"]), default="list")
@options.json_mode
def cache(action: str, json_mode: bool) -> None:
    """List or clear cached exports and conversions."""
    def body() -> int:
        from rnnt_tui.core.cache import ArtifactCache

        store = ArtifactCache()
        if action == "clear":
            err.print(f"removed {store.clear()} entries from {store.root}")
            return ExitCode.OK
        entries = store.entries()
        if json_mode:
            emit_json([{"key": e.key, "path": str(e.path), "size_bytes": e.size_bytes, **e.what(), "meta": e.meta}
                       for e in entries])
            return ExitCode.OK
        table = Table(title=f"Cache: {store.root}", title_justify="left")
        for col in ("key", "runtime", "component", "checkpoint", "size", "state"):
            table.add_column(col)
        for e in entries:
            what = e.what()
            table.add_row(e.key[:12], what["runtime"] or "-", what["component"] or "-", what["checkpoint"] or "-",
                          file_size(e.size_bytes), "corrupt" if e.meta.get("corrupt") else "ok")
        out.print(table)
        return ExitCode.OK

    guard(body)
