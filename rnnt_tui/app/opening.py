"""Opening files: the checkpoint or bundle and clip pickers, a clip or a corpus (manifest, list, folder) opened
from them or from the Corpus tab, and the Corpus tab's own requests (streaming or offline, open an utterance).

A base of `actions.Actions` (what the keys do), on `calls.Calls`: each opening only changes the state's choices and
starts a call; results come back as messages.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from textual.widgets import TabbedContent

from rnnt_tui.app.bundle_choice import choose
from rnnt_tui.app.calls import Calls
from rnnt_tui.core.names import AUDIO_SUFFIXES

if TYPE_CHECKING:
    from rnnt_tui.app.widgets.corpus_view import CorpusView

#: what the clip picker takes as a corpus rather than a clip: a NeMo manifest, a list of paths, or a folder
MANIFEST_SUFFIXES = (".json", ".jsonl", ".txt", ".lst")


def is_manifest(path: Path) -> bool:
    """A manifest or list by its suffix, or a folder of clips (a folder named like a clip is a bad clip)."""
    suffix = path.suffix.lower()
    return suffix in MANIFEST_SUFFIXES or (path.is_dir() and suffix not in AUDIO_SUFFIXES)


class Opening(Calls):
    """Picking and opening checkpoints, bundles, clips and corpora."""

    manifest: Path | None
    from_corpus: bool = False
    run_when_ready: bool = False  # an utterance opened from the Corpus tab runs every step at once

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

    def use_against(self, against: str) -> None:
        """Another candidate for the next open (no rebuild: the open that follows builds the session)."""
        s = self.state
        s.options = replace(s.options, against=against)
        self.draw_tabs("tab-runtimes")
        s.labels["candidate"] = s.candidate_fallback()
        self.show_header()

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
        self.cancel_calls("steps", "stream")  # a streaming run is about the old model (and holds it until it ends)
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
        self.cancel_calls("steps", "stream")  # a streaming run is about the old clip (and holds the model till it ends)
        self.status.working(f"Reading {path.name}…")
        self.rebuild_session(path)
