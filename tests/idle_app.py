"""An app that opens nothing: the first frame and what the widgets draw from the state, with no engine call.

It overrides `open_checkpoint`, not `on_ready`: Textual calls RnntApp's own `on_ready` for the `Ready` event as
well as a subclass's, so an `on_ready` override still opened the demo with a real engine, whose events then raced
the test and the app's teardown."""

from __future__ import annotations

from pathlib import Path

from rnnt_tui.app.app import RnntApp


class IdleApp(RnntApp):
    def open_checkpoint(self, path: Path, audio: Path | None = None) -> None:
        pass
