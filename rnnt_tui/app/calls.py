"""The engine calls the app starts: each begins on the app's thread (so a cancel or a newer call of the same kind
makes its events stale at once, `client.EngineClient`) and runs in a Textual thread worker that calls the engine
through the client; what it emits comes back as messages, its end as `JobDone`.

A base of `opening.Opening` and `actions.Actions` (what the keys do), on `draw.Drawing`: it also says what is
running and cancels it, which every action checks first. No widget is touched from a worker thread.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.worker import WorkerState

from rnnt_tui.app.client import Call
from rnnt_tui.app.draw import Drawing
from rnnt_tui.app.messages import Exported, JobDone, RuntimesChecked, StreamDone, WindowsDone, message_for
from rnnt_tui.core.errors import BadInputError, CancelledError, RuntimeUnavailableError
from rnnt_tui.core.stream.config import WINDOWS_INSTEAD

if TYPE_CHECKING:
    from rnnt_tui.app.choices import WindowChoices
    from rnnt_tui.app.engine import Envelope
    from rnnt_tui.app.screens.coreai_drift import CoreAIDriftScreen
    from rnnt_tui.app.screens.precision import PrecisionScreen
    from rnnt_tui.app.screens.sweep import SweepScreen
    from rnnt_tui.core.corpus.subset import Subset


#: the notification's title when the Streaming tab's call refuses
REFUSAL_TITLES = {"run_stream": "Cannot stream", "run_windows": "Cannot compare in windows"}
#: what a model that cannot stream is told to do instead, in the app (the core's words name the CLI's option)
WINDOWS_KEY = "w compares it in fixed windows"


def refusal_text(error: BadInputError | RuntimeUnavailableError) -> str:
    """The words of a Streaming tab refusal: the file it is about first; the app's key where the core names the
    CLI's `--window`."""
    text = str(error)
    if isinstance(error, BadInputError) and error.path is not None:
        text = f"{error.path.name}: {error.problem}"
    return text.replace(WINDOWS_INSTEAD, WINDOWS_KEY)


