"""What the app does with each message from the engine: accept it (the client drops stale ones), fold it into
the state (`state.AppState`), then draw the widgets from the state.

A base of `RnntApp`, on `actions.Actions` (what the keys do; handlers may start them) and `draw.Drawing`. One
handler per event type, named by Textual's
`on_<message>` convention (`messages.py` has one message class per core event); the `@applied` decorator does the
accept-and-apply part once. Drawing only reads the state: no handler computes a number or calls the engine.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from textual.widgets import TabbedContent
from textual.worker import WorkerState

from rnnt_tui.app import messages as msg
from rnnt_tui.app.actions import Actions
from rnnt_tui.app.state import saved_mode
from rnnt_tui.app.widgets.fuse_panel import FusePanel
from rnnt_tui.core.components import STEPS
from rnnt_tui.core.fuse import VALIDATION

M = TypeVar("M", bound=msg.EngineEvent)


def applied(draw: Callable[[Any, M], None]) -> Callable[[Any, M], None]:
    """A handler that runs only for an event the client accepts, after the state has folded it in."""

    @functools.wraps(draw)
    def handler(self: Controller, message: M) -> None:
        if self.client.accept(message.envelope):
            self.state.apply(message.event)
            draw(self, message)

    return handler


def applied_to(pane: str) -> Callable[[Callable[[Any, M], None]], Callable[[Any, M], Awaitable[None]]]:
    """`applied`, for an event drawn in `pane` (the Corpus or Streaming tab): its widgets are mounted first if
    they are not yet (the first frame mounts neither)."""

    def decorate(draw: Callable[[Any, M], None]) -> Callable[[Any, M], Awaitable[None]]:
        @functools.wraps(draw)
        async def handler(self: Controller, message: M) -> None:
            if self.client.accept(message.envelope):
                self.state.apply(message.event)
                await self.mount_pane(pane)
                draw(self, message)

        return handler

    return decorate


class Controller(Actions):
    """Message handlers of the app."""

    # -- events from the engine ---------------------------------------------------------------------
    @applied
    def on_summary_read(self, message: msg.SummaryRead) -> None:
        event = message.event
        if event.recorded:
            self.notify("A bundle: NeMo's side is as recorded (its arrays checked against the bundle's manifest); "
                        "steps run the candidate only. The joint's mode was fixed when it was recorded.",
                        title="Replaying a bundle", timeout=8)
        elif not getattr(self, "_trust_told", False):
            self._trust_told = True
            self.notify("Reading the summary ran nothing from the archive; restoring runs NeMo's loader, which "
                        "unpickles the weights. Only open checkpoints you trust.", title="Restoring with NeMo",
                        timeout=20)  # a trust notice: on screen until well after the model is ready
        self.draw_model()
        self.query_one(FusePanel).show_saved(saved_mode(event.summary))
        self.draw_steps()

    @applied
    def on_clip_loaded(self, message: msg.ClipLoaded) -> None:
        self.draw_model()
        # NeMo restores next (seconds with an idle screen): the Tables tab ("run all" shows it) is mounted ahead
        # now, from the next frame (its import and each widget's mount a frame of their own, not this one's)
        self.after_frame(self.premount_tables)

    @applied
    def on_model_restored(self, message: msg.ModelRestored) -> None:
        self.draw_model()
        self.premount_tables()  # (begun at the clip: then nothing to do)

    @applied
    def on_progress(self, message: msg.Progress) -> None:
        self.status.working(message.event.text, message.event.fraction)
        self.draw_steps()

    def on_runtimes_checked(self, message: msg.RuntimesChecked) -> None:
        self.state.availability = message.availability
        self.draw_tabs("tab-runtimes")
        if self.sweep_asked:  # u came before the check's answer: the sweep screen opens with it
            self.sweep_asked = False
            self.action_sweep()

    @applied
    def on_session_ready(self, message: msg.SessionReady) -> None:
        s, session = self.state, message.event.view
        self.recent.add("checkpoints", s.checkpoint)
        self.recent.add("audio", s.audio_path)
        self.save_recent()
        self.show_header()
        self.show_results()  # the step strip and the result tabs (emptied: a new session has no results)
        if "tab-stream" in self.mounted_panes:  # the old clip's, model's or candidate's report
            self.stream_view().show({"chunks": []})
            self.stream_view().display, self.windows_view().display = True, False
        self.after_frame(self.draw_overview)  # a frame of its own: one frame drawing all was ~30-40 ms
        self.draw_tabs("tab-runtimes")
        self.after_frame(self.check_runtimes)  # the first session is up (and painted): only now, once
        if session.candidate_note:
            self.notify(f"{session.candidate_note}. The reference (NeMo / PyTorch) still runs.",
                        title=f"{s.labels['candidate']} cannot run here", severity="warning", timeout=10)
        self.status.idle("Ready · n: next step · r: run all · f: fuse mode · ?: help", style="bold green")
        self.premount_tables()  # a bundle has no ModelRestored; results can come now
        manifest, self.manifest = self.manifest, None
        if manifest is not None:  # `rnnt-tui CHECKPOINT MANIFEST`: the corpus starts now
            self.start_corpus(manifest)
        elif self.run_when_ready:
            self.run_when_ready = False
            self.run_steps(list(STEPS))
        # Settings changed while this session was being built: apply them now (never silently drop them).
        if s.needs_rebuild():
            s.set_steps("preparing")
            self.draw_steps()
            self.rebuild_session()
        elif session.fuse.mode != s.joint_mode:
            self.switch_joint_mode(s.joint_mode, False)

    @applied
    def on_candidate_failed(self, message: msg.CandidateFailed) -> None:
        from rnnt_tui.app.screens.error import ErrorScreen

        self.push_screen(ErrorScreen("The second runtime could not be prepared", message.event.reason + "\n\nThe "
                                     "reference still runs; the report says why the candidate did not.",
                                     message.event.details))

    @applied
    def on_step_started(self, message: msg.StepStarted) -> None:
        self.draw_steps()
        self.pipeline.select(message.event.name)
        self.status.working(f"Running {message.event.name}…")
        self.show_step_detail()

    @applied
    def on_step_finished(self, message: msg.StepFinished) -> None:
        self.show_results()
        decode, labels = message.event.decode, self.state.labels
        if message.event.name == "decode" and decode is not None and decode.candidate_tokens is not None:
            agree = decode.first_divergence is None
            self.notify(f"{labels['reference']}: {decode.reference_text!r}\n"
                        f"{labels['candidate']}: {decode.candidate_text!r}",
                        title="Transcripts agree" if agree else "Transcripts differ",
                        severity="information" if agree else "warning", timeout=6)

    @applied
    def on_step_cleared(self, message: msg.StepCleared) -> None:
        self.show_results()

    @applied
    def on_fuse_changed(self, message: msg.FuseChanged) -> None:
        fuse = message.event.fuse
        self.query_one(FusePanel).show_used(fuse.mode, fuse.current, fuse.probe)
        words = "validation mode (fuse off, log_softmax off)" if fuse.mode == VALIDATION else "as saved"
        self.notify(f"joint(enc, dec) → {fuse.probe}", title=f"Joint now {words}", timeout=6)

    # -- corpus runs ----------------------------------------------------------------------------------
    @applied_to("tab-corpus")
    def on_corpus_planned(self, message: msg.CorpusPlanned) -> None:
        event = message.event
        view = self.corpus_view()
        view.planned(event.manifest, event.out_dir, event.total, event.done, event.manifest_errors)
        for position, record in enumerate(event.done_records, start=1):
            view.finished_one(record, position, event.total, {}, None, self.state.labels)
        self.query_one(TabbedContent).active = "tab-corpus"
        self.corpus_view().focus_table()
        if event.estimate:
            view.show_estimate(event.estimate)
            self.notify(event.estimate, title="Corpus: expected work", timeout=8)

    @applied
    def on_sweep_unit_started(self, message: msg.SweepUnitStarted) -> None:
        self.status.working(*(self.state.activity or ("Sweep…", None)))

    @applied
    def on_sweep_unit_finished(self, message: msg.SweepUnitFinished) -> None:
        self.status.working(*(self.state.activity or ("Sweep…", None)))

    @applied
    def on_utterance_started(self, message: msg.UtteranceStarted) -> None:
        event = message.event
        self.status.working(f"Corpus: utterance {event.position}/{event.total} · {Path(event.audio).name}",
                            (event.position - 1) / max(event.total, 1))

    @applied_to("tab-corpus")
    def on_utterance_finished(self, message: msg.UtteranceFinished) -> None:
        event = message.event
        view = self.corpus_view()
        view.finished_one(event.record, event.position, event.total, event.totals, event.eta_s, self.state.labels)
        if event.note:
            view.show_estimate(event.note)
            self.notify(event.note, title="Corpus: time estimate", timeout=8)

    @applied_to("tab-corpus")
    def on_corpus_finished(self, message: msg.CorpusFinished) -> None:
        view = self.corpus_view()
        view.show_totals(message.event.totals, self.state.labels)
        view.ended(message.event.interrupted, message.event.reports)

    @applied_to("tab-stream")
    def on_chunk_compared(self, message: msg.ChunkCompared) -> None:
        self.state.chunk_compared(message.event)
        self.stream_view().add_chunk(message.event.chunk.to_json())
        self.status.working(*(self.state.activity or ("Streaming…", None)))

    async def on_stream_done(self, message: msg.StreamDone) -> None:
        if self.client.is_stale(message.call):
            return  # cancelled or replaced (by another s, S or w): the newer request owns the tab
        await self.mount_pane("tab-stream")
        self.stream_view().show(message.report)

    @applied_to("tab-stream")
    def on_window_compared(self, message: msg.WindowCompared) -> None:
        self.state.window_compared(message.event)
        self.windows_view().add_window(message.event.window.to_json(), message.event.total)
        self.status.working(*(self.state.activity or ("Windows…", None)))

    async def on_windows_done(self, message: msg.WindowsDone) -> None:
        if self.client.is_stale(message.call):
            return
        await self.mount_pane("tab-stream")
        self.windows_view().show(message.report)

    # -- the end of a job -------------------------------------------------------------------------------
    def on_job_done(self, message: msg.JobDone) -> None:
        if self.client.is_stale(message.call):
            return  # cancelled or replaced: the cancel (or the newer call) has settled the screen already
        self.job_ended(message.job, message.text, cancelled=message.cancelled)

    def job_ended(self, job: str | None, text: str, cancelled: bool = False, failed: bool = False) -> None:
        if cancelled:
            self.state.cancel_running()
            self.draw_steps()
            self.show_step_detail()
        busy = any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) and w.group not in (job, "runtimes")
                   for w in self.workers)
        if not busy:
            style = "bold red" if failed else "yellow" if cancelled else "bold green"
            self.status.idle(text, style=style)
