"""What the keys and the command palette do: run steps, switch the joint's mode, export, quit (picking and opening
files is `opening.Opening`, a base of this).

A base of `RnntApp` (its handlers, `controller.Controller`, build on it), on `opening.Opening`. Each action only changes
the state's choices and starts a call (`calls.Calls`, through the engine client) or a screen; results come back
as messages.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.binding import Binding
from textual.widgets import TabbedContent
from textual.worker import WorkerState

from rnnt_tui.app.choices import RuntimeChoices
from rnnt_tui.app.engine import export_directory, export_stem
from rnnt_tui.app.opening import Opening
from rnnt_tui.app.widgets.fuse_panel import FusePanel
from rnnt_tui.app.widgets.pipeline import PipelineStrip
from rnnt_tui.core.components import STEPS
from rnnt_tui.core.fuse import AS_SAVED, VALIDATION
from rnnt_tui.core.names import RUNTIME_LABELS, Status
from rnnt_tui.core.stream.config import STREAM_CANDIDATES, WINDOW_CANDIDATES, StreamRequest, cache_states_problem

if TYPE_CHECKING:
    from rnnt_tui.app.choices import WindowChoices
    from rnnt_tui.app.widgets.runtime_panel import RuntimePanel

#: command-palette titles where the footer's short word would be vague
PALETTE_TITLES = {
    "pick_checkpoint": "Open a checkpoint (.nemo) or a recorded bundle…",
    "pick_audio": "Open an audio clip or a corpus (manifest, list, folder)…",
    "toggle_fuse": "Switch the joint fuse mode (as saved / validation)",
    "export": "Export the report (JSON, Markdown, SVG)",
    "sweep": "Core ML compute-unit sweep",
    "stream": "Stream the clip chunk by chunk",
    "stream_states": "Stream the clip chunk by chunk, the caches in Core ML / Core AI states",
    "stream_windows": "Compare the clip in fixed windows (offline models, long audio)…",
    "precision": "Precision: fp16 hazards, lint, mixed precision (Core ML program, MIL interpreter)",
    "coreai_drift": "Core AI: name the first op that drifts from PyTorch (coreai_torch.debugging)",
    "toggle_theme": "Toggle light / dark theme",
}


class Actions(Opening):
    """The app's actions (bound to keys and listed in the command palette)."""

    export_dir: Path
    sweep_asked: bool  # u before the runtime check answered: the sweep screen opens when it does

    # -- messages from widgets ----------------------------------------------------------------------
    def on_pipeline_strip_selected(self, message: PipelineStrip.Selected) -> None:
        self.pipeline.select(message.step)
        self.query_one(TabbedContent).active = "tab-step"
        self.show_step_detail()

    def on_fuse_panel_mode_requested(self, message: FusePanel.ModeRequested) -> None:
        self.request_joint_mode(message.mode)

    def on_runtime_panel_changed(self, message: RuntimePanel.Changed) -> None:
        self.apply_options(message.options)

    # -- actions ------------------------------------------------------------------------------------
    def action_next_step(self) -> None:
        if not self._has_session() or self._busy_running():
            return
        todo = self.state.todo()
        if not todo:
            self.notify("Every step has run: x reruns the selected one, r runs them all again.")
            return
        self.query_one(TabbedContent).active = "tab-step"
        self.run_steps([todo[0]])

    def action_run_all(self) -> None:
        if not self._has_session():
            return
        if self.query_one(TabbedContent).active == "tab-tables":
            self.run_steps(list(STEPS))
            return
        # The Tables tab comes on screen first, a table per frame: those frames are not shared with the first
        # results' frames and the engine's work.
        self.show_tables_tab(partial(self.run_steps, list(STEPS)))

    def action_rerun(self) -> None:
        if self._has_session() and not self._busy_running():
            self.query_one(TabbedContent).active = "tab-step"
            self.run_steps([self.pipeline.selected])

    def action_cancel(self) -> None:
        cancelled = self.cancel_calls("steps", "fuse", "model", "export", "sweep", "corpus", "precision", "stream",
                                      "drift")
        if cancelled:
            self.status.idle(cancelled[-1], style="yellow")
            return
        if self.from_corpus:  # Esc returns from an utterance opened in the Corpus tab
            self.from_corpus = False
            self.query_one(TabbedContent).active = "tab-corpus"
            return
        self.notify("Nothing is running.", timeout=3)

    def action_select_step(self, delta: int) -> None:
        self.pipeline.move(delta)
        self.query_one(TabbedContent).active = "tab-step"
        self.show_step_detail()

    def action_tab(self, tab: str) -> None:
        tabs = self.query_one(TabbedContent)
        if tabs.get_tab(tab).has_class("-hidden"):  # the Model tab on a wide terminal: its panel is on screen
            self.notify("The model summary is on screen (top left); its own tab is for narrow terminals.",
                        timeout=4)
            return
        tabs.active = tab

    def action_toggle_fuse(self) -> None:
        self.request_joint_mode(AS_SAVED if self.state.joint_mode == VALIDATION else VALIDATION)

    def request_joint_mode(self, mode: str) -> None:
        self.state.joint_mode = mode
        panel = self.query_one(FusePanel)
        if self.state.session is None:
            panel.show_pending(mode)
            self.notify(f"The joint will be in {mode} mode once the model is restored.", title="Joint mode")
            return
        panel.show_pending(mode)
        self.cancel_calls("steps")
        self.switch_joint_mode(mode, rerun="joint" in self.state.results)

    def apply_options(self, options: RuntimeChoices) -> None:
        s = self.state
        s.options = options
        self.draw_tabs("tab-runtimes")
        s.labels["candidate"] = RUNTIME_LABELS.get(options.against, options.against)
        self.show_header()
        if s.session is None:
            return
        self.cancel_calls("steps", "stream")  # a streaming run is the old candidate's (and holds the model)
        s.set_steps(Status.PREPARING)
        self.draw_steps()
        self.rebuild_session()

    def action_export(self, directory: Path | None = None) -> None:
        if not self._has_session():
            return
        target = export_directory(directory or self.export_dir, self.state.checkpoint)
        stem = export_stem(target)
        try:
            target.mkdir(parents=True, exist_ok=True)
            svg = Path(self.save_screenshot(f"{stem}.svg", str(target)))
        except OSError as exc:
            self.notify(f"{target}: {exc.strerror or exc}", title="Cannot write the report", severity="error")
            return
        self.status.working(f"Writing {stem}.json / .md…")
        self.write_report(target, stem, svg)

    def action_export_to(self) -> None:
        from textual_fspicker import SelectDirectory

        def chosen(path: Path | None) -> None:
            if path is not None:
                self.export_dir = path
                self.action_export(path)

        self.push_screen(SelectDirectory(str(self.export_dir), title="Export the report to…"), chosen)

    def action_sweep(self) -> None:
        from rnnt_tui.app.screens.sweep import SweepScreen

        if "coreml" not in self.state.availability:  # not checked yet: the screen opens with the answer
            self.sweep_asked = True
            self.check_runtimes()
            return
        self.push_screen(SweepScreen(self.state.availability.get("coreml"), self.state.options.against,
                                     self.run_sweep))

    async def action_stream(self, cache_states: bool = False) -> None:
        """The streaming comparison of the open checkpoint and clip against the open candidate (`cache_states`: its
        encoder caches in Core ML / Core AI states, `stream --cache-states`)."""
        if not self._has_session():
            return
        against = self.state.options.against
        if against not in STREAM_CANDIDATES:
            self.notify(f"The streaming comparison runs against {', '.join(STREAM_CANDIDATES)}; the open "
                        f"candidate is {against or 'none'} (choose one in the Runtimes tab, 5).",
                        title="Cannot stream", severity="warning", timeout=10)
            return
        problem = cache_states_problem(StreamRequest(Path(), Path(), against, cache_states=cache_states))
        if problem:  # the words `stream --cache-states` refuses with
            self.notify(f"{problem} (s streams it so).", title="Cannot stream with states", severity="warning",
                        timeout=10)
            return
        await self.mount_pane("tab-stream")
        self.stream_view().show({"chunks": []})
        self.show_streaming(windows=False)
        self.query_one(TabbedContent).active = "tab-stream"
        self.stream_view().focus()  # (already on the tab: no activation to focus it) n / p step its chunk cursor
        self.status.working("Streaming: restoring the checkpoint with NeMo…")
        self.run_stream(cache_states)

    async def action_stream_states(self) -> None:
        """`action_stream` with the candidate's encoder caches in states."""
        await self.action_stream(cache_states=True)

    def action_stream_windows(self) -> None:
        """Compare the open clip in fixed windows against the open candidate (`stream --window`): the window,
        overlap and mel left context asked for first (the last ones run are offered)."""
        from rnnt_tui.app.screens.windows import WindowsScreen

        if not self._has_session():
            return
        against = self.state.options.against
        if self.state.recorded:
            self.notify("A recorded bundle holds no NeMo model to run in windows; open its checkpoint (o) to "
                        "compare in windows.", title="Cannot compare in windows", severity="warning", timeout=10)
            return
        if against not in WINDOW_CANDIDATES:
            self.notify(f"Fixed windows run against {', '.join(WINDOW_CANDIDATES)}; the open candidate is "
                        f"{against or 'none'} (choose one in the Runtimes tab, 5).", title="Cannot compare in windows",
                        severity="warning", timeout=10)
            return

        async def chosen(choices: WindowChoices | None) -> None:
            if choices is not None:
                await self.start_windows(choices)

        self.push_screen(WindowsScreen(self.state.windows, self.state.labels["candidate"]), chosen)

    async def start_windows(self, choices: WindowChoices) -> None:
        """Run the fixed-window comparison with `choices` (remembered for the next `w`) in the Streaming tab."""
        self.state.windows = choices
        await self.mount_pane("tab-stream")
        self.windows_view().start({"reference": self.state.labels["reference"],
                                   "candidate": self.state.labels["candidate"], "window_s": choices.window_s,
                                   "overlap_s": choices.overlap_s, "mel_left_s": choices.mel_left_s})
        self.show_streaming(windows=True)
        self.query_one(TabbedContent).active = "tab-stream"
        self.status.working(f"Windows of {choices.window_s:g} s: preparing {self.state.labels['candidate']}…")
        self.run_windows(choices)

    def action_coreai_drift(self) -> None:
        """Name the first op where the open Core AI candidate drifts from PyTorch (Apple's coreai_torch.debugging),
        for each component out of tolerance, or for the selected one."""
        from rnnt_tui.app.screens.coreai_drift import CoreAIDriftScreen

        refusal = self.state.drift_refusal()
        if refusal is not None:
            self.notify(refusal, title="Core AI drift search", severity="warning", timeout=10)
            return
        if not self._has_session() or self._busy_running():
            return
        if self.client.live("drift"):
            self.notify("A drift search is running: Esc on its screen cancels it.", timeout=4)
            return
        components = self.state.drift_components(self.pipeline.selected)
        if not components:
            self.notify("No component is out of tolerance: select one (the strip, or [ and ]) and press d to "
                        "search it anyway.", title="Core AI drift search", timeout=6)
            return
        screen = CoreAIDriftScreen(components, self.state.runs_on(), self.state.packages_dir())

        def closed(_: None) -> None:  # Esc on the screen: a search still running is cancelled
            if self.client.live("drift"):
                texts = self.cancel_calls("drift")
                self.status.idle(texts[-1] if texts else "Core AI drift search cancelled", style="yellow")

        self.push_screen(screen, closed)
        self.status.working(f"Core AI drift: searching the {', '.join(components)}…")
        self.run_coreai_drift(screen, components)

    def action_precision(self) -> None:
        from rnnt_tui.app.screens.precision import PrecisionScreen

        if self._has_session():
            coreai = self.state.options.against == "coreai"
            self.push_screen(PrecisionScreen(self.run_precision, "coreai" if coreai else "mil",
                                             self.state.runs_on() if coreai else None))

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"
        self.recent.theme = self.theme
        self.save_recent()

    async def action_quit(self) -> None:
        """Quit; if a background job is running, cancel it (stopping the engine process ends it at once) and
        wait for its thread on screen (q again leaves at once)."""
        busy = [w for w in self.workers if w.state in (WorkerState.PENDING, WorkerState.RUNNING)]
        if (not busy and not self.client.active) or getattr(self, "_quitting", False):
            self.exit()
            return
        self._quitting = True
        for worker in busy:
            worker.cancel()
        self.client.stop()
        self.status.working("Stopping the background job…")
        self.set_interval(0.1, self._exit_when_idle)

    def _exit_when_idle(self) -> None:
        if not self.client.active:
            self.exit()

    def action_help(self) -> None:
        from rnnt_tui.app.screens.help import HelpScreen

        self.push_screen(HelpScreen(self.key_bindings()))

    def key_bindings(self) -> list[Binding]:
        return [b for b in self.BINDINGS if isinstance(b, Binding)]

    def palette_commands(self) -> list[tuple[str, str, Any]]:
        """Every action for the command palette, then the recent files."""
        commands: list[tuple[str, str, Any]] = [
            (PALETTE_TITLES.get(b.action, b.description), b.tooltip, partial(self.run_action, b.action))
            for b in self.key_bindings()
        ]
        commands.append(("Export to a directory…", "Choose where the JSON, Markdown and SVG go",
                         self.action_export_to))
        for p in self.recent.existing("checkpoints"):
            commands.append((f"Open recent checkpoint {p.name}", str(p), partial(self.open_path, p)))
        for p in self.recent.existing("audio"):
            commands.append((f"Open recent clip {p.name}", str(p), partial(self.open_audio, p)))
        return commands
