"""The Corpus tab: the next run's subset, a corpus run's progress and ETA, its aggregates as they update, and its
utterances.

Shows what the core's corpus runner reports (`core.corpus.runner` events, forwarded by the engine) and computes
nothing: the headline figures are the runner's running totals, the expected work is the runner's estimate. The
subset field is `corpus --subset first:N|every:K --rest R` (`core.corpus.subset`): the candidate on some entries,
another runtime on the rest; it applies to the next corpus opened. The utterance table keeps one row per utterance
(stable keys, cells updated in place), says what ran each one's candidate side, and sorts by ΔWER, drift or first
divergence; Enter asks the app to open that utterance in the component explorer (`Opened`). `m` switches the tab
between offline and streaming transcripts (`corpus --stream`: NeMo's cache-aware loop vs the candidate's
streaming step) and asks the app to run the corpus again that way (`ModeChanged`); a streaming run adds the
runner's per-att-context rows (latency, WER vs NeMo streaming and offline, drift) under the totals, and its drift
column is the free-running encoder's."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Label, ProgressBar, Select, Static

from rnnt_tui.app.format import DASH, num
from rnnt_tui.core.corpus.subset import REST_RUNTIMES, Subset, ran_on
from rnnt_tui.core.names import RUNTIME_LABELS

#: sort keys the table offers, in the order `s` cycles through them (worst first)
SORTS = ("order", "ΔWER", "drift", "divergence")


def _pct(value: float | None) -> str:
    return DASH if value is None else f"{value:.1%}"


def _sort_value(row: dict[str, Any], key: str) -> Any:
    if key == "ΔWER":
        value = row.get("wer_delta")
        return -(value if value is not None else -math.inf)
    if key == "drift":
        value = row.get("drift")
        return -(value if value is not None and not math.isnan(value) else -math.inf)
    if key == "divergence":
        value = row.get("divergence")
        return value if value is not None else math.inf
    return row["position"]


class CorpusTable(DataTable[Any]):
    """Utterances, one row each."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "cycle_sort", "Sort", tooltip="Sort by order, ΔWER, drift, first divergence",
                id="corpus.sort"),
    ]
    COLUMNS = (("#", "pos"), ("clip", "clip"), ("status", "status"), ("ΔWER", "wer_delta"), ("tokens", "identical"),
               ("first divergence", "divergence"), ("encoder max|Δ|", "drift"), ("joint argmax", "argmax"),
               ("ran on", "ran_on"), ("reference", "reference"), ("candidate", "candidate"))

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.rows_data: dict[str, dict[str, Any]] = {}
        self.sort_index = 0

    def on_mount(self) -> None:
        for label, key in self.COLUMNS:
            self.add_column(label, key=key)

    def show_record(self, record: Any, position: int) -> None:
        """Add or update the row of one finished utterance."""
        wer = {side: (s.words.rate if s is not None else None) for side, s in
               ((side, record.scores.get(side)) for side in ("reference", "candidate"))}
        delta = None if None in wer.values() else wer["candidate"] - wer["reference"]  # type: ignore[operator]
        encoder = record.steps.get("encoder") or record.steps.get("stream")  # a streaming record's one step
        joint = record.steps.get("joint")
        divergence = record.first_divergence.get("index") if record.first_divergence else None
        row = {"position": position, "wer_delta": delta, "drift": encoder.max_abs if encoder else None,
               "divergence": divergence, "audio": record.audio, "uid": record.uid}
        self.rows_data[record.uid] = row
        status_style = {"ok": "green", "error": "yellow", "failed": "bold red"}.get(record.status, "")
        identical = DASH if record.identical is None else ("identical" if record.identical else
                                                            f"{_pct(record.token_agreement)} agree")
        cells = [str(position), Path(record.audio).name or record.uid,
                 Text(record.status if record.status == "ok" else f"{record.status}: {record.error or ''}"[:60],
                      style=status_style),
                 Text(DASH if delta is None else f"{delta:+.1%}", style="bold red" if (delta or 0) > 0 else ""),
                 Text(identical, style="" if record.identical in (None, True) else "bold red"),
                 DASH if divergence is None else f"token {divergence}",
                 num(encoder.max_abs) if encoder else DASH,
                 _pct(joint.argmax_agreement) if joint else DASH,
                 ran_on(record.candidate_label, record.runs_on) or DASH,
                 (record.reference_text or "")[:40], (record.candidate_text or "")[:40]]
        if record.uid in self.rows:
            for (_, key), value in zip(self.COLUMNS, cells, strict=True):
                self.update_cell(record.uid, key, value)
        else:
            self.add_row(*cells, key=record.uid)
        if self.sort_index:
            self._sort()

    def clear_rows(self) -> None:
        self.clear()
        self.rows_data.clear()

    def action_cycle_sort(self) -> None:
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self._sort()
        self.notify(f"Utterances sorted by {SORTS[self.sort_index]}", timeout=2)

    def _sort(self) -> None:
        key = SORTS[self.sort_index]
        by_position = {str(r["position"]): _sort_value(r, key) for r in self.rows_data.values()}
        self.sort("pos", key=lambda pos: by_position.get(str(pos), math.inf))


