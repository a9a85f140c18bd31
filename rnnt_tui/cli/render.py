"""Rich renderings of core results for the headless commands (the app has its own widgets).

Rendering only: every number comes from a core result (a comparison's tables from `core.report.Comparison`, the
object its JSON and Markdown are made from); number formats are `rnnt_tui.formatting`'s.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from rnnt_tui.core.names import Status
from rnnt_tui.core.report import Comparison
from rnnt_tui.core.stats.results import StepResult
from rnnt_tui.core.summary import ModelSummary
from rnnt_tui.formatting import cosine, file_size, num

STATUS_STYLE = {Status.DONE: "green", Status.MISMATCH: "bold red", Status.FAILED: "bold red"}


_DTYPES = {"float32": "f32", "float16": "f16", "float64": "f64", "int64": "i64", "int32": "i32", "bool": "bool"}


def shape(info: Any) -> str:
    if info is None:
        return "-"
    return f"[{','.join(map(str, info.shape))}] {_DTYPES.get(info.dtype, info.dtype)}"


def summary_table(summary: ModelSummary) -> Table:
    table = Table(title=f"{summary.model_class} ({summary.kind})", show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    enc, dec, joint = summary.encoder, summary.decoder, summary.joint
    rows = [
        ("checkpoint", f"{summary.path} ({file_size(summary.size_bytes)})"),
        ("sample rate / mels", f"{summary.sample_rate} Hz / {summary.n_mels}"),
        ("encoder", f"{enc.type} d_model {enc.d_model}, {enc.n_layers} layers, {enc.subsampling} "
                    f"{enc.subsampling_factor}x"),
        ("decoder", f"{dec.type} {dec.pred_rnn_layers} x LSTM {dec.pred_hidden}"),
        ("joint", f"{joint.type} hidden {joint.joint_hidden} ({joint.activation}), "
                  f"{joint.num_classes_with_blank} outputs"),
        ("vocabulary", f"{summary.vocab_size} {summary.tokenizer} tokens, blank id {summary.blank_id}"),
        ("durations", str(summary.durations) if summary.durations else "-"),
        ("fuse_loss_wer", Text(str(joint.fuse_loss_wer), style="bold yellow" if joint.fuse_loss_wer else "")),
        ("fused_batch_size", str(joint.fused_batch_size)),
        ("log_softmax", str(joint.log_softmax)),
    ]
    for key, value in rows:
        table.add_row(key, value if isinstance(value, Text) else str(value))
    return table


def run_table(session: Comparison) -> Table:
    table = Table(title="NeMo / PyTorch pipeline", title_justify="left")
    for col in ("component", "inputs", "outputs", "first ms", "median ms", "p90 ms", "status"):
        table.add_column(col, justify="right" if "ms" in col else "left", no_wrap=col != "status")
    for name, result in session.results.items():
        t = result.timings.get("reference")
        table.add_row(name, "\n".join(f"{i.name} {shape(i)}" for i in result.inputs),
                      "\n".join(f"{o.name} {shape(o)}" for o in result.reference_outputs),
                      num(t.first_ms if t else None), num(t.median_ms if t else None),
                      num(t.p90_ms if t else None),
                      Text(result.status if not result.error else f"{result.status}: {result.error}",
                           style=STATUS_STYLE.get(result.status, "")))
    table.caption = _conditions(session)
    return table


def _conditions(session: Comparison) -> str:
    """The timing table's footer: threads, machine load, and any figure the spread or the load makes unreliable."""
    from rnnt_tui.core.timing import conditions_footer

    timed = [(f"{r.name} {side}", t) for r in session.results.values() for side, t in r.timings.items()]
    return "\n".join(conditions_footer(timed))


def fuse_table(session: Comparison) -> Group:
    data = session.fuse().to_json()
    table = Table(title=f"Joint mode: {data['mode']}", title_justify="left")
    table.add_column("flag")
    table.add_column("found")
    table.add_column("used")
    for key in ("fuse_loss_wer", "fused_batch_size", "log_softmax"):
        table.add_row(key, str(data[key]["found"]), str(data[key]["used"]))
    return Group(table, Text(data["explanation"], style="italic"),
                 Text(f"joint(encoder_outputs, decoder_outputs) → {data['joint_returns']}", style="dim"))


def _results(session: Comparison) -> list[StepResult]:
    return [r for name, r in session.results.items() if name != "decode"]


def shapes_table(session: Comparison) -> Table:
    table = Table(title="Shapes", title_justify="left")
    for col in ("component", "output", "reference", "candidate"):
        table.add_column(col)
    for result in _results(session):
        rows = result.comparisons or []
        if not rows:
            for info in result.reference_outputs:
                table.add_row(result.name, info.name, shape(info), Text(result.error or "-", style="red"))
        for row in rows:
            style = "" if row.candidate is None or row.shape_match else "bold red"
            table.add_row(result.name, row.name, shape(row.reference), Text(shape(row.candidate), style=style))
    return table


