"""The model at a glance: what the checkpoint is, its dimensions, vocabulary, durations, and the clip.

Everything comes from `core.summary.ModelSummary` (read from the archive's config before NeMo restores it) and
`core.clip.ClipInfo` (the clip less its samples); the panel shows them, it reads no file itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from rnnt_tui.app.widgets.in_place import update_in_place
from rnnt_tui.formatting import file_size

if TYPE_CHECKING:
    from rnnt_tui.core.clip import ClipInfo
    from rnnt_tui.core.summary import ModelSummary


PENDING = Text("…", style="dim")


def _rows(s: ModelSummary | None, audio: ClipInfo | None) -> list[tuple[str, str | Text]]:
    """The panel's rows above the status: each label and its value, or for a summary not read yet the labels it
    fills for an RNNT model and its clip, pending (the panel's height is its rows', and a panel that grew when the
    summary came laid out and repainted everything below it)."""
    if s is None:
        return [(label, PENDING) for label in ("file", "class", "encoder", "decoder", "joint", "vocab", "features",
                                               "clip")]
    enc, dec, joint = s.encoder, s.decoder, s.joint
    layers = f"{enc.n_layers} × {enc.d_model}" if enc.n_layers and enc.d_model else enc.d_model
    rnn = f"{dec.pred_rnn_layers} × {dec.pred_hidden}" if dec.pred_rnn_layers else dec.pred_hidden
    rate = f"{s.sample_rate / 1000:g} kHz" if s.sample_rate else None
    stride = f"{s.window_stride * 1000:g} ms hop" if s.window_stride else None
    rows: list[tuple[str, str | Text]] = [
        ("file", _join(s.path.rsplit("/", 1)[-1], f"({file_size(s.size_bytes)})")),
        ("class", _join(s.model_class, f"NeMo {s.nemo_version}" if s.nemo_version else None)),
        ("encoder", _join(enc.type, layers, f"{enc.n_heads} heads" if enc.n_heads else None,
                          f"{enc.subsampling} ×{enc.subsampling_factor}" if enc.subsampling_factor else None)),
        ("decoder", _join(dec.type, rnn)),
        ("joint", _join(joint.type, joint.joint_hidden, joint.activation, f"→ {joint.num_classes_with_blank} outputs")),
        ("vocab", _join(s.vocab_size, s.tokenizer, f"· blank {s.blank_id}")),
    ]
    if s.durations:
        rows.append(("durations", ", ".join(str(d) for d in s.durations)))
    rows.append(("features", _join(rate, f"{s.n_mels} mels" if s.n_mels else None, stride)))
    if audio is None:
        rows.append(("clip", PENDING))  # loaded next: its row is there already
    else:
        notes = "; ".join(audio.notes())
        rows.append(("clip", _join(audio.path.name, f"{audio.duration_s:.2f} s", f"({notes})" if notes else None)))
    return rows


#: the labels shown before the summary arrives
PENDING_ROWS = tuple(label for label, _ in _rows(None, None))


def _pending(status: str) -> Text:
    """The pending rows and the status, laid out as the summary's grid lays them out (label column, one space)."""
    width = max(len(label) for label in (*PENDING_ROWS, "status"))
    text = Text()
    for label in PENDING_ROWS:
        text.append(f"{label:<{width}} ", style="bold").append_text(PENDING).append("\n")
    return text.append(f"{'status':<{width}} ", style="bold").append(status, style="italic")


def _join(*parts: Any) -> str:
    return " ".join(str(p) for p in parts if p not in (None, ""))


class ModelPanel(Static):
    """Summary of the checkpoint and the clip; `status` says where the restore is."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.summary: ModelSummary | None = None
        self.audio: ClipInfo | None = None
        self.status = "reading the checkpoint…"

    def on_mount(self) -> None:
        self.border_title = "Model"
        self.refresh_view()

    def show(self, summary: ModelSummary | None = None, audio: ClipInfo | None = None,
             status: str | None = None) -> None:
        if summary is not None:
            self.summary = summary
        if audio is not None:
            self.audio = audio
        if status is not None:
            self.status = status
        self.refresh_view()

    def refresh_view(self) -> None:
        if not self.is_attached:  # (`is_mounted` is still False in `on_mount`: the first frame showed nothing)
            return
        table = Table.grid(padding=(0, 1))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        s = self.summary
        if s is None and self.status.endswith("…"):
            # being read: the rows the summary fills, so the panel keeps its height (as Text: drawn in the first
            # frame, where a table costs more)
            update_in_place(self, _pending(self.status))
            return
        if s is None:
            table.add_row("model", Text(self.status, style="italic"))
            update_in_place(self, table)
            return
        self.border_title = f"Model · {s.kind.upper()}"
        for label, value in _rows(s, self.audio):
            table.add_row(label, value)
        table.add_row("status", Text(self.status, style="italic"))
        update_in_place(self, table)
