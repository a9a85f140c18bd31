"""A comparison or run as a report: one JSON document (the `--json` output) and its Markdown rendering.

`Comparison.of(session)` is the single source: the CLI renders its tables from it and prints its JSON
(`to_json`, what `build_report(session)` returns), Markdown is made from that JSON, the app saves both. Keys
follow the README.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnt_tui.core.components import COMPONENTS
from rnnt_tui.core.names import OK, Status
from rnnt_tui.core.pipeline.session import DECODE, Session
from rnnt_tui.core.timing import Timings, conditions_footer
from rnnt_tui.formatting import num
from rnnt_tui.versions import all_versions

if TYPE_CHECKING:
    from rnnt_tui.core.audio import Audio
    from rnnt_tui.core.pipeline.facts import FuseView
    from rnnt_tui.core.pipeline.request import Settings
    from rnnt_tui.core.stats.results import DecodeComparison, StepResult
    from rnnt_tui.core.summary import ModelSummary


def overall_status(session: Session) -> str:
    """`failed` (preparing the candidate crashed, or a step failed), `unavailable` (the candidate cannot run
    here), `mismatch` or `ok`."""
    statuses = [r.status for r in session.results.values()]
    if session.candidate_failed:
        return Status.FAILED.value
    if session.candidate_unavailable:
        return Status.UNAVAILABLE.value
    if Status.FAILED in statuses:
        return Status.FAILED.value
    if Status.MISMATCH in statuses:
        return Status.MISMATCH.value
    return OK


@dataclass(frozen=True)
class Comparison:
    """A finished comparison, taken from its session once: what the CLI's tables, the JSON report (`to_json`, the
    `--json` output) and its Markdown are all made from, so every output shows the same numbers. Holds the step
    results and the decode comparison, not the runtimes or the upstream arrays."""

    checkpoint: Path
    sha256: str | None
    summary: ModelSummary
    audio: Audio
    reference: dict[str, Any]
    candidate: dict[str, Any] | None
    fuse_view: FuseView
    settings: Settings
    results: dict[str, StepResult]
    decode_comparison: DecodeComparison | None
    status: str
    unavailable: str | None = None  # why the candidate did not run (its runtime may not even have loaded)

    @classmethod
    def of(cls, session: Session) -> Comparison:
        candidate: dict[str, Any] | None = None
        if session.candidate is not None:
            candidate = {**session.candidate.describe(), "available": session.candidate_unavailable is None,
                         "reason": session.candidate_unavailable,
                         "prepare": [r.to_json() for r in session.prepare_reports.get("candidate", {}).values()]}
        return cls(checkpoint=session.facts.path, sha256=session.facts.sha256, summary=session.facts.summary,
                   audio=session.audio, reference=session.reference.describe(), candidate=candidate,
                   fuse_view=session.fuse(), settings=session.settings, results=dict(session.results),
                   decode_comparison=session.decode_comparison, status=overall_status(session),
                   unavailable=session.candidate_unavailable)

    def fuse(self) -> FuseView:
        return self.fuse_view

    @property
    def candidate_label(self) -> str | None:
        return (self.candidate or {}).get("label")

    @property
    def candidate_reason(self) -> str | None:
        """Why the candidate did not run (None: it ran, or none was asked for)."""
        return self.unavailable

    def to_json(self) -> dict[str, Any]:
        """Everything the comparison found, JSON-ready (the README's keys)."""
        duration = self.audio.duration_s
        components = [self.results[name].to_json(duration) for name in COMPONENTS if name in self.results]
        decode_result = self.results.get(DECODE)
        decode: dict[str, Any] | None = None
        if self.decode_comparison is not None:
            decode = self.decode_comparison.to_json()
            if decode_result is not None:
                decode["timings"] = {k: (t.to_json() if t else None) for k, t in decode_result.timings.items()}
                decode["status"] = decode_result.status
                decode["error"] = decode_result.error
        elif decode_result is not None:
            decode = {"status": decode_result.status, "error": decode_result.error}
        return {
            "checkpoint": {"path": str(self.checkpoint), "sha256": self.sha256, "summary": self.summary.to_json()},
            "audio": self.audio.to_json(),
            "reference": self.reference,
            "candidate": self.candidate,
            "fuse": self.fuse_view.to_json(),
            "settings": self.settings.to_json(),
            "components": components,
            "decode": decode,
            "status": self.status,
            "versions": all_versions(),
        }


def build_report(session: Session) -> dict[str, Any]:
    """Everything a comparison found, JSON-ready (`Comparison.of(session).to_json()`)."""
    return Comparison.of(session).to_json()


def to_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: header, fuse mode, shapes, timings, diffs, transcripts."""
    summary = report["checkpoint"]["summary"]
    cand = report.get("candidate") or {}
    lines = [
        f"# rnnt-tui comparison: {summary['model_class']} ({summary['kind']})",
        "",
        f"- checkpoint: `{report['checkpoint']['path']}` (sha256 {(report['checkpoint']['sha256'] or '-')[:12]})",
        f"- audio: `{report['audio']['path']}` ({report['audio']['duration_s']} s)",
        f"- reference: {report['reference'].get('label')}; candidate: {cand.get('label', 'none')}"
        + (f" (not run: {cand['reason']})" if cand.get("reason") else ""),
        f"- status: **{report['status']}**",
        "",
        "## Joint fuse mode",
        "",
        "| flag | found | used |",
        "|---|---|---|",
    ]
    fuse = report["fuse"]
    for key in ("fuse_loss_wer", "fused_batch_size", "log_softmax"):
        lines.append(f"| {key} | {num(fuse[key]['found'])} | {num(fuse[key]['used'])} |")
    lines += ["", fuse["explanation"], "", "## Shapes", "", "| component | output | reference | candidate |",
              "|---|---|---|---|"]
    for comp in report["components"]:
        for out in comp["outputs"]:
            lines.append(f"| {comp['name']} | {out['name']} | {out['shape_reference']} | "
                         f"{out['shape_candidate'] or '-'} |")
    lines += ["", "## Timings (ms)", "", "| component | runtime | prepare | load | first | median | p90 | speedup |",
              "|---|---|---|---|---|---|---|---|"]
    for comp in report["components"]:
        for side, t in comp["timings"].items():
            if t:
                lines.append(f"| {comp['name']} | {side} | {num(t.get('prepare_ms'))} | {num(t.get('load_ms'))} "
                             f"| {num(t['first_ms'])} | {num(t['median_ms'])} | {num(t['p90_ms'])} "
                             f"| {num(comp['speedup'])} |")
    footer = conditions_footer((f"{c['name']} {side}", Timings(**t) if t else None)
                               for c in report["components"] for side, t in c["timings"].items())
    lines += ["", *[f"_{line}_  " for line in footer]] if footer else []
    lines += ["", "## Diffs", "", "| component | output | max abs (at) | mean abs | rmse | max rel | cosine | SNR dB "
              "| NaN/Inf | ok |", "|---|---|---|---|---|---|---|---|---|---|"]
    for comp in report["components"]:
        for out in comp["outputs"]:
            stats = out.get("stats")
            if not stats:
                if out["ok"] is not None:
                    lines.append(f"| {comp['name']} | {out['name']} | - | - | - | - | - | - | - | "
                                 f"{num(out['ok'])} {out.get('note', '')} |")
                continue
            nan_inf = f"{stats['nan']['candidate']}/{stats['inf']['candidate']}"
            lines.append(f"| {comp['name']} | {out['name']} | {num(stats['max_abs'])} {stats['max_abs_index']} "
                         f"| {num(stats['mean_abs'])} | {num(stats['rmse'])} | {num(stats['max_rel'])} "
                         f"| {num(stats['cosine'], 6)} | {num(stats['snr_db'])} | {nan_inf} | {num(out['ok'])} |")
    heads = [(comp["name"], head, d) for comp in report["components"] for head, d in comp.get("decisions", {}).items()]
    if heads:
        lines += ["", "## Decision heads (vs the decision taken from the reference logits)", "",
                  "| head | cells | tokens agree | durations agree | prob max abs diff | top-k overlap | ok |",
                  "|---|---|---|---|---|---|---|"]
        for _, head, d in heads:
            lines.append(f"| {head} | {d['cells']} | {num(d['token_agreement'])} | {num(d['duration_agreement'])} "
                         f"| {num(d['prob_max_abs_diff'])} | {num(d['top_k_overlap'])} | {num(d['ok'])} |")
    cand = report.get("candidate") or {}
    if cand.get("inventory"):
        lines += ["", "## Packages", ""] + [f"- `{Path(e['path']).name}`: "
                                             f"{'→ ' + e['mapped_to'] if e.get('mapped_to') else 'skipped'} "
                                             f"({e.get('reason', '')})" for e in cand["inventory"]]
    decode = report.get("decode") or {}
    if decode.get("reference_text") is not None:
        lines += ["", "## Transcripts", "", f"- reference: `{decode['reference_text']}`",
                  f"- candidate: `{decode.get('candidate_text')}`", f"- NeMo: `{decode.get('nemo_text')}`",
                  f"- token agreement: {num(decode.get('token_agreement'))}, WER: {num(decode.get('wer'))}"]
        if decode.get("first_divergence"):
            div = decode["first_divergence"]
            lines.append(f"- first divergence: token {div['index']} at frame {div['frame_reference']}: "
                         f"{div['piece_reference']!r} vs {div['piece_candidate']!r}")
    return "\n".join(lines) + "\n"


def sweep_markdown(rows: list[dict[str, Any]]) -> str:
    """A compute-unit sweep's rows (`SweepRow.to_json()`) as a Markdown section, appended to the report's."""
    lines = ["", "## Compute-unit sweep", "",
             "| compute units | status | component | median ms | speedup | worst max abs |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        if not row["components"]:
            lines.append(f"| {row['compute_units']} | {row['status']} | - | - | - | {row['error'] or '-'} |")
        for name, comp in row["components"].items():
            lines.append(f"| {row['compute_units']} | {row['status']} | {name} | {num(comp.get('median_ms'))} "
                         f"| {num(comp.get('speedup'))} | {num(comp.get('worst_max_abs'))} |")
    return "\n".join(lines) + "\n"


def run_report(session: Comparison) -> dict[str, Any]:
    """The `rnnt-tui run` JSON: the PyTorch pipeline alone."""
    components = []
    for name in COMPONENTS:
        result = session.results.get(name)
        if result is None:
            continue
        t = result.timings.get("reference")
        components.append({
            "name": name, "status": str(result.status), "error": result.error,
            "inputs": [i.to_json() for i in result.inputs],
            "outputs": [o.to_json() for o in result.reference_outputs],
            "timings": {k: v for k, v in t.to_json().items() if k not in ("prepare_ms", "load_ms", "cached")}
            if t else None,
            "notes": result.notes[:1] if result.status != Status.FAILED else [],
        })
    decode = session.decode_comparison
    decode_t = session.results[DECODE].timings.get("reference") if DECODE in session.results else None
    return {
        "checkpoint": str(session.checkpoint),
        "audio": session.audio.to_json(),
        "fuse": session.fuse().to_json(),
        "components": components,
        "decode_ms": decode_t.median_ms if decode_t else None,
        "transcript": decode.reference_text if decode else None,
        "tokens": decode.reference_tokens if decode else None,
        "nemo_transcript": decode.nemo_text if decode else None,
        "matches_nemo": decode.matches_nemo if decode else None,
        "versions": all_versions(),
    }
