"""A comparison or run as a report: one JSON document (the `--json` output) and its Markdown rendering.

`build_report(session)` is the single source; the CLI prints it, the app saves it. Keys follow the README.
"""

from __future__ import annotations

import math
from typing import Any

from rnnt_tui.core import fuse as fuse_mode
from rnnt_tui.core.components import COMPONENTS
from rnnt_tui.core.results import FAILED, MISMATCH
from rnnt_tui.core.session import DECODE, Session
from rnnt_tui.versions import all_versions

STATUS_OK = "ok"
STATUS_MISMATCH = "mismatch"
STATUS_FAILED = "failed"
STATUS_UNAVAILABLE = "unavailable"


def fuse_json(session: Session) -> dict[str, Any]:
    saved, used = session.fuse.saved, session.fuse.current
    return {
        "fuse_loss_wer": {"found": saved.fuse_loss_wer, "used": used.fuse_loss_wer},
        "fused_batch_size": {"found": saved.fused_batch_size, "used": used.fused_batch_size},
        "log_softmax": {"found": saved.log_softmax, "used": used.log_softmax},
        "mode": session.fuse.name,
        "explanation": fuse_mode.explain(session.fuse.name, saved),
    }


def overall_status(session: Session) -> str:
    statuses = [r.status for r in session.results.values()]
    if session.candidate is not None and session.candidate_unavailable:
        return STATUS_UNAVAILABLE
    if FAILED in statuses:
        return STATUS_FAILED
    if MISMATCH in statuses:
        return STATUS_MISMATCH
    return STATUS_OK


def build_report(session: Session) -> dict[str, Any]:
    """Everything a comparison found, JSON-ready."""
    duration = session.audio.duration_s
    components = [session.results[name].to_json(duration) for name in COMPONENTS if name in session.results]
    decode_result = session.results.get(DECODE)
    candidate: dict[str, Any] | None = None
    if session.candidate is not None:
        candidate = {**session.candidate.describe(), "available": session.candidate_unavailable is None,
                     "reason": session.candidate_unavailable,
                     "prepare": [r.to_json() for r in session.prepare_reports.get("candidate", {}).values()]}
    decode: dict[str, Any] | None = None
    if session.decode_comparison is not None:
        decode = session.decode_comparison.to_json()
        if decode_result is not None:
            decode["timings"] = {k: (t.to_json() if t else None) for k, t in decode_result.timings.items()}
            decode["status"] = decode_result.status
            decode["error"] = decode_result.error
    elif decode_result is not None:
        decode = {"status": decode_result.status, "error": decode_result.error}
    return {
        "checkpoint": {"path": str(session.loaded.path), "sha256": session.loaded.sha256,
                       "summary": session.loaded.summary.to_json()},
        "audio": session.audio.to_json(),
        "reference": session.reference.describe(),
        "candidate": candidate,
        "fuse": fuse_json(session),
        "settings": {"runs": session.settings.runs, "warmup": session.settings.warmup,
                     "joint_chunk_frames": session.settings.joint_chunk_frames,
                     "tolerances": {k: {"atol": v.atol, "rtol": v.rtol}
                                    for k, v in session.settings.tolerances.items()}},
        "components": components,
        "decode": decode,
        "status": overall_status(session),
        "versions": all_versions(),
    }


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.{digits}g}"
    return str(value)