class Calls(Drawing):
    """Every engine call the app makes."""

    runtimes_asked: bool  # the runtime check was started (it runs once)

    # -- calls: each begins on this thread (so a cancel or a newer call makes its events stale at once) and
    #    runs in a thread worker that calls the engine through the client and reports by messages ------------
    def post_envelope(self, envelope: Envelope) -> None:
        """What the engine emits, posted as the message of its event's type (thread-safe; one thread posts
        every event of a `ProcessEngine`, so they queue in the order the engine emitted them)."""
        self.post_message(message_for(envelope))

    def check_runtimes(self) -> None:
        """Which candidate runtimes can run here (the Runtimes tab, the sweep screen), asked once: when the first
        session is ready, or sooner if the Runtimes tab is shown or the sweep asked for. Not alongside the first
        open: in the engine process the two compete for a core and its GIL, and the check (importing each runtime's
        module) delayed the session by 0.4-1.3 s on a loaded machine."""
        if self.runtimes_asked:
            return
        self.runtimes_asked = True
        self.run_worker(self._check_runtimes, thread=True, exclusive=True, exit_on_error=False, group="runtimes",
                        description="checking runtimes")

    async def mount_pane(self, pane: str) -> None:
        if pane == "tab-runtimes":
            self.check_runtimes()  # shown before the first session was ready: its choices need the check
        await super().mount_pane(pane)

    def _check_runtimes(self) -> None:
        with self.client.engine.track():
            self.post_message(RuntimesChecked(self.client.check_runtimes()))

    def open_ahead(self) -> None:
        """Before the app runs: send its first open (`on_ready`'s) to an engine process at once, so the engine works
        while the first frame is built; that open then waits for it (`ProcessEngine.send_ahead`)."""
        self.client.engine.send_ahead("open_checkpoint", self.state.request(None, self.state.checkpoint))

    def open_checkpoint(self, path: Path, audio: Path | None = None) -> None:
        """Open `path` (a checkpoint or bundle) with `audio` (by default the clip open now)."""
        request = self.state.request(audio, path)
        call = self.client.begin("model", f"Cancelled opening {path.name}")
        self._call(call, "opening the checkpoint", "open_checkpoint", request)

    def rebuild_session(self, audio: Path | None = None) -> None:
        """A new session on the restored model: another clip, or the choices changed."""
        call = self.client.begin("model", "Cancelled preparing the runtimes")
        self._call(call, "preparing the session", "rebuild", self.state.request(audio))

    def run_corpus(self, manifest: Path, stream: bool = False, subset: Subset | None = None) -> None:
        call = self.client.begin("corpus", "Corpus run stopped; what finished is kept")
        self._call(call, "corpus run", "run_corpus", manifest, stream, subset,
                   done=f"Corpus {manifest.name} done" + (" (streaming)" if stream else ""))

    def run_steps(self, names: list[str]) -> None:
        call = self.client.begin("steps")
        self._call(call, "running steps", "run_steps", list(names), done="Done: " + ", ".join(names))

    def switch_joint_mode(self, mode: str, rerun: bool) -> None:
        call = self.client.begin("fuse")
        self._call(call, "switching the joint mode", "set_joint_mode", mode, rerun,
                   done=f"Joint in {mode} mode" + (" (joint rerun)" if rerun else ""))

    def _call(self, call: Call, description: str, method: str, *args: Any, done: str | None = None) -> None:
        self.run_worker(partial(self._run_call, call, method, args, done), thread=True, exclusive=True,
                        exit_on_error=False, group=call.group, description=description)

    def _run_call(self, call: Call, method: str, args: tuple[Any, ...], done: str | None) -> None:
        """In the worker thread: the engine call; its end as a `JobDone` (after every event it emitted)."""
        with self.client.running(call):
            try:
                self.client.run(call, method, *args)
            except CancelledError:
                self.post_message(JobDone(call.group, call.cancelled_text, cancelled=True, call=call.id))
                return
            if done is not None:
                self.post_message(JobDone(call.group, done, call=call.id))

    def write_report(self, directory: Path, stem: str, screenshot: Path) -> None:
        self.run_worker(partial(self._write_report, directory, stem, screenshot), thread=True, exclusive=True,
                        exit_on_error=False, group="export", description="writing the report")

    def _write_report(self, directory: Path, stem: str, screenshot: Path) -> None:
        with self.client.engine.track():
            paths = self.client.export(directory, stem)
            self.post_message(Exported([*paths, screenshot]))

    def run_precision(self, screen: PrecisionScreen, precision: str, weights: str | None,
                      runtime: str = "mil") -> None:
        call = self.client.begin("precision", "Precision analysis cancelled")
        self.run_worker(partial(self._precision_call, call, screen, precision, weights, runtime), thread=True,
                        exclusive=True, exit_on_error=False, group="precision", description="certifying precision")

    def _precision_call(self, call: Call, screen: PrecisionScreen, precision: str, weights: str | None,
                        runtime: str) -> None:
        """A runtime the core cannot certify on here is said on the screen (no other runtime's figures)."""
        from rnnt_tui.app.screens.precision import PrecisionDone, PrecisionRefused  # loaded when it opened

        with self.client.running(call):
            try:
                report = self.client.run(call, "precision", precision, weights, runtime)
            except CancelledError:
                self.post_message(JobDone("precision", call.cancelled_text, cancelled=True, call=call.id))
                return
            except RuntimeUnavailableError as error:
                screen.post_message(PrecisionRefused(str(error)))
                self.post_message(JobDone("precision", "Precision: not certified", call=call.id))
                return

            screen.post_message(PrecisionDone(report))
            self.post_message(JobDone("precision", f"Precision ({precision}): {report.get('status')}", call=call.id))

    def run_stream(self, cache_states: bool = False) -> None:
        call = self.client.begin("stream", "Streaming comparison cancelled")
        self._streaming_tab_call(call, "streaming comparison", "run_stream", (cache_states,), StreamDone)

    def run_windows(self, choices: WindowChoices) -> None:
        """The fixed-window comparison (`stream --window`); one Streaming tab: it replaces a streaming call still
        running (the same group), and a streaming call replaces it."""
        call = self.client.begin("stream", "Windowed comparison cancelled")
        self._streaming_tab_call(call, "windowed comparison", "run_windows",
                                 (choices.window_s, choices.overlap_s, choices.mel_left_s), WindowsDone)

    def _streaming_tab_call(self, call: Call, description: str, method: str, args: tuple[Any, ...],
                            done: type[StreamDone | WindowsDone]) -> None:
        self.run_worker(partial(self._streaming_call, call, description, method, args, done), thread=True,
                        exclusive=True, exit_on_error=False, group="stream", description=description)

    def _streaming_call(self, call: Call, description: str, method: str, args: tuple[Any, ...],
                        done: type[StreamDone | WindowsDone]) -> None:
        """The Streaming tab's calls (`s`, `S`, `w`): a checkpoint, candidate or clip the comparison cannot run is a
        notification saying why (the session on screen is untouched); the report goes to the tab as `done`."""
        name = description[0].upper() + description[1:]
        with self.client.running(call):
            try:
                report = self.client.run(call, method, *args)
            except CancelledError:
                self.post_message(JobDone("stream", call.cancelled_text, cancelled=True, call=call.id))
                return
            except (BadInputError, RuntimeUnavailableError) as error:
                if not self.client.is_stale(call.id):  # a newer s, S or w replaced it: its refusal is moot
                    self.call_from_thread(self.notify, refusal_text(error), title=REFUSAL_TITLES[method],
                                          severity="warning", timeout=10)
                self.post_message(JobDone("stream", f"{name} not run", call=call.id))
                return
            self.post_message(done(report, call.id))
            self.post_message(JobDone("stream", f"{name}: {report.get('status')}", call=call.id))

    def run_sweep(self, screen: SweepScreen, drift: bool = False) -> None:
        call = self.client.begin("sweep")
        self.run_worker(partial(self._sweep_call, call, screen, drift), thread=True, exclusive=True,
                        exit_on_error=False, group="sweep", description="compute-unit sweep")

    def _sweep_call(self, call: Call, screen: SweepScreen, drift: bool) -> None:
        with self.client.running(call):
            rows = self.client.run(call, "sweep", drift)
            from rnnt_tui.app.screens.sweep import SweepDone  # the screen's module: loaded when it opened

            screen.post_message(SweepDone(rows))
            self.post_message(JobDone("sweep", "Sweep with drift search done" if drift else "Sweep done",
                                      call=call.id))

    def run_coreai_drift(self, screen: CoreAIDriftScreen, components: list[str]) -> None:
        call = self.client.begin("drift", "Core AI drift search cancelled")
        self.run_worker(partial(self._coreai_drift_call, call, screen, components), thread=True, exclusive=True,
                        exit_on_error=False, group="drift", description="Core AI drift search")

    def _coreai_drift_call(self, call: Call, screen: CoreAIDriftScreen, components: list[str]) -> None:
        """A candidate that cannot be searched (not Core AI, cannot run here, a bundle) is a notification saying
        why; the report goes to the drift screen."""
        with self.client.running(call):
            try:
                report = self.client.run(call, "coreai_drift", components)
            except CancelledError:
                self.post_message(JobDone("drift", call.cancelled_text, cancelled=True, call=call.id))
                return
            except RuntimeUnavailableError as error:
                self.call_from_thread(self.notify, str(error), title="Core AI drift search", severity="warning",
                                      timeout=10)
                self.post_message(JobDone("drift", "Core AI drift search not run", call=call.id))
                return
            from rnnt_tui.app.screens.coreai_drift import DriftDone  # the screen's module: loaded when it opened

            screen.post_message(DriftDone(report))
            drifting = [n for n, r in report.get("drift", {}).items() if r.get("first")]
            self.post_message(JobDone("drift", f"Core AI drift: starts in {', '.join(drifting)}" if drifting
                                      else "Core AI drift: no op drifts", call=call.id))

    # -- what is running, and cancelling it -------------------------------------------------------------
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

    def corpus_running(self) -> bool:
        return any(w.group == "corpus" and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
                   for w in self.workers)