def timings_table(session: Comparison) -> Table:
    duration_ms = session.audio.duration_s * 1000.0
    table = Table(title=f"Timings (ms; clip {session.audio.duration_s:.2f} s)", title_justify="left")
    for col in ("component", "runtime", "prepare", "load", "cached", "first", "median", "p90", "RTF", "speedup"):
        table.add_column(col, justify="left" if col in ("component", "runtime") else "right")
    for result in [*_results(session), *([session.results["decode"]] if "decode" in session.results else [])]:
        for side, t in result.timings.items():
            if t is None:
                continue
            table.add_row(result.name, side, num(t.prepare_ms), num(t.load_ms),
                          "-" if t.cached is None else ("yes" if t.cached else "no"), num(t.first_ms),
                          num(t.median_ms), num(t.p90_ms), num(t.median_ms / duration_ms if duration_ms else None),
                          num(result.speedup) if side == "candidate" else "")
    table.caption = _conditions(session)
    return table


def diffs_table(session: Comparison) -> Group:
    table = Table(title="Diffs (candidate - reference)", title_justify="left")
    for col in ("component", "output", "max abs @ index", "mean abs", "RMSE", "max rel", "cosine", "SNR dB",
                "NaN/Inf", "argmax", "ok"):
        table.add_column(col, justify="left" if col in ("component", "output") else "right",
                         no_wrap=col != "output", min_width=14 if col == "output" else None)
    notes: list[Text] = []

    def footnote(text: str, style: str) -> str:
        notes.append(Text(f"[{len(notes) + 1}] {text}", style=style))
        return f"[{len(notes)}]"

    for result in _results(session):
        if result.error:
            table.add_row(result.name, footnote(f"{result.name}: {result.error}", "red"), *([""] * 8),
                          Text("FAIL", "bold red"))
        elif not result.comparisons:
            note = next((n for n in result.notes if "candidate" in n or "has no" in n), result.status)
            table.add_row(result.name, footnote(f"{result.name}: {note}", "dim"), *([""] * 8), Text("n/a", "dim"))
        for row in result.comparisons:
            s = row.stats
            ok = row.ok
            verdict = Text("n/a" if ok is None else ("ok" if ok else "FAIL"),
                           style="dim" if ok is None else ("green" if ok else "bold red"))
            note = row.note.replace("lengths must match exactly", "").strip("; ")
            name = row.name if not note else f"{row.name} {footnote(f'{result.name}.{row.name}: {note}', 'yellow')}"
            if s is None:
                table.add_row(result.name, name, *([""] * 8), verdict)
                continue
            nan_inf = f"{s.nan['candidate']}/{s.inf['candidate']}"
            if s.nan["reference"] or s.inf["reference"]:
                nan_inf += f" ref {s.nan['reference']}/{s.inf['reference']}"
            index = ",".join(map(str, s.max_abs_index or []))
            table.add_row(result.name, name, f"{num(s.max_abs, 2)} @[{index}]", num(s.mean_abs, 2),
                          num(s.rmse, 2), num(s.max_rel, 2), cosine(s.cosine), num(s.snr_db),
                          Text(nan_inf, style="bold red" if nan_inf != "0/0" else ""),
                          "" if s.argmax_agreement is None else f"{s.argmax_agreement:.1%}", verdict)
    tolerances = ", ".join(f"{name} {t.atol:g}/{t.rtol:g}" for name, t in session.settings.tolerances.items())
    notes.append(Text(f"ok = every element within atol + rtol*|reference| ({tolerances}); lengths exactly",
                      style="dim"))
    return Group(table, *notes)


def transcripts(session: Comparison) -> Group:
    comp = session.decode_comparison
    lines: list[Text] = []
    if comp is None:
        decode = session.results.get("decode")
        return Group(Text(f"decode: {decode.error if decode else 'not run'}", style="red"))
    lines.append(Text.assemble(("reference  ", "bold"), comp.reference_text))
    if comp.candidate_text is not None:
        lines.append(Text.assemble(("candidate  ", "bold"), comp.candidate_text))
    lines.append(Text.assemble(("NeMo       ", "bold"), str(comp.nemo_text),
                               ("  (reference decode matches NeMo)" if comp.matches_nemo
                                else "  (reference decode DIFFERS from NeMo)", "dim" if comp.matches_nemo else "red")))
    if session.audio.resampled or session.audio.downmixed:  # which samples both sides (and NeMo) were fed
        lines.append(Text(f"audio      {'; '.join(session.audio.notes())}", style="dim"))
    if comp.token_agreement is not None:
        lines.append(Text(f"token agreement {comp.token_agreement:.1%}, WER {comp.wer:.1%}"))
    if comp.first_divergence is not None:
        d = comp.first_divergence
        lines.append(Text(f"first divergence at token {d.index} (frame {d.frame_reference}): "
                          f"{d.piece_reference!r} vs {d.piece_candidate!r}", style="bold red"))
    return Group(*lines)
