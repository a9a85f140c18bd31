"""The baseline for bench/startup.py: a bare Textual hello-world app (a Header, a Static, a Footer).

Measured exactly like `rnnt-tui` (fresh process in a pseudo-terminal, time to the first frame). Run it alone with
`python bench/hello_app.py`; press q to quit.
"""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Footer, Header, Static


class HelloApp(App[None]):
    TITLE = "hello"
    BINDINGS = [("q", "quit", "Quit")]  # noqa: RUF012 - Textual's own idiom

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Hello, world")
        yield Footer()


if __name__ == "__main__":
    HelloApp().run()
