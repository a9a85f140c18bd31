"""Drawing the state: every widget of the main view updated from `state.AppState`, nothing computed.

The base of the app's behaviour (`actions.Actions` - what the keys do - and `controller.Controller` - what each
engine event does - build on it). These methods only read the state and update widgets; none calls the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.widgets import Static, TabbedContent

from rnnt_tui.app.widgets.detail import DetailView
from rnnt_tui.app.widgets.fuse_panel import FusePanel
from rnnt_tui.app.widgets.model_panel import ModelPanel
from rnnt_tui.app.widgets.pipeline import PipelineStrip
from rnnt_tui.app.widgets.status import StatusLine
from rnnt_tui.core.components import COMPONENTS, STEPS
from rnnt_tui.core.names import Status

if TYPE_CHECKING:
    from textual.app import App
    from textual.widget import Widget

    from rnnt_tui.app.client import EngineClient
    from rnnt_tui.app.recent import Recent
    from rnnt_tui.app.state import AppState

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
    stale_panes: set[str]  # the tabs that missed a change while not on screen

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
            from textual.widgets import Label

            from rnnt_tui.app.widgets.tables import DiffsTable, ShapesTable, TimingsTable

            return [VerticalScroll(Static(id="transcript-line"),
                                   Label("Diffs (candidate - reference)", classes="table-title"),
                                   DiffsTable(id="diffs"), Label("Timings", classes="table-title"),
                                   TimingsTable(id="timings"), Label("Shapes", classes="table-title"),
                                   ShapesTable(id="shapes"), id="tables")]
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
        return []

    async def on_tabbed_content_tab_activated(self, message: TabbedContent.TabActivated) -> None:
        """A tab came on screen: mount its widgets the first time, then draw it if it missed a change."""
        pane = message.pane.id or ""
        if pane not in self.mounted_panes:
            widgets = self.lazy_pane_widgets(pane)
            if widgets:
                await message.pane.mount_all(widgets)
            self.mounted_panes.add(pane)
            self.stale_panes.add(pane)
        if pane in self.stale_panes and self.query_one(TabbedContent).active == pane:
            self.draw_pane(pane)

    def draw_pane(self, pane: str) -> None:
        """Everything `pane` shows, from the state (table cells that did not change are left alone)."""
        self.stale_panes.discard(pane)
        s = self.state
        if pane == "tab-step":
            self.show_step_detail()
        elif pane == "tab-tables":
            from rnnt_tui.app.widgets.tables import DiffsTable, ShapesTable, TimingsTable
            from rnnt_tui.app.widgets.transcript import transcript_line

            duration = s.audio.duration_s if s.audio is not None else 0.0
            diffs, timings, shapes = self.query_one(DiffsTable), self.query_one(TimingsTable), \
                self.query_one(ShapesTable)
            diffs.prime()
            shapes.prime()
            timings.prime(s.labels)
            blank = [name for name in STEPS if name not in s.results]
            for table in (diffs, timings, shapes):
                table.blank(blank)
            for result in s.results.values():
                diffs.show(result, s.decode.token_agreement if s.decode is not None else None)
                timings.show(result, duration)
                shapes.show(result)
            line = self.query_one("#transcript-line", Static)
            text = transcript_line(s.decode, s.labels)
            if getattr(line, "shown_text", None) != text:  # an update re-lays the screen out: only when it changed
                line.shown_text = text  # type: ignore[attr-defined]
                line.update(text)
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
