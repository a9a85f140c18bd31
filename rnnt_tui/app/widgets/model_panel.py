"""The model at a glance: what the checkpoint is, its dimensions, vocabulary, durations, and the clip.

Everything comes from `core.summary.ModelSummary` (read from the archive's config before NeMo restores it) and
`core.clip.ClipInfo` (the clip less its samples); the panel shows them, it reads no file itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from rnnt_tui.formatting import file_size

if TYPE_CHECKING:
    from rnnt_tui.core.clip import ClipInfo
    from rnnt_tui.core.summary import ModelSummary


#: the rows shown before the summary arrives (as many as it fills for an RNNT model and its clip): the panel's
#: height is its rows', and a panel that grew when the summary came laid out and repainted everything below it
PENDING_ROWS = ("file", "class", "encoder", "decoder", "joint", "vocab", "features", "clip")
PENDING = Text("…", style="dim")


def _pending(status: str) -> Text:
    """`PENDING_ROWS` and the status, laid out as the summary's grid lays them out (label column, one space)."""
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
        if s is None and self.status.endswith("…"):  # being read: the rows the summary fills, so the panel keeps
            self.update(_pending(self.status))  # its height (as Text: drawn in the first frame, a table costs more)
            return
        if s is None:
            table.add_row("model", Text(self.status, style="italic"))
            self.update(table)
            return
        self.border_title = f"Model · {s.kind.upper()}"
        enc, dec, joint = s.encoder, s.decoder, s.joint
        table.add_row("file", _join(s.path.rsplit("/", 1)[-1], f"({file_size(s.size_bytes)})"))
        table.add_row("class", _join(s.model_class, f"NeMo {s.nemo_version}" if s.nemo_version else None))
        layers = f"{enc.n_layers} × {enc.d_model}" if enc.n_layers and enc.d_model else enc.d_model
        table.add_row("encoder", _join(enc.type, layers, f"{enc.n_heads} heads" if enc.n_heads else None,
                                       f"{enc.subsampling} ×{enc.subsampling_factor}"
                                       if enc.subsampling_factor else None))
        rnn = f"{dec.pred_rnn_layers} × {dec.pred_hidden}" if dec.pred_rnn_layers else dec.pred_hidden
        table.add_row("decoder", _join(dec.type, rnn))
        table.add_row("joint", _join(joint.type, joint.joint_hidden, joint.activation,
                                     f"→ {joint.num_classes_with_blank} outputs"))
        table.add_row("vocab", _join(s.vocab_size, s.tokenizer, f"· blank {s.blank_id}"))
        if s.durations:
            table.add_row("durations", ", ".join(str(d) for d in s.durations))
        rate = f"{s.sample_rate / 1000:g} kHz" if s.sample_rate else None
        stride = f"{s.window_stride * 1000:g} ms hop" if s.window_stride else None
        table.add_row("features", _join(rate, f"{s.n_mels} mels" if s.n_mels else None, stride))
        if self.audio is not None:
            a = self.audio
            notes = "; ".join(a.notes())
            table.add_row("clip", _join(a.path.name, f"{a.duration_s:.2f} s", f"({notes})" if notes else None))
        else:
            table.add_row("clip", PENDING)  # loaded next: its row is there already
        table.add_row("status", Text(self.status, style="italic"))
        self.update(table)
