"""A streaming or windowed report (the `to_json` dict) as Markdown, for `--markdown` files and issue threads."""

from __future__ import annotations

from typing import Any


def _f(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _stream(report: dict[str, Any]) -> list[str]:
    d = report["decode"]
    lines = [f"# Streaming: {report['reference']} vs {report['candidate']}", "",
             f"- checkpoint `{report['checkpoint']}`, clip `{report['clip']}` ({report['clip_s']:.2f} s)",
             f"- att context {report['att_context_size']}, algorithmic latency "
             f"{_f(report['algorithmic_latency_ms'])} ms, status **{report['status']}**",
             f"- the candidate's encoder caches carried in {report['caches_carried_in']}",
             "",
             "| chunk | start s | encoder TF max abs | encoder FR max abs | cache len ref/cand | NeMo ms | cand ms | "
             "ref text | cand text |", "|---|---|---|---|---|---|---|---|---|"]
    for c in report["chunks"]:
        lens = c["free_running"]["cache_last_channel_len"]
        lines.append(f"| {c['index']} | {c['start_s']:.2f} | {_f(c['teacher_forced']['outputs'][0]['max_abs'])} | "
                     f"{_f(c['free_running']['outputs'][0]['max_abs'])} | {lens['reference']}/{lens['candidate']} | "
                     f"{_f(c['timing_ms']['reference'])} | {_f(c['timing_ms']['candidate'])} | "
                     f"`{c['tokens']['reference_text']}` | `{c['tokens']['candidate_text']}` |")
    lines += ["", f"- NeMo streaming: `{d['reference_text']}`",
              f"- NeMo offline ({d['offline']['description']}): `{d['offline_text']}`",
              f"- candidate: `{d['candidate_text']}`", f"- first divergence: {d['first_divergence'] or 'none'}"]
    if "contexts" in report:
        lines += ["", "| att context | latency ms | chunks | drift FR | identical | = offline | WER vs offline: "
                      "candidate | WER vs offline: NeMo streaming |", "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['att_context_size']} | {_f(r['latency_ms'])} | {r['chunks']} | "
                  f"{_f(r['max_drift_free_running'])} | {r['identical_transcript']} | "
                  f"{_f(r['streaming_equals_offline'])} | {_wer(r['wer_vs_offline'], 'candidate')} | "
                  f"{_wer(r['wer_vs_offline'], 'nemo_streaming')} |"
                  for r in report["contexts"]]
    return lines


def _windows(report: dict[str, Any]) -> list[str]:
    lines = [f"# Windows: {report['reference']} vs {report['candidate']}", "",
             f"- window {report['window_s']} s, overlap {report['overlap_s']} s, mel left context "
             f"{report['mel_left_s']} s, {len(report['windows'])} windows, status **{report['status']}**",
             *(f"- {note}" for note in report.get("notes", [])), "",
             f"- full context: `{report['full_text']}`", f"- NeMo windowed: `{report['reference_text']}`",
             f"- candidate windowed: `{report['candidate_text']}`", "", "| seam s | side | kind | full | windowed |",
             "|---|---|---|---|---|"]
    for seam in report["seams"]:
        for e in seam["edits"]:
            lines.append(f"| {seam['time_s']:.2f} | {e['side']} | {e['kind']} | `{e['full']}` | `{e['windowed']}` |")
    return lines


def _wer(wers: dict[str, float] | None, side: str) -> str:
    return "-" if wers is None else f"{wers[side]:.1%}"


def to_markdown(report: dict[str, Any]) -> str:
    return "\n".join(_windows(report) if "seams" in report else _stream(report)) + "\n"
