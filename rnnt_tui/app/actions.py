"""What the keys and the command palette do: run steps, switch the joint's mode, pick files, export, quit.

A base of `RnntApp` (its handlers, `controller.Controller`, build on it), on `calls.Calls`. Each action only changes
the state's choices and starts a call (`calls.Calls`, through the engine client) or a screen; results come back
as messages.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.binding import Binding
from textual.widgets import TabbedContent
from textual.worker import WorkerState

from rnnt_tui.app.bundle_choice import choose
from rnnt_tui.app.calls import Calls
from rnnt_tui.app.choices import RuntimeChoices
from rnnt_tui.app.engine import export_directory, export_stem
from rnnt_tui.app.widgets.fuse_panel import FusePanel
from rnnt_tui.app.widgets.pipeline import PipelineStrip
from rnnt_tui.core.components import STEPS
from rnnt_tui.core.fuse import AS_SAVED, VALIDATION
from rnnt_tui.core.names import AUDIO_SUFFIXES, RUNTIME_LABELS, Status
from rnnt_tui.core.stream.config import STREAM_CANDIDATES

if TYPE_CHECKING:
    from rnnt_tui.app.widgets.corpus_view import CorpusView
    from rnnt_tui.app.widgets.runtime_panel import RuntimePanel

#: what the clip picker takes as a corpus rather than a clip: a NeMo manifest, a list of paths, or a folder
MANIFEST_SUFFIXES = (".json", ".jsonl", ".txt", ".lst")


def is_manifest(path: Path) -> bool:
    """A manifest or list by its suffix, or a folder of clips (a folder named like a clip is a bad clip)."""
    suffix = path.suffix.lower()
    return suffix in MANIFEST_SUFFIXES or (path.is_dir() and suffix not in AUDIO_SUFFIXES)


#: command-palette titles where the footer's short word would be vague
PALETTE_TITLES = {
    "pick_checkpoint": "Open a checkpoint (.nemo) or a recorded bundle…",
    "pick_audio": "Open an audio clip or a corpus (manifest, list, folder)…",
    "toggle_fuse": "Switch the joint fuse mode (as saved / validation)",
    "export": "Export the report (JSON, Markdown, SVG)",
    "sweep": "Core ML compute-unit sweep",
    "stream": "Stream the clip chunk by chunk",
    "precision": "Precision: fp16 hazards, lint, mixed precision (Core ML program, MIL interpreter)",
    "coreai_drift": "Core AI: name the first op that drifts from PyTorch (coreai_torch.debugging)",
    "toggle_theme": "Toggle light / dark theme",
}


class Actions(Calls):
    """The app's actions (bound to keys and listed in the command palette)."""

    manifest: Path | None
    export_dir: Path
    from_corpus: bool = False
    run_when_ready: bool = False  # an utterance opened from the Corpus tab runs every step at once
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
    def steps_running(self) -> bool:
        return any(w.group in ("steps", "fuse") and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
                   for w in self.workers)

    def _busy_running(self) -> bool:
        if self.steps_running():
            self.notify("A step is running: wait for it, or Esc cancels it.", timeout=3)
            return True
        return False

    def _has_session(self) -> bool:
        if self.state.session is None:
            self.notify("The model is still loading; press it again once the status line says Ready.",
                        severity="warning")
            return False
        return True

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
        if self._has_session():
            self.query_one(TabbedContent).active = "tab-tables"
            self.run_steps(list(STEPS))

    def action_rerun(self) -> None:
        if self._has_session() and not self._busy_running():
            self.query_one(TabbedContent).active = "tab-step"
            self.run_steps([self.pipeline.selected])

    def cancel_calls(self, *groups: str) -> list[str]:
        """Cancel the running calls of `groups` at once: their flags set, their late events dropped, the steps
        they were running shown cancelled now (the end state does not depend on when the engine stops)."""
        calls = self.client.cancel(groups)
        for group in groups:
            self.workers.cancel_group(self, group)
        if calls:
            self.state.cancel_running()
            self.draw_steps()
            self.show_step_detail()
        return [call.cancelled_text for call in calls]

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

    def corpus_running(self) -> bool:
        return any(w.group == "corpus" and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
                   for w in self.workers)

    def start_corpus(self, manifest: Path) -> None:
        """Run a corpus on the open model and candidate (its results are resumed if it ran before)."""
        if not self._has_session():
            self.manifest = manifest
            return
        if self.corpus_running():
            self.notify("A corpus is running: Esc stops it (what finished is kept).", timeout=4)
            return
        self.query_one(TabbedContent).active = "tab-corpus"
        stream = self.state.corpus_stream
        try:  # the Corpus tab's subset field (`corpus --subset`); before the tab is mounted, the command line's
            subset = self.corpus_view().subset() if self.query("#corpus") else self.corpus_subset
            problem = subset.problem(self.state.options.against, stream) if subset is not None else None
        except ValueError as exc:
            problem = str(exc)
        if problem is not None:
            self.notify(problem, title="The corpus's subset", severity="warning", timeout=8)
            return
        self.cancel_calls("steps")
        self.status.working(f"Corpus: reading {manifest.name}" + (" (streaming)…" if stream else "…"))
        self.run_corpus(manifest, stream, subset)

    def on_corpus_view_mode_changed(self, message: CorpusView.ModeChanged) -> None:
        """m on the Corpus tab: streaming or offline transcripts; the corpus shown runs again that way."""
        if message.stream and self.state.recorded:
            self.corpus_view().stream = False
            self.notify("Streaming runs NeMo's cache-aware loop on the restored model; a bundle holds none "
                        "(record it with `record --stream` and replay it).", title="Corpus", severity="warning",
                        timeout=6)
            return
        self.state.corpus_stream = message.stream
        words = "streaming (NeMo's cache-aware loop vs the candidate's streaming step)" if message.stream \
            else "offline"
        if message.manifest is None:
            self.notify(f"The next corpus scores {words} transcripts.", title="Corpus", timeout=4)
        elif self.corpus_running():
            self.notify(f"The next corpus run scores {words} transcripts; Esc stops this one.", title="Corpus",
                        timeout=5)
        else:
            self.notify(f"Running {message.manifest.name} again: {words} transcripts.", title="Corpus", timeout=4)
            self.start_corpus(message.manifest)

    def on_corpus_view_opened(self, message: CorpusView.Opened) -> None:
        """Enter on an utterance: open it in the component explorer, on the same restored model."""
        if self.corpus_running():
            self.notify("The corpus is still running: Esc stops it (what finished is kept), then Enter opens "
                        "the utterance.", timeout=5)
            return
        self.from_corpus = self.run_when_ready = True
        self.query_one(TabbedContent).active = "tab-tables"
        self.open_audio(message.audio)

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

    def use_against(self, against: str) -> None:
        """Another candidate for the next open (no rebuild: the open that follows builds the session)."""
        s = self.state
        s.options = replace(s.options, against=against)
        self.draw_tabs("tab-runtimes")
        s.labels["candidate"] = s.candidate_fallback()
        self.show_header()

    def apply_options(self, options: RuntimeChoices) -> None:
        s = self.state
        s.options = options
        self.draw_tabs("tab-runtimes")
        s.labels["candidate"] = RUNTIME_LABELS.get(options.against, options.against)
        self.show_header()
        if s.session is None:
            return
        self.cancel_calls("steps")
        s.set_steps(Status.PREPARING)
        self.draw_steps()
        self.rebuild_session()

    def action_pick_checkpoint(self) -> None:
        from rnnt_tui.app.screens.pick import PickFileScreen, checkpoint_kind

        self.push_screen(PickFileScreen(checkpoint_kind(), self.state.checkpoint,
                                        self.recent.existing("checkpoints")),
                         self.open_path)

    def action_pick_audio(self) -> None:
        from rnnt_tui.app.screens.pick import PickFileScreen, audio_kind

        self.push_screen(PickFileScreen(audio_kind(), self.state.audio_path, self.recent.existing("audio")),
                         self.open_audio)

    def open_path(self, path: Path | None) -> None:
        if path is None:
            return
        self.cancel_calls("steps")
        self.status.working(f"Reading {path.name}…")
        bundle = choose(path, self.state.options.against)
        if bundle is not None and bundle.against != self.state.options.against:
            self.use_against(bundle.against)
            if bundle.note:
                self.notify(bundle.note, title="Opening the bundle", severity="warning", timeout=10)
        self.open_checkpoint(path, bundle.clip if bundle is not None and bundle.clip is not None else None)

    def open_audio(self, path: Path | None) -> None:
        if path is None:
            return
        if is_manifest(path):
            self.start_corpus(path)
            return
        if self.state.session is None:
            self.state.audio_path = path
            self.open_checkpoint(self.state.checkpoint, path)
            return
        self.cancel_calls("steps")
        self.status.working(f"Reading {path.name}…")
        self.rebuild_session(path)

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

    async def action_stream(self) -> None:
        """The streaming comparison of the open checkpoint and clip against the open candidate."""
        if not self._has_session():
            return
        against = self.state.options.against
        if against not in STREAM_CANDIDATES:
            self.notify(f"The streaming comparison runs against {', '.join(STREAM_CANDIDATES)}; the open "
                        f"candidate is {against or 'none'} (choose one in the Runtimes tab, 5).",
                        title="Cannot stream", severity="warning", timeout=10)
            return
        await self.mount_pane("tab-stream")
        self.stream_view().show({"chunks": []})
        self.query_one(TabbedContent).active = "tab-stream"
        self.status.working("Streaming: restoring the checkpoint with NeMo…")
        self.run_stream()

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