class CorpusView(Vertical):
    """Progress, aggregates and the utterance table of the running (or last) corpus."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("m", "toggle_stream", "Streaming", tooltip="Score streaming transcripts (cache-aware models: "
                "NeMo's chunked loop vs the candidate's streaming step) or offline ones; runs the corpus again",
                id="corpus.stream"),
    ]

    @dataclass
    class Opened(Message):
        """The user asked to open this utterance in the component explorer."""

        audio: Path
        uid: str

    @dataclass
    class ModeChanged(Message):
        """The user switched between offline and streaming transcripts; `manifest`: the corpus shown, if any."""

        stream: bool
        manifest: Path | None

    title_text = Text("")
    stream = False
    manifest: Path | None = None

    def __init__(self, subset: Subset | None = None, **kwargs: Any) -> None:
        """`subset`: what the subset field starts with (`rnnt-tui CHECKPOINT MANIFEST --subset …`)."""
        super().__init__(**kwargs)
        self.initial_subset = subset

    def compose(self) -> ComposeResult:
        yield Static("No corpus yet: open a manifest (a NeMo manifest, a folder of clips or a list of paths) "
                     "with a, or `rnnt-tui CHECKPOINT MANIFEST`.", id="corpus-title")
        with Horizontal(id="corpus-options"):
            yield Label("Subset ")
            start = self.initial_subset
            yield Input(str(start or ""), placeholder="all, first:N or every:K", id="corpus-subset", compact=True)
            yield Label("  rest on ")
            yield Select([(RUNTIME_LABELS[r], r) for r in REST_RUNTIMES], value=start.rest if start else
                         REST_RUNTIMES[0], allow_blank=False, id="corpus-rest", compact=True)
        yield Static(id="corpus-subset-note", classes="notes")
        with Horizontal(id="corpus-progress"):
            yield ProgressBar(total=100, show_eta=False, id="corpus-bar")
            yield Static("", id="corpus-eta")
        yield Static("", id="corpus-estimate", classes="notes")
        yield Static("", id="corpus-totals")
        yield Static("", id="corpus-stream-rows")
        yield CorpusTable(id="corpus-table")

    def on_mount(self) -> None:
        for empty in ("#corpus-estimate", "#corpus-totals"):  # no lines of their own until there is something
            self.query_one(empty, Static).display = False
        self.query_one("#corpus-subset", Input).tooltip = (
            "corpus --subset: the candidate on the first N entries or every K-th (from the first), the rest on "
            "the runtime at its right (Core AI on Linux takes seconds a clip); empty: every entry on the candidate")
        self._subset_note()

    def focus_table(self) -> None:
        self.query_one(CorpusTable).focus()

    def action_toggle_stream(self) -> None:
        self.stream = not self.stream
        self.post_message(self.ModeChanged(self.stream, self.manifest))

    def subset(self) -> Subset | None:
        """The subset the next corpus runs with (None: every entry on the candidate); ValueError saying why the
        field cannot be read."""
        spec = self.query_one("#corpus-subset", Input).value.strip()
        if spec in ("", "all"):
            return None
        return Subset.parse(spec, str(self.query_one("#corpus-rest", Select).value))

    @on(Input.Changed, "#corpus-subset")
    @on(Select.Changed, "#corpus-rest")
    def _subset_note(self) -> None:
        try:
            subset = self.subset()
        except ValueError as exc:
            note = Text(str(exc), style="bold red")
        else:
            note = Text("Every entry on the candidate" if subset is None else subset.describe("the candidate"))
            note.append(" · applies to the next corpus opened (a)", style="dim")
        self.query_one("#corpus-subset-note", Static).update(note)

    def show_estimate(self, text: str) -> None:
        """The runner's expected work (before the first utterance), then its measured estimate."""
        estimate = self.query_one("#corpus-estimate", Static)
        estimate.update(Text(text, style="dim"))
        estimate.display = True

    def planned(self, manifest: Path, out_dir: Path, total: int, done: int, errors: int) -> None:
        self.query_one(CorpusTable).clear_rows()
        rows = self.query_one("#corpus-stream-rows", Static)
        rows.update("")
        rows.display = False
        self.manifest = manifest
        resumed = f", {done} already done (resumed)" if done else ""
        bad = f", {errors} bad manifest lines" if errors else ""
        mode = ("streaming", "bold magenta") if self.stream else ("offline", "bold")
        self.title_text = Text.assemble(
            ("Corpus ", "bold"), (manifest.name, "bold cyan"), " · ", mode,
            f": {total} utterances{resumed}{bad} · results in ", (str(out_dir), "dim"),
            " · Enter opens an utterance, s sorts, m streaming / offline")
        self.query_one("#corpus-title", Static).update(self.title_text)
        self.query_one("#corpus-bar", ProgressBar).update(total=max(total, 1), progress=done)

    def finished_one(self, record: Any, position: int, total: int, totals: dict[str, Any], eta_s: float | None,
                     labels: dict[str, str]) -> None:
        self.query_one(CorpusTable).show_record(record, position)
        self.query_one("#corpus-bar", ProgressBar).update(total=max(total, 1), progress=position)
        eta = DASH if eta_s is None else (f"{eta_s:.0f} s" if eta_s < 120 else f"{eta_s / 60:.1f} min")
        self.query_one("#corpus-eta", Static).update(f" {position}/{total} · ETA {eta}")
        if totals:
            self.show_totals(totals, labels)

    def show_totals(self, totals: dict[str, Any], labels: dict[str, str]) -> None:
        wer, rtfx = totals.get("wer", {}), totals.get("rtfx", {})
        delta = totals.get("wer_delta")
        rows = totals.get("stream")
        reference, candidate = labels["reference"], labels["candidate"]
        if rows is not None:  # a streaming run: its figures are NeMo streaming's and the candidate's streaming
            reference, candidate = "NeMo streaming", f"{candidate} streaming"
            shown = self.query_one("#corpus-stream-rows", Static)
            shown.update(stream_rows_text(rows))
            shown.display = True
        line = Text.assemble(
            ("WER ", "bold"), f"{reference} {_pct(wer.get('reference'))} · "
                              f"{candidate} {_pct(wer.get('candidate'))}",
            ("  ΔWER ", "bold"), (DASH if delta is None else f"{delta:+.2%}",
                                  "bold red" if (delta or 0) > 0 else "green"),
            ("  QoI ", "bold"), f"{_pct(totals.get('qoi'))} of {totals.get('qoi_over', 0)}",
            ("  identical ", "bold"), f"{_pct(totals.get('identical'))} of {totals.get('identical_over', 0)}",
            ("  RTFx ", "bold"), f"{num(rtfx.get('reference'))} / {num(rtfx.get('candidate'))}",
            ("  errors ", "bold"), f"{totals.get('errors', 0)} bad input, {totals.get('failed', 0)} failed")
        shown = self.query_one("#corpus-totals", Static)
        shown.update(line)
        shown.display = True

    def ended(self, interrupted: bool, reports: tuple[Path, ...]) -> None:
        where = reports[0].parent if reports else None
        word = "stopped (what finished is kept; opening it again resumes)" if interrupted else "done"
        self.query_one("#corpus-title", Static).update(
            Text.assemble(self.title_text, f"\n{word}", f" · reports in {where}" if where else ""))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        uid = str(event.row_key.value)
        row = self.query_one(CorpusTable).rows_data.get(uid)
        if row is not None and row["audio"]:
            self.post_message(self.Opened(Path(row["audio"]), uid))


def stream_rows_text(rows: list[dict[str, Any]]) -> Text:
    """The runner's per-att-context rows of a streaming corpus, one line each."""
    text = Text("Per att context (reference: NeMo's cache-aware loop)", style="bold")
    for r in rows:
        drift = (r.get("drift_free_running") or {}).get("worst")
        text.append_text(Text.assemble(
            "\n", (str(r["att_context_size"]), "bold cyan"), f"  latency {num(r['latency_ms'])} ms",
            f"  identical {_pct(r['identical'])} of {r['utterances']}",
            f"  WER vs NeMo streaming {_pct(r['wer_vs_streaming'])}",
            f"  vs offline {_pct(r['wer_vs_offline'])}",
            f"  NeMo streaming vs offline {_pct(r['nemo_streaming_vs_offline'])}",
            f"  drift worst {num(drift)}"))
    return text
