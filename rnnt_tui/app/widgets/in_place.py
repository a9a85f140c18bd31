"""Updating a Static without laying the whole screen out again when its box keeps its size.

`Static.update` asks Textual for a layout, and a layout reflows every widget on the screen and repaints whatever it
touched (5–25 ms on this app's screen, while steps run). Most of this app's updates keep the box as it was: a
status word changes, a figure replaces a placeholder of as many lines, a step's detail is redrawn at the same
height. `update_in_place` measures the new content at the widget's present width and asks for the layout only when
the content's height (or, for a widget sized to its content, its width) differs from the box's. A box sized to its
content (`height: auto`) is compared with the size its last layout gave it, so an update measures one content; any
other box with the old content's measure (kept from the last update, else measured too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast
from weakref import WeakKeyDictionary

from textual.visual import Visual, VisualType
from textual.widgets import Static

if TYPE_CHECKING:
    from textual.css.scalar import Scalar
    from textual.css.styles import RulesMap

#: per widget: (content width, container width) measured at, and the (height, width) its content took there
_MEASURED: WeakKeyDictionary[Static, tuple[tuple[int, int], tuple[int, int | None]]] = WeakKeyDictionary()


def update_in_place(widget: Static, content: VisualType) -> None:
    """`widget.update(content)`, laying the screen out only if `content` needs a box of another size."""
    width = widget.content_size.width
    if not widget.is_mounted or width <= 0:  # not laid out yet: its first layout measures it
        _MEASURED.pop(widget, None)
        widget.update(content)
        return
    at = (width, widget.container_size.width)
    kept = _MEASURED.get(widget)
    if kept is not None and kept[0] == at:
        before = kept[1]
    elif widget.styles.height is not None and widget.styles.height.is_auto:  # the box is its content's size
        auto_width = widget.styles.width is not None and widget.styles.width.is_auto
        before = (widget.content_size.height, width if auto_width else None)
    else:
        before = _measure(widget, widget.visual, at)
    widget.update(content, layout=False)
    widget.clear_cached_dimensions()
    after = _measure(widget, widget.visual, at)
    _MEASURED[widget] = (at, after)
    if after != before:
        widget.refresh(layout=True)


def _measure(widget: Static, visual: Visual, at: tuple[int, int]) -> tuple[int, int | None]:
    """The content height `visual` gives the box at the content width, and, for a widget sized to its content,
    the content width it gives it - each within the widget's cell limits (min / max height and width, which
    count the padding and border)."""
    styles = widget.styles
    rules = cast("RulesMap", styles)  # what Textual's own `get_content_height` passes a visual
    gutter = styles.gutter
    height = _within(visual.get_height(rules, at[0]), styles.min_height, styles.max_height, gutter.height)
    if styles.width is None or not styles.width.is_auto:
        return height, None
    width = visual.get_optimal_width(rules, at[1])
    return height, _within(width, styles.min_width, styles.max_width, gutter.width)


def _within(size: int, low: Scalar | None, high: Scalar | None, gutter: int) -> int:
    if low is not None and low.is_cells:
        size = max(size, int(low.value) - gutter)
    if high is not None and high.is_cells:
        size = min(size, int(high.value) - gutter)
    return size
