"""The key bar: the keys the main screen shows, drawn as one line by one widget.

Why one widget: Textual's `Footer` is a container of one `FooterKey` widget per key (13 here), composed only once
the screen has published its bindings, after the first frame. That compose, and the layout of the screen it asked
for, were a frame of ~25 ms of their own just after start-up (traced; one of the longest stalls of a session), and
its 14 widgets were laid out again in every later layout of the screen. This bar draws the same line from the first
frame - each key in the theme's footer colours with its description, the command palette's key on the right after
a thin edge, compact below 120 columns as `Footer(compact=True)` is - and only repaints, never lays out, when the
keys it shows change (a new keymap). As on `Footer`, clicking a key presses it (a disabled one rings the bell), and
a hovered key is highlighted and shows its tooltip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

if TYPE_CHECKING:
    from textual import events
    from textual.screen import Screen

EDGE = "▏"  # before the command palette's key (Textual's `vkey` border)
SCROLL_STEP = 4  # cells per notch of the mouse wheel


@dataclass(frozen=True)
class FooterItem:
    """One key as the bar shows it."""

    key: str  # what `App.simulate_key` presses
    display: str  # how the key is written (`App.get_key_display`)
    description: str
    enabled: bool
    tooltip: str
    palette: bool = False  # the command palette's key, drawn on the right


class KeyFooter(Widget, can_focus=False):
    """The keys with `Binding.show`, one line, one widget."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES: ClassVar[set[str]] = {"key-footer--key", "key-footer--description", "key-footer--hover",
                                             "key-footer--edge"}
    DEFAULT_CSS = """
    KeyFooter {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
        & > .key-footer--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        & > .key-footer--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        & > .key-footer--hover {
            background: $block-hover-background;
        }
        & > .key-footer--edge {
            color: $foreground 20%;
        }
    }
    """

    compact = reactive(False)
    """Less space around and between the keys (narrow terminals)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.items: tuple[FooterItem, ...] = ()
        self.spans: list[tuple[int, int, FooterItem]] = []  # (first cell, end cell, item) as last drawn
        self.hovered: FooterItem | None = None
        self.scrolled = 0  # cells of keys scrolled off the left (the mouse wheel, as on `Footer`)
        self.overflow = 0  # cells of keys that did not fit, as last drawn: as far as `scrolled` goes

    def on_mount(self) -> None:
        self.items = self.shown_items()
        self.screen.bindings_updated_signal.subscribe(self, self.bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def shown_items(self) -> tuple[FooterItem, ...]:
        """What `Footer` would show: the first binding with `show` of each action, then the command palette's."""
        active = self.screen.active_bindings
        items: list[FooterItem] = []
        actions: set[str] = set()
        for _node, binding, enabled, tooltip in active.values():
            if binding.show and binding.action not in actions:
                actions.add(binding.action)
                items.append(FooterItem(binding.key, self.app.get_key_display(binding), binding.description,
                                        enabled, tooltip or ""))
        palette = active.get(self.app.COMMAND_PALETTE_BINDING) if self.app.ENABLE_COMMAND_PALETTE else None
        if palette is not None:
            _node, binding, enabled, _tooltip = palette
            items.append(FooterItem(binding.key, self.app.get_key_display(binding), binding.description, enabled,
                                    binding.tooltip or binding.description, palette=True))
        return tuple(items)

    def bindings_changed(self, screen: Screen[Any]) -> None:
        """The screen published its bindings (focus moved, a tab changed, a keymap): repaint if the keys differ."""
        if screen is not self.screen or not self.is_attached:
            return
        items = self.shown_items()
        if items != self.items:
            self.items = items
            self.refresh()

    def render(self) -> Text:
        styles = {name: self.get_component_rich_style(f"key-footer--{name}")
                  for name in ("key", "description", "edge")}
        hover = Style(bgcolor=self.get_component_rich_style("key-footer--hover").bgcolor)  # blended on the bar
        dim = Style(dim=True)
        left, right = Text(no_wrap=True, end=""), Text(no_wrap=True, end="")
        left_spans: list[tuple[int, int, FooterItem]] = []
        right_spans: list[tuple[int, int, FooterItem]] = []
        for item in self.items:
            text, spans = (right, right_spans) if item.palette else (left, left_spans)
            if item.palette:
                text.append(EDGE, styles["edge"])
            extra = (hover if item == self.hovered else Style()) + (dim if not item.enabled else Style())
            start = text.cell_len
            compact = self.compact or item.palette  # the palette's key is compact on `Footer` too
            key = item.display if compact else f" {item.display} "
            description = f" {item.description}" if compact else f"{item.description} "
            text.append(key, styles["key"] + extra)
            text.append(description, styles["description"] + extra)
            spans.append((start, text.cell_len, item))
            if self.compact != item.palette:  # a compact key's margin; the palette's padding on a wide footer
                text.append(" ")
        room = max(self.size.width - right.cell_len, 0)  # the keys that do not fit scroll under the palette's
        self.overflow = max(left.cell_len - room, 0)
        self.scrolled = min(self.scrolled, self.overflow)
        shown = left[self.scrolled:self.scrolled + room]
        self.spans = [(a - self.scrolled, b - self.scrolled, item) for a, b, item in left_spans] + \
            [(room + a, room + b, item) for a, b, item in right_spans]
        return Text.assemble(shown, " " * (room - shown.cell_len), right, no_wrap=True, end="")

    def item_at(self, x: int) -> FooterItem | None:
        return next((item for start, end, item in self.spans if start <= x < end), None)

    def hover(self, item: FooterItem | None) -> None:
        if item != self.hovered:
            self.hovered = item
            self.tooltip = item.tooltip or None if item is not None else None
            self.refresh()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        self.hover(self.item_at(event.x))

    def on_leave(self, event: events.Leave) -> None:
        self.hover(None)

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self.scroll_keys(SCROLL_STEP)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.scroll_keys(-SCROLL_STEP)

    def scroll_keys(self, cells: int) -> None:
        scrolled = min(max(self.scrolled + cells, 0), self.overflow)
        if scrolled != self.scrolled:
            self.scrolled = scrolled
            self.hover(None)
            self.refresh()

    def on_mouse_down(self, event: events.MouseDown) -> None:
        item = self.item_at(event.x)
        if item is None:
            return
        if item.enabled:
            self.app.simulate_key(item.key)
        else:
            self.app.bell()
