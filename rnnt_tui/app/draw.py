"""Drawing the state: every widget of the main view updated from `state.AppState`, nothing computed.

The base of the app's behaviour (`actions.Actions` - what the keys do - and `controller.Controller` - what each
engine event does - build on it). These methods only read the state and update widgets; none calls the engine.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
from functools import partial
from typing import TYPE_CHECKING

from textual.widgets import Static, TabbedContent, TabPane

from rnnt_tui.app.widgets.detail import DetailView
from rnnt_tui.app.widgets.fuse_panel import FusePanel
from rnnt_tui.app.widgets.in_place import update_in_place
from rnnt_tui.app.widgets.model_panel import ModelPanel
from rnnt_tui.app.widgets.pipeline import PipelineStrip
from rnnt_tui.app.widgets.status import StatusLine
from rnnt_tui.core.components import COMPONENTS, STEPS
from rnnt_tui.core.names import Status

if TYPE_CHECKING:
    from collections.abc import Callable

    from textual.app import App
    from textual.widget import AwaitMount, Widget

    from rnnt_tui.app.client import EngineClient
    from rnnt_tui.app.recent import Recent
    from rnnt_tui.app.state import AppState
    from rnnt_tui.app.widgets.corpus_view import CorpusView
    from rnnt_tui.app.widgets.stream_view import StreamView
    from rnnt_tui.app.widgets.windows_view import WindowsView
    from rnnt_tui.core.corpus.subset import Subset

    _Base = App[int]
else:
    _Base = object


#: the tabs that show step results (the Step tab's detail, the tables, pictures and transcripts)
RESULT_PANES = ("tab-step", "tab-tables", "tab-pictures", "tab-transcripts")


class Drawing(_Base):
    """The state, drawn. Only the tab on screen is drawn when something changes (`draw_tabs`); a tab missed a
    change is drawn from the state when it is shown, and a tab's widgets are mounted the first time it is shown
    (`lazy_pane_widgets`), so the first frame lays out the Step tab only."""

    state: AppState
    client: EngineClient
    recent: Recent
    mounted_panes: set[str]  # the tabs whose widgets exist
    premounting: list[tuple[Widget, Widget]]  # (parent, widget) still to mount ahead of the Tables tab
    premount_inflight: AwaitMount | None  # the one being mounted now
    stale_panes: set[str]  # the tabs that missed a change while not on screen
    corpus_subset: Subset | None  # the Corpus tab's subset field to start with (`corpus --subset`)

    # -- widgets ------------------------------------------------------------------------------------
    @property
    def status(self) -> StatusLine:
        return self.query_one(StatusLine)

    @property
    def pipeline(self) -> PipelineStrip:
        return self.query_one(PipelineStrip)

    def draw_model(self) -> None:
        s = self.state
        for panel in self.query(ModelPanel):
            panel.summary, panel.audio = s.summary, s.audio
            panel.show(status=s.model_status)

    def show_header(self) -> None:
        s, o = self.state, self.state.options
        units = f" {o.compute_units}" if o.against == "coreml" else ""
        self.sub_title = f"{s.checkpoint.name} · {s.audio_path.name} · vs {s.candidate_shown()}{units} {o.precision}"

    def draw_steps(self) -> None:
        for name in STEPS:
            self.pipeline.show(name, self.state.steps[name], self.state.step_extra[name])

    def show_step_detail(self) -> None:
        if not self.pane_shown("tab-step"):
            self.stale_panes.add("tab-step")
            return
        name = self.pipeline.selected
        result = self.state.results.get(name)
        hint = ""
        if self.state.options.against == "coreai" and name in COMPONENTS and result is not None \
                and result.status == Status.MISMATCH:
            hint = (f"d names the first op where the Core AI {name} drifts from PyTorch (Apple's "
                    "coreai_torch.debugging)")
        self.query_one(DetailView).show(name, result, self.state.labels, self.state.steps[name], hint)

    # -- the tabs: only the one on screen is drawn; the others are drawn from the state when shown -------
    def pane_shown(self, pane: str) -> bool:
        """`pane` is the tab on screen and its widgets are mounted."""
        return pane in self.mounted_panes and self.query_one(TabbedContent).active == pane

    def lazy_pane_widgets(self, pane: str) -> list[Widget]:
        """The widgets of a tab that is not on screen at the first frame: mounted when it is first shown."""
        if pane == "tab-tables":
            from textual.containers import VerticalScroll

            return [VerticalScroll(*self.tables_widgets(), id="tables")]
        if pane == "tab-pictures":
            from rnnt_tui.app.widgets.pictures import PicturesView

            return [PicturesView(id="pictures")]
        if pane == "tab-transcripts":
            from rnnt_tui.app.widgets.transcript import TranscriptView

            return [TranscriptView(id="transcripts")]
        if pane == "tab-runtimes":
            from rnnt_tui.app.widgets.runtime_panel import RuntimePanel

            panel = RuntimePanel(self.state.options, id="runtime-panel")
            panel.availability = dict(self.state.availability)
            return [panel]
        if pane == "tab-model":
            return [ModelPanel(id="model-tab-panel")]
        if pane == "tab-corpus":
            from rnnt_tui.app.widgets.corpus_view import CorpusView

            return [CorpusView(self.corpus_subset, id="corpus")]
        if pane == "tab-stream":  # a streaming comparison (s, S) or a fixed-window one (w): the one that ran last
            from rnnt_tui.app.widgets.stream_view import StreamView
            from rnnt_tui.app.widgets.windows_view import WindowsView

            windows = WindowsView(id="windows-view")
            windows.display = False
            return [StreamView(id="stream-view"), windows]
        return []

    def corpus_view(self) -> CorpusView:
        from rnnt_tui.app.widgets.corpus_view import CorpusView

        return self.query_one(CorpusView)

    def stream_view(self) -> StreamView:
        from rnnt_tui.app.widgets.stream_view import StreamView

        return self.query_one("#stream-view", StreamView)

    def windows_view(self) -> WindowsView:
        from rnnt_tui.app.widgets.windows_view import WindowsView

        return self.query_one("#windows-view", WindowsView)

    def show_streaming(self, windows: bool) -> None:
        """The Streaming tab shows the fixed-window view (`windows`) or the chunk view; the one shown has the focus,
        so `n` / `p` step it."""
        self.stream_view().display = not windows
        self.windows_view().display = windows
        (self.windows_view() if windows else self.stream_view()).focus()

    async def mount_pane(self, pane: str) -> None:
        """Mount `pane`'s widgets now if they are not yet (it is shown, or an event is for it)."""
        if pane in self.mounted_panes:
            return
        self.mounted_panes.add(pane)
        self.stale_panes.add(pane)
        widgets = self.lazy_pane_widgets(pane)
        if widgets:
            await self.query_one(f"#{pane}", TabPane).mount_all(widgets)

    def tables_widgets(self) -> list[Widget]:
        """The Tables tab's content, in order (the rows are added as each table mounts)."""
        from textual.widgets import Label

        from rnnt_tui.app.widgets.tables import DiffsTable, ShapesTable, TimingsTable

        return [Static(id="transcript-line"), Label("Diffs (candidate - reference)", classes="table-title"),
                DiffsTable(id="diffs"), Label("Timings", classes="table-title"),
                TimingsTable(self.state.labels, id="timings"), Label("Shapes", classes="table-title"),
                ShapesTable(id="shapes")]

    def after_frame(self, callback: Callable[..., object], *args: object) -> None:
        """`call_after_refresh`, queued on the main screen. Textual queues it on the screen on top, and a modal
        dismissed before its next refresh drops it: a session that became ready under the error modal never asked for
        its runtime check, nor drew its panels. The main screen runs it after its next refresh, or when idle while
        another screen is on top. Nothing once the app's screens are gone (as Textual's own drops it then).

        The callback first yields to the event loop once. With nothing to paint, Textual runs a queued callback at
        the screen's next idle, and its message queue hands over the next message without yielding: a chain of
        callbacks each queuing the next (the tables warmed a few lines at a time) ran back to back as one stall
        (50-70 ms traced), the UI's timers and input waiting behind it."""
        if self.screen_stack:
            self.screen_stack[0]._invoke_later(partial(self._after_yield, callback, *args), self)

    @staticmethod
    async def _after_yield(callback: Callable[..., object], *args: object) -> None:
        await asyncio.sleep(0)
        result = callback(*args)
        if inspect.isawaitable(result):
            await result

    def premount_tables(self) -> None:
        """Mount the Tables tab's widgets before it is first shown ("run all" shows it), one widget per frame:
        mounting them all when the tab comes on screen stalled the UI for ~165 ms, and a hidden tab is neither laid
        out nor painted, so each of these frames costs one widget's mount (a table's rows are measured on idle)."""
        if "tab-tables" in self.mounted_panes or self.premounting or self.premount_inflight is not None:
            return  # mounted, or being mounted (the last widget may be in flight)
        from textual.containers import VerticalScroll

        scroll = VerticalScroll(id="tables")
        self.premounting = [(self.query_one("#tab-tables", TabPane), scroll)] + \
            [(scroll, widget) for widget in self.tables_widgets()]
        self.after_frame(self.premount_next)

    async def premount_next(self) -> None:
        """Mount the next widget of `premount_tables`; the rest after the next frame."""
        if not self.premounting:
            return
        parent, widget = self.premounting.pop(0)
        self.premount_inflight = parent.mount(widget)
        await self.premount_inflight
        self.premount_inflight = None
        if self.premounting:
            self.after_frame(self.premount_next)
        else:
            self.mounted_panes.add("tab-tables")
            self.stale_panes.add("tab-tables")
            self.after_frame(self.warm_tables)

    def warm_tables(self) -> None:
        """While the Tables tab is hidden, render a few of its tables' lines per frame into their cell caches
        (`LiveTable.warm`): its first paint then costs the layout and the lines' assembly, not ~140 cells rendered
        through Rich in one frame (~45 ms)."""
        from rnnt_tui.app.widgets.tables import LiveTable

        if self.query_one(TabbedContent).active != "tab-tables":  # (on screen, it is painted already)
            for table in self.query(LiveTable):
                if table.warm():
                    self.after_frame(self.warm_tables)
                    return
        # The app's long-lived objects are now all made (the tabs' widgets, the modules imported for them, the
        # tables' caches): out of the cyclic GC's reach, as at the first frame (`RnntApp.on_ready`). Left in, each
        # full collection walked them again: 17-47 ms stalls traced while the 116 M model's steps ran.
        gc.freeze()

    def show_tables_tab(self, then: Callable[[], object]) -> None:
        """Bring the Tables tab on screen a table per frame, then call `then`. The tab's frame used to render its
        tables too (the switch's layout, every container, the diffs table: ~22-35 ms traced, the longest stall of
        a run); now its tables are hidden for it (`visibility`: their space is kept, so nothing moves) and each comes
        back in a frame of its own (~7-18 ms each, traced)."""
        from rnnt_tui.app.widgets.tables import LiveTable

        tables = list(self.query_one("#tables").query(LiveTable)) if "tab-tables" in self.mounted_panes else []
        for table in tables:
            table.styles.visibility = "hidden"
        self.query_one(TabbedContent).active = "tab-tables"

        def reveal(rest: list[LiveTable]) -> None:
            if rest:
                rest[0].styles.visibility = "visible"
                self.after_frame(reveal, rest[1:])
            else:
                self.after_frame(then)

        self.after_frame(reveal, tables)

    async def on_tabbed_content_tab_activated(self, message: TabbedContent.TabActivated) -> None:
        """A tab came on screen: mount its widgets the first time (the rest at once if they were being mounted
        ahead), then draw it if it missed a change."""
        pane = message.pane.id or ""
        while pane == "tab-tables" and (self.premounting or self.premount_inflight is not None):
            if self.premount_inflight is not None:
                await self.premount_inflight
            else:
                await self.premount_next()
        await self.mount_pane(pane)
        if pane in self.stale_panes and self.query_one(TabbedContent).active == pane:
            self.draw_pane(pane)
        if pane == "tab-stream" and self.query_one(TabbedContent).active == pane:
            self.stream_view().focus()  # its n / p step the chunk cursor (unfocused, n ran a step, p opened precision)

    def draw_pane(self, pane: str) -> None:
        """Everything `pane` shows, from the state (table cells that did not change are left alone)."""
        self.stale_panes.discard(pane)
        s = self.state
        if pane == "tab-step":
            self.show_step_detail()
        elif pane == "tab-tables":
            self.draw_tables("diffs")  # then the others, each after the next frame (`draw_tables`)
        elif pane == "tab-pictures":
            from rnnt_tui.app.widgets.pictures import PicturesView

            pictures = self.query_one(PicturesView)
            pictures.show_encoder(s.results.get("encoder"))
            pictures.show_joint(s.results.get("joint"), s.decode.reference_pieces if s.decode else [])
        elif pane == "tab-transcripts":
            from rnnt_tui.app.widgets.transcript import TranscriptView

            self.query_one(TranscriptView).show(s.decode, s.labels)
        elif pane == "tab-runtimes":
            from rnnt_tui.app.widgets.runtime_panel import RuntimePanel

            panel = self.query_one(RuntimePanel)
            panel.availability = dict(s.availability)
            panel.set_options(s.options)
            view = s.session
            if view is not None:
                panel.show_candidate(view.candidate_label, view.candidate_runs_on, view.candidate_inventory,
                                     s.packages_dir(), view.candidate_note)
        elif pane == "tab-model":
            self.draw_model()

    def draw_tables(self, table: str) -> None:
        """One of the Tables tab's tables ("diffs" with the transcript line, "timings", "shapes"), from the state;
        the next one after the next frame: a table whose column grew is laid out and repainted whole, so each
        table gets a frame of its own."""
        from rnnt_tui.app.widgets.tables import DiffsTable, ShapesTable, TimingsTable

        s = self.state
        blank = [name for name in STEPS if name not in s.results]
        if table == "diffs":
            from rnnt_tui.app.widgets.transcript import transcript_line

            diffs = self.query_one(DiffsTable)
            diffs.blank(blank)
            for result in s.results.values():
                diffs.show(result, s.decode.token_agreement if s.decode is not None else None)
            line = self.query_one("#transcript-line", Static)
            text = transcript_line(s.decode, s.labels)
            if getattr(line, "shown_text", None) != text:
                line.shown_text = text  # type: ignore[attr-defined]
                update_in_place(line, text)
            self.after_frame(self.draw_tables, "timings")
        elif table == "timings":
            duration = s.audio.duration_s if s.audio is not None else 0.0
            timings = self.query_one(TimingsTable)
            timings.prime(s.labels)  # the rows exist since the table mounted; the runtime labels may be new
            timings.blank(blank)
            for result in s.results.values():
                timings.show(result, duration)
            self.after_frame(self.draw_tables, "shapes")
        else:
            shapes = self.query_one(ShapesTable)
            shapes.blank(blank)
            for result in s.results.values():
                shapes.show(result)

    def draw_tabs(self, *panes: str) -> None:
        """`panes` changed: draw the one on screen now, the others when they are shown."""
        self.stale_panes.update(panes)
        active = self.query_one(TabbedContent).active
        if active in panes and active in self.mounted_panes:
            self.draw_pane(active)

    def show_results(self) -> None:
        """Every widget that shows results, from the state: the step strip, and the tab on screen."""
        self.draw_steps()
        self.draw_tabs(*RESULT_PANES)

    def reset_results(self) -> None:
        """Empty tables and pictures (the state's results were cleared)."""
        self.draw_tabs(*RESULT_PANES)

    def draw_overview(self) -> None:
        """The model and fuse panels, from the state."""
        self.draw_model()
        self.draw_fuse()

    def draw_fuse(self, saved: bool = True) -> None:
        session = self.state.session
        panel = self.query_one(FusePanel)
        if session is None:
            panel.show_nothing("No model open: o opens a checkpoint.")
        else:
            panel.show_used(session.fuse.mode, session.fuse.current, self.state.probe,
                            saved=session.fuse.saved if saved else None)

    def revert_pending(self) -> None:
        """Put the current session back on screen after a pick that failed part way."""
        self.state.revert()
        self.draw_model()
        if self.state.session is None:
            self.query_one(FusePanel).show_nothing("No model open: o opens a checkpoint.")
            self.draw_steps()
            return
        self.draw_fuse()
        self.show_results()

    def save_recent(self) -> None:
        """Remember the recent files and theme; a failed write is said once (remembering is a convenience)."""
        try:
            self.recent.save()
        except OSError as exc:
            if not getattr(self, "_recent_told", False):
                self._recent_told = True
                where = exc.filename or "the state directory"
                self.notify(f"{where}: {exc.strerror or exc}. Recent files and the theme are not remembered.",
                            title="Cannot save recent files", severity="warning", timeout=8)
