"""The selected step in detail: each input and output on both runtimes (name, shape, dtype, first values),
its diff statistics, its timings, notes and error.

Rendered from one `core.results.StepResult` as Rich tables; the first values are the core's samples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from rnnt_tui.app.format import DASH, ms, num, passfail, shape, state_text, values
from rnnt_tui.app.widgets.in_place import update_in_place
from rnnt_tui.formatting import cosine

if TYPE_CHECKING:
    from rnnt_tui.core.stats.results import StepResult

STEP_BLURBS = {
    "preprocessor": "audio samples → log-mel features",
    "encoder": "features → encoder frames (reference features fed to both runtimes)",
    "decoder": "prediction net, one step per token along the reference's decode path",
    "joint": "joint over the whole T × U grid (reference encoder and decoder outputs fed to both)",
    "decode": "greedy decoding end to end on each runtime, and NeMo's own decoding",
}


class DetailView(VerticalScroll):
    """The selected step's inputs, outputs, stats and timings."""

    def compose(self) -> Any:
        yield Static(id="detail-body")

    def show(self, step: str, result: StepResult | None, labels: dict[str, str], status: str,
             hint: str = "") -> None:
        self.border_title = f"Step · {step}"
        update_in_place(self.query_one("#detail-body", Static), render_detail(step, result, labels, status, hint))


def render_detail(step: str, result: StepResult | None, labels: dict[str, str], status: str,
                  hint: str = "") -> RenderableType:
    """`hint`: what the user can do next about this result (e.g. the Core AI drift search), under the head."""
    head = Text.assemble((f"{step} ", "bold"), state_text(status, step=step),
                         ("  " + STEP_BLURBS.get(step, ""), "dim"))
    if result is None:
        return Group(head, Text("Not run yet: n runs the next step, r runs them all.", style="dim"))
    parts: list[RenderableType] = [head]
    if hint:
        parts.append(Text(hint, style="italic yellow"))
    if result.error:
        parts.append(Text(f"error: {result.error}", style="bold red"))
    if result.inputs:
        inputs = Table(title="inputs (the same on both runtimes)", title_justify="left", expand=False,
                       show_edge=False, pad_edge=False)
        for col in ("name", "shape", "dtype"):
            inputs.add_column(col)
        for info in result.inputs:
            inputs.add_row(info.name, shape(info.shape), info.dtype)
        parts.append(inputs)
    if result.reference_outputs:
        parts.append(_outputs(result, labels))
    stats = _stats(result)
    if stats is not None:
        parts.append(stats)
    if any(t is not None for t in result.timings.values()):  # a step that raised has no timings to show
        parts.append(_timings(result, labels))
    for note in result.notes:
        if note.lstrip().startswith("Traceback"):  # kept for the report, not drawn on screen
            parts.append(Text("note: a traceback was recorded; export the report (e) to read it", style="dim"))
            continue
        parts.append(Text(f"note: {note.strip()}", style="italic dim"))
    return Group(*parts)


def _outputs(result: StepResult, labels: dict[str, str]) -> Table:
    table = Table(title="outputs", title_justify="left", show_edge=False, pad_edge=False)
    ref_label, cand_label = labels.get("reference", "reference"), labels.get("candidate", "candidate")
    for col in ("name", f"{ref_label} shape", "dtype", "first values", f"{cand_label} shape", "dtype",
                "first values"):
        table.add_column(col, overflow="fold")
    candidates = {t.name: t for t in result.candidate_outputs}
    ref_samples = result.samples.get("reference", {})
    cand_samples = result.samples.get("candidate", {})
    for info in result.reference_outputs:
        cand = candidates.get(info.name)
        table.add_row(info.name, shape(info.shape), info.dtype, values(ref_samples.get(info.name)),
                      shape(cand.shape) if cand else DASH, cand.dtype if cand else DASH,
                      values(cand_samples.get(info.name)) if cand else DASH)
    return table


def _stats(result: StepResult) -> Table | None:
    rows = [c for c in result.comparisons if c.stats is not None]
    if not rows:
        return None
    table = Table(title="diff (candidate - reference)", title_justify="left", show_edge=False, pad_edge=False)
    for col in ("output", "max abs", "at", "mean abs", "RMSE", "max rel", "cosine", "SNR dB", "outside tol",
                "atol/rtol", "result"):
        table.add_column(col)
    for c in rows:
        s = c.stats
        assert s is not None
        table.add_row(c.name, num(s.max_abs), shape(s.max_abs_index), num(s.mean_abs), num(s.rmse),
                      num(s.max_rel), cosine(s.cosine), num(s.snr_db), f"{s.violations}/{s.count}",
                      f"{num(c.atol)}/{num(c.rtol)}", passfail(c.ok))
    return table


def _timings(result: StepResult, labels: dict[str, str]) -> Table:
    table = Table(title="timings (ms)", title_justify="left", show_edge=False, pad_edge=False)
    for col in ("runtime", "prepare", "load", "first", "median", "p90", "runs"):
        table.add_column(col)
    for side, t in result.timings.items():
        if t is None:
            continue
        table.add_row(labels.get(side, side), ms(t.prepare_ms) + (" cached" if t.cached else ""), ms(t.load_ms),
                      ms(t.first_ms), ms(t.median_ms), ms(t.p90_ms), f"{t.runs} (+{t.warmup} warm-up)")
    if result.speedup is not None:
        table.caption = f"speedup {result.speedup:.2f}× (reference median / candidate median)"
    return table
