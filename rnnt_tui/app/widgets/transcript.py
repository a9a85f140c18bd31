"""Transcripts side by side: the reference, the candidate and NeMo's own decoding, tokens differing from the
reference marked, and the first divergence pointed at.

All of it is the core's `DecodeComparison` (texts, tokens, pieces, agreement, WER, first divergence); the view
only lays the pieces out and colours the ones the core's divergence and token lists say differ.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from rnnt_tui.app.format import num

if TYPE_CHECKING:
    from rnnt_tui.core.stats.results import DecodeComparison


def _pieces_line(pieces: list[str], tokens: list[int], ref_tokens: list[int], diverge: int | None) -> Text:
    """The pieces as boxes; ▶ points at the first divergence, tokens from there on that differ are marked."""
    text = Text()
    for i, piece in enumerate(pieces):
        shown = piece.replace(" ", "␣") or "∅"
        differs = diverge is not None and i >= diverge and (i >= len(ref_tokens) or tokens[i] != ref_tokens[i])
        if i == diverge:
            text.append("▶", style="bold red")
        text.append(shown, style="bold white on red" if differs else "bold reverse" if i == diverge else "bold")
        text.append(" ")
    return text


class TranscriptView(VerticalScroll):
    """Reference, candidate and NeMo transcripts, with the first divergence."""

    def compose(self) -> ComposeResult:
        yield Static(id="transcript-body")

    def on_mount(self) -> None:
        self.show(None, {})

    def show(self, decode: DecodeComparison | None, labels: dict[str, str]) -> None:
        self.query_one("#transcript-body", Static).update(render_transcripts(decode, labels))


def render_transcripts(decode: DecodeComparison | None, labels: dict[str, str]) -> RenderableType:
    if decode is None:
        return Text("Run the decode step (n until decode, or r for all) to see the transcripts.", style="dim")
    table = Table(show_header=True, show_edge=False, pad_edge=False, expand=True)
    table.add_column("decoded by", style="bold", no_wrap=True)
    table.add_column("text", ratio=1)
    table.add_column("vs NeMo", no_wrap=True)
    ref_label = labels.get("reference", "reference")
    table.add_row(f"{ref_label} (components)", Text(decode.reference_text or "∅"), _match(decode.matches_nemo))
    if decode.candidate_text is not None:
        table.add_row(labels.get("candidate", "candidate"), Text(decode.candidate_text or "∅"),
                      _match(decode.candidate_matches_nemo))
    if decode.nemo_text is not None:
        table.add_row("NeMo decoding", Text(decode.nemo_text or "∅"), Text("-", style="dim"))
    parts: list[RenderableType] = [table, Text()]
    div = decode.first_divergence
    diverge = div.index if div is not None else None
    parts.append(Text(f"{ref_label} tokens", style="bold"))
    parts.append(_pieces_line(decode.reference_pieces, decode.reference_tokens, decode.reference_tokens, None))
    if decode.candidate_pieces is not None and decode.candidate_tokens is not None:
        parts.append(Text(f"{labels.get('candidate', 'candidate')} tokens", style="bold"))
        line = _pieces_line(decode.candidate_pieces, decode.candidate_tokens, decode.reference_tokens, diverge)
        parts.append(line)
        if div is not None:
            parts.append(Text(f"first divergence at token {div.index}, frame {div.frame_reference} "
                              f"(candidate frame {div.frame_candidate}): {div.piece_reference!r} "
                              f"vs {div.piece_candidate!r}", style="bold red"))
    summary = Text()
    summary.append("token agreement ", style="bold")
    summary.append(num(decode.token_agreement), style=_good(decode.token_agreement == 1.0))
    summary.append("   WER ", style="bold")
    summary.append(num(decode.wer), style=_good(decode.wer == 0.0))
    if div is None and decode.candidate_tokens is not None:
        summary.append("   the transcripts agree token for token", style="bold green")
    parts += [Text(), summary]
    return Group(*parts)


def _match(value: bool | None) -> Text:
    if value is None:
        return Text("-", style="dim")
    return Text("same", style="green") if value else Text("differs", style="bold red")


def _good(ok: bool) -> str:
    return "bold green" if ok else "bold red"


def transcript_line(decode: DecodeComparison | None, labels: dict[str, str]) -> Text:
    """One line for the tables tab: the transcripts and whether they agree (the core's first divergence)."""
    if decode is None:
        return Text("Transcripts appear here after the decode step.", style="dim")
    text = Text()
    text.append("Transcripts ", style="bold")
    text.append(f"{labels.get('reference', 'reference')}: ", style="dim")
    text.append(repr(decode.reference_text))
    if decode.candidate_text is not None:
        text.append(f" · {labels.get('candidate', 'candidate')}: ", style="dim")
        text.append(repr(decode.candidate_text))
    if decode.nemo_text is not None:
        text.append(" · NeMo: ", style="dim")
        text.append(repr(decode.nemo_text))
    if decode.candidate_tokens is None:
        return text
    if decode.first_divergence is None:
        text.append("  agree token for token", style="bold green")
    else:
        text.append(f"  differ from token {decode.first_divergence.index}", style="bold red")
    return text