def to_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: header, fuse mode, shapes, timings, diffs, transcripts."""
    summary = report["checkpoint"]["summary"]
    cand = report.get("candidate") or {}
    lines = [
        f"# rnnt-tui comparison: {summary['model_class']} ({summary['kind']})",
        "",
        f"- checkpoint: `{report['checkpoint']['path']}` (sha256 {report['checkpoint']['sha256'][:12]})",
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
        lines.append(f"| {key} | {_fmt(fuse[key]['found'])} | {_fmt(fuse[key]['used'])} |")
    lines += ["", fuse["explanation"], "", "## Shapes", "", "| component | output | reference | candidate |",
              "|---|---|---|---|"]
    for comp in report["components"]:
        for out in comp["outputs"]:
            ref_shape = out.get("shape_reference", out.get("shape"))
            lines.append(f"| {comp['name']} | {out['name']} | {ref_shape} | {out.get('shape_candidate', '-')} |")
    lines += ["", "## Timings (ms)", "", "| component | runtime | prepare | load | first | median | p90 | speedup |",
              "|---|---|---|---|---|---|---|---|"]
    for comp in report["components"]:
        for side, t in comp["timings"].items():
            if t:
                lines.append(f"| {comp['name']} | {side} | {_fmt(t.get('prepare_ms'))} | {_fmt(t.get('load_ms'))} "
                             f"| {_fmt(t['first_ms'])} | {_fmt(t['median_ms'])} | {_fmt(t['p90_ms'])} "
                             f"| {_fmt(comp['speedup'])} |")
    lines += ["", "## Diffs", "", "| component | output | max abs (at) | mean abs | rmse | max rel | cosine | SNR dB "
              "| NaN/Inf | ok |", "|---|---|---|---|---|---|---|---|---|---|"]
    for comp in report["components"]:
        for out in comp["outputs"]:
            stats = out.get("stats")
            if not stats:
                if "ok" in out:
                    lines.append(f"| {comp['name']} | {out['name']} | - | - | - | - | - | - | - | "
                                 f"{_fmt(out['ok'])} {out.get('note', '')} |")
                continue
            nan_inf = f"{stats['nan']['candidate']}/{stats['inf']['candidate']}"
            lines.append(f"| {comp['name']} | {out['name']} | {_fmt(stats['max_abs'])} {stats['max_abs_index']} "
                         f"| {_fmt(stats['mean_abs'])} | {_fmt(stats['rmse'])} | {_fmt(stats['max_rel'])} "
                         f"| {_fmt(stats['cosine'], 6)} | {_fmt(stats['snr_db'])} | {nan_inf} | {_fmt(out['ok'])} |")
    decode = report.get("decode") or {}
    if decode.get("reference_text") is not None:
        lines += ["", "## Transcripts", "", f"- reference: `{decode['reference_text']}`",
                  f"- candidate: `{decode.get('candidate_text')}`", f"- NeMo: `{decode.get('nemo_text')}`",
                  f"- token agreement: {_fmt(decode.get('token_agreement'))}, WER: {_fmt(decode.get('wer'))}"]
        if decode.get("first_divergence"):
            div = decode["first_divergence"]
            lines.append(f"- first divergence: token {div['index']} at frame {div['frame']}: "
                         f"{div['piece_reference']!r} vs {div['piece_candidate']!r}")
    return "\n".join(lines) + "\n"


def run_report(session: Session) -> dict[str, Any]:
    """The `rnnt-tui run` JSON: the PyTorch pipeline alone."""
    components = []
    for name in COMPONENTS:
        result = session.results.get(name)
        if result is None:
            continue
        t = result.timings.get("reference")
        components.append({
            "name": name, "status": result.status, "error": result.error,
            "inputs": [i.to_json() for i in result.inputs],
            "outputs": [o.to_json() for o in result.reference_outputs],
            "timings": {"first_ms": t.first_ms, "median_ms": t.median_ms, "p90_ms": t.p90_ms, "runs": t.runs,
                        "warmup": t.warmup} if t else None,
            "notes": result.notes[:1] if result.status != FAILED else [],
        })
    decode = session.decode_comparison
    decode_t = session.results[DECODE].timings.get("reference") if DECODE in session.results else None
    return {
        "checkpoint": str(session.loaded.path),
        "audio": session.audio.to_json(),
        "fuse": fuse_json(session),
        "components": components,
        "decode_ms": decode_t.median_ms if decode_t else None,
        "transcript": decode.reference_text if decode else None,
        "tokens": decode.reference_tokens if decode else None,
        "nemo_transcript": decode.nemo_text if decode else None,
        "matches_nemo": decode.matches_nemo if decode else None,
        "versions": all_versions(),
    }
