"""The key bar: Textual's `Footer`, composed once after the first frame and again only when the keys it shows
change.

Why: Textual's `Footer` composes its keys after the screen first publishes its bindings (after the first frame),
then recomposes on every publication - the screen coming up, the first focus, the refresh queued after the
focus: three composes in the first half second, each mounting and restyling ~13 keys, each key twice (it starts
compact, then takes the footer's `compact`): ~30 ms of the UI thread each, the longest start-up stalls after the
first frame. The keys shown (`Binding.show`) do not change with the focus here, so this footer checks, once per
30 ms at most, whether what it would show differs from what it shows, and builds each key in the footer's
compact state: one compose of ~12 ms. (Composing the keys with the first frame instead made it ~25 ms slower.)"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.widgets import Footer
from textual.widgets._footer import FooterKey  # the key widget (Textual does not export it)

if TYPE_CHECKING:
    from textual.app import ComposeResult
    from textual.screen import Screen


CHECK_AFTER = 0.03  # s: the keys are checked (and composed) this long after the bindings change


class KeyFooter(Footer):
    """`Footer`, recomposed only for a change in the keys shown."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._shown: object = None  # what the last compose showed (`shown_keys`)
        self._check_queued = False

    def shown_keys(self) -> object:
        """What `Footer.compose` would show now: the bindings with `show`, the command palette's, the options."""
        active = self.screen.active_bindings
        keys = tuple(
            (binding, self.app.get_key_display(binding), enabled, tooltip)
            for _node, binding, enabled, tooltip in active.values()
            if binding.show
        )
        palette = active.get(self.app.COMMAND_PALETTE_BINDING)
        return (
            keys,
            palette[1:] if palette is not None else None,
            self.show_command_palette,
            self.app.ENABLE_COMMAND_PALETTE,
            self.combine_groups,
        )

    def compose(self) -> ComposeResult:
        """`Footer.compose`, each key built already in the footer's `compact` state: a key starts compact and is
        then bound to the footer's value, so each restyled itself twice on mounting."""
        self._shown = self.shown_keys() if self._bindings_ready else None
        for widget in super().compose():
            if isinstance(widget, FooterKey) and not widget.has_class("-command-palette"):  # that one is not bound
                widget.set_reactive(FooterKey.compact, self.compact)  # so neither its watcher nor the binding runs
                widget.set_class(self.compact, "-compact", update=False)  # what that watcher would have set
            yield widget

    def bindings_changed(self, screen: Screen[Any]) -> None:
        """As `Footer.bindings_changed`, but one check per `CHECK_AFTER` and no recompose unless the keys shown
        changed."""
        self._bindings_ready = True
        if not screen.app.app_focus or not self.is_attached or screen is not self.screen or self._check_queued:
            return
        self._check_queued = True
        # a timer, not `call_after_refresh`: its callbacks run straight after the refresh, so the first compose
        # (~12 ms) ran in the same stall as the screen's second layout just after the first frame (~16 ms)
        self.set_timer(CHECK_AFTER, self._recompose_if_changed)

    async def _recompose_if_changed(self) -> None:
        self._check_queued = False
        if self.is_attached and self.shown_keys() != self._shown:
            await self.recompose()
