"""The corpus reports, derived from results files only: `report.json`, `report.md` and `utterances.csv`.

`rebuild_reports(out_dir)` rewrites them from `out_dir/results.jsonl` (or from several shards' results files,
merged), so they can always be rebuilt; a run calls it when it ends, however it ends.

report.json (schema `rnnt-tui.corpus-report/1`):
- `schema`: this version string.
- `run`: the results header (checkpoint and its SHA-256, manifest and digest, `against`, `candidate_label`, `runs_on`,
  `options`, `settings`, `normalisation`, `wer_library`, `shard`, `limit`, `created`; `extra.merged_shards`).
- `summary`: `utterances`, `evaluated`, `errors` (bad input), `failed` (a runtime raised), `with_text`,
  `reference_words`, `reference_chars`, `word_errors` / `char_errors` {reference, candidate}, `wer` / `cer`
  {reference, candidate} (errors over reference words / characters), `wer_delta` / `cer_delta` (candidate -
  reference), `qoi` over `qoi_over` utterances with text, `identical` over `identical_over` evaluated utterances,
  `audio_s`, `compute_s` and `rtfx` {reference, candidate}, `reference_differs_from_nemo`, `within_tolerance` and
  `out_of_tolerance` (evaluated utterances where every step passed / some step did not: a component outside its
  tolerance or the decode diverging, what `compare` on that clip calls a mismatch), `resamplers` {resampler: how
  many evaluated utterances it fed}.
- `out_of_tolerance_utterances`: [{uid, line, audio, steps}] for each utterance out of tolerance (steps: which).
- `drift`: {component: {figure: {n, nan, p50, p90, p99, worst}}} (bad-tail percentiles, see core.corpus.aggregate).
- `worst`: uids of the worst utterances, worst first; `gates`: the thresholds and `breached` (sentences).
- `stream`: null, or with `corpus --stream` one row per att context (`core.corpus.streaming.stream_rows`:
  identical share, WER of the candidate's streaming transcript vs NeMo streaming and vs NeMo offline, QoI, drift);
  then `reference` in the summary is NeMo's streaming loop.
- `candidates`: null, or with `corpus --subset` one row per candidate that ran (`candidate`, `label`, `runs_on`,
  the summary's figures over its utterances only, `drift`); then the summary's candidate figures mix two runtimes
  and `summary.candidate_mixed` says which (`core.corpus.subset`).
- `problems`: the utterances not evaluated, with line, audio, status, stage and error.
- `utterances`: one row per utterance, the columns of utterances.csv (`ROW_FIELDS`), including `resampler` and
  `audio_loader`: what resampled the clip and who read it, for both runtimes and NeMo's column alike, and
  `candidate` / `runs_on`: what ran the candidate side of that utterance.
Rates are fractions (0.05 = 5 %); a figure that cannot be computed is null.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from rnnt_tui.core.corpus.aggregate import Gates, aggregate, candidate_rows
from rnnt_tui.core.corpus.records import UtteranceRecord
from rnnt_tui.core.corpus.store import RESULTS_FILE, RunHeader, merge_results
from rnnt_tui.core.names import CANDIDATE, REFERENCE
from rnnt_tui.core.stream.config import states_kind

SCHEMA = "rnnt-tui.corpus-report/1"
REPORT_JSON, REPORT_MD, UTTERANCES_CSV = "report.json", "report.md", "utterances.csv"
ROW_FIELDS = ("uid", "line", "audio", "status", "stage", "error", "duration_s", "text", "reference_text",
              "candidate_text", "nemo_text", "reference_matches_nemo", "identical", "token_agreement",
              "first_divergence", "reference_wer", "candidate_wer", "wer_delta", "reference_cer", "candidate_cer",
              "reference_word_errors", "candidate_word_errors", "candidate_substitutions", "candidate_deletions",
              "candidate_insertions", "encoder_max_abs", "encoder_cosine", "decoder_max_abs", "joint_max_abs",
              "joint_argmax_agreement", "within_tolerance", "out_of_tolerance_steps", "reference_compute_ms",
              "candidate_compute_ms", "resampler", "audio_loader", "candidate", "runs_on")


def utterance_row(record: UtteranceRecord) -> dict[str, Any]:
    """One utterance as a flat row (utterances.csv, report.json's `utterances`)."""
    ref, cand = record.scores.get(REFERENCE), record.scores.get(CANDIDATE)

    def step(name: str, figure: str) -> float | None:
        figures = record.steps.get(name)
        return getattr(figures, figure) if figures is not None else None

    ref_wer = ref.words.rate if ref else None
    cand_wer = cand.words.rate if cand else None
    return {
        "uid": record.uid, "line": record.line, "audio": record.audio, "status": record.status,
        "stage": record.stage, "error": record.error, "duration_s": record.duration_s, "text": record.text,
        "reference_text": record.reference_text, "candidate_text": record.candidate_text,
        "nemo_text": record.nemo_text, "reference_matches_nemo": record.reference_matches_nemo,
        "identical": record.identical, "token_agreement": record.token_agreement,
        "first_divergence": (record.first_divergence or {}).get("index"),
        "reference_wer": ref_wer, "candidate_wer": cand_wer,
        "wer_delta": None if ref_wer is None or cand_wer is None else cand_wer - ref_wer,
        "reference_cer": ref.chars.rate if ref else None, "candidate_cer": cand.chars.rate if cand else None,
        "reference_word_errors": ref.words.errors if ref else None,
        "candidate_word_errors": cand.words.errors if cand else None,
        "candidate_substitutions": cand.words.substitutions if cand else None,
        "candidate_deletions": cand.words.deletions if cand else None,
        "candidate_insertions": cand.words.insertions if cand else None,
        "encoder_max_abs": step("encoder", "max_abs"), "encoder_cosine": step("encoder", "cosine"),
        "decoder_max_abs": step("decoder", "max_abs"), "joint_max_abs": step("joint", "max_abs"),
        "joint_argmax_agreement": step("joint", "argmax_agreement"), "within_tolerance": record.within_tolerance,
        "out_of_tolerance_steps": ",".join(record.out_of_tolerance_steps) if record.evaluated else None,
        "reference_compute_ms": record.compute_ms.get(REFERENCE),
        "candidate_compute_ms": record.compute_ms.get(CANDIDATE),
        "resampler": record.resampler, "audio_loader": record.audio_loader,
        "candidate": record.candidate_label, "runs_on": record.runs_on,
    }


def build_report(header: RunHeader, records: list[UtteranceRecord], gates: Gates | None = None) -> dict[str, Any]:
    from rnnt_tui.core.corpus.streaming import stream_rows
    from rnnt_tui.core.corpus.subset import candidate_name

    run = {k: v for k, v in header.to_json().items() if k != "kind"}
    figures = aggregate(records, gates)
    candidates = candidate_rows(records) if header.subset is not None else None
    if candidates is not None:
        figures["summary"]["candidate_mixed"] = "mixed: " + " + ".join(
            f"{candidate_name(c['label'], c['runs_on'])} on {c['utterances']}" for c in candidates)
    return {"schema": SCHEMA, "run": run, **figures, "candidates": candidates,
            "stream": stream_rows(records) if header.stream is not None else None,
            "utterances": [utterance_row(r) for r in records]}


def candidate_column(run: dict[str, Any], summary: dict[str, Any]) -> str:
    """The header of the candidate column: its label, or for a `--subset` run what the mixed figures mix."""
    return f"candidate ({summary['candidate_mixed']})" if summary.get("candidate_mixed") else run["candidate_label"]


def _clean(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return "nan"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(_clean(report), indent=1, ensure_ascii=False) + "\n"


def to_csv(report: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ROW_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in report["utterances"]:
        writer.writerow({k: ("" if v is None else v) for k, v in _clean(row).items()})
    return buffer.getvalue()


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f} %"


def _num(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}" if value == value else "NaN"
    return str(value)


def to_markdown(report: dict[str, Any]) -> str:
    run, s = report["run"], report["summary"]
    lines = [f"# Corpus report: {Path(run['checkpoint']).name} vs {run['candidate_label']}", "",
             *([f"- candidate runs on: {run['runs_on']}"] if run.get("runs_on") else []),
             *([f"- subset: {run['candidate_label']} on {run['subset']['spec']}, {run['subset']['rest_label']} on the "
                "rest (each row says which ran it)"] if run.get("subset") else []),
             *([f"- streaming: the candidate's step carries its encoder caches in {states_kind(run['against'])} "
                "(`--cache-states`)"] if (run.get("stream") or {}).get("cache_states") else []),
             f"- manifest: `{run['manifest']}`" + (f" (shard {run['shard']})" if run.get("shard") else ""),
             f"- checkpoint SHA-256: `{run['checkpoint_sha256']}`",
             f"- utterances: {s['utterances']} ({s['evaluated']} evaluated, {s['errors']} bad input, "
             f"{s['failed']} failed); {s['with_text']} with text",
             f"- text normalisation: {run['normalisation']} (edit distances: {run['wer_library']})", "",
             "| figure | " + ("NeMo streaming" if run.get("stream") else "NeMo / PyTorch") + " | "
             + candidate_column(run, s) + " | Δ |", "|---|---|---|---|",
             f"| WER | {pct(s['wer'][REFERENCE])} | {pct(s['wer'][CANDIDATE])} | {pct(s['wer_delta'])} |",
             f"| CER | {pct(s['cer'][REFERENCE])} | {pct(s['cer'][CANDIDATE])} | {pct(s['cer_delta'])} |",
             f"| RTFx | {_num(s['rtfx'][REFERENCE])} | {_num(s['rtfx'][CANDIDATE])} | |", "",
             f"QoI (candidate WER ≤ reference WER, over {s['qoi_over']} utterances with text): {pct(s['qoi'])}. "
             f"Decoded identically, token for token: {pct(s['identical'])} of {s['identical_over']}. "
             f"Reference decode differs from NeMo's own on {s['reference_differs_from_nemo']}. Audio for both "
             "runtimes and NeMo's column, by resampler: "
             + (", ".join(f"{n} {name}" for name, n in sorted(s.get("resamplers", {}).items())) or "none") + ".",
             "",
             f"**Out of tolerance: {s['out_of_tolerance']} of {s['evaluated']} evaluated utterances**"
             + (": " + ", ".join(f"line {o['line']} ({Path(o['audio']).name}: {', '.join(o['steps'])})"
                                 for o in report["out_of_tolerance_utterances"]) if s["out_of_tolerance"] else "")
             + " (a step outside its tolerance, or the decode diverging).", ""]
    if report.get("candidates"):
        from rnnt_tui.core.corpus.subset import candidate_name

        lines += ["## Per candidate (a `--subset` run: each runtime's own figures)", "",
                  "| candidate | utterances | evaluated | WER (NeMo / candidate) | ΔWER | identical | out of tolerance "
                  "| encoder max abs p90 | RTFx |", "|---|---|---|---|---|---|---|---|---|"]
        for c in report["candidates"]:
            enc = c["drift"].get("encoder", {}).get("max_abs", {}).get("p90")
            lines.append(f"| {candidate_name(c['label'], c['runs_on'])} | {c['utterances']} "
                         f"| {c['evaluated']} | {pct(c['wer'][REFERENCE])} / {pct(c['wer'][CANDIDATE])} "
                         f"| {pct(c['wer_delta'])} | {pct(c['identical'])} | {c['out_of_tolerance']} | {_num(enc)} "
                         f"| {_num(c['rtfx'][CANDIDATE])} |")
        lines.append("")
    if report.get("stream") is not None:
        from rnnt_tui.core.corpus.streaming import stream_markdown

        lines += stream_markdown(report["stream"])
    gates = report["gates"]
    if gates["breached"]:
        lines += ["**Gates breached:**", *[f"- {b}" for b in gates["breached"]], ""]
    elif any(v is not None for k, v in gates.items() if k != "breached"):
        lines += ["Gates: all passed.", ""]
    if report["drift"]:
        mixed = " — mixed: all candidates together" if report.get("candidates") else ""
        lines += [f"## Drift per component (worst figure per utterance){mixed}", "",
                  "| component | figure | p50 | p90 | p99 | worst | NaN |", "|---|---|---|---|---|---|---|"]
        for component, figures in report["drift"].items():
            for name, d in figures.items():
                lines.append(f"| {component} | {name} | {_num(d['p50'])} | {_num(d['p90'])} | {_num(d['p99'])} | "
                             f"{_num(d['worst'])} | {d['nan']} |")
        lines.append("")
    rows = {r["uid"]: r for r in report["utterances"]}
    if report["worst"]:
        lines += ["## Worst utterances", "", "| line | audio | out of tolerance | ΔWER | identical | first divergence "
                  "| encoder max abs | reference | candidate |", "|---|---|---|---|---|---|---|---|---|"]
        for uid in report["worst"]:
            r = rows[uid]
            lines.append(f"| {r['line']} | {Path(r['audio']).name} | {r['out_of_tolerance_steps'] or 'no'} | "
                         f"{pct(r['wer_delta'])} | {r['identical']} | "
                         f"{_num(r['first_divergence'])} | {_num(r['encoder_max_abs'])} | {r['reference_text']} | "
                         f"{r['candidate_text']} |")
        lines.append("")
    if report["problems"]:
        lines += ["## Not evaluated", "", "| line | audio | status | stage | problem |", "|---|---|---|---|---|"]
        lines += [f"| {p['line']} | {p['audio']} | {p['status']} | {p['stage']} | {p['error']} |"
                  for p in report["problems"]]
        lines.append("")
    return "\n".join(lines)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def rebuild_reports(out_dir: Path, gates: Gates | None = None, sources: list[Path] | None = None
                    ) -> tuple[Path, ...]:
    """Write report.json, report.md and utterances.csv into `out_dir` from `sources` (results files or folders
    holding one; default `out_dir` itself, several are merged). Returns the paths written."""
    header, records, _ = merge_results(sources or [out_dir / RESULTS_FILE])
    report = build_report(header, records, gates)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = (out_dir / REPORT_JSON, out_dir / REPORT_MD, out_dir / UTTERANCES_CSV)
    for path, text in zip(paths, (to_json(report), to_markdown(report), to_csv(report)), strict=True):
        _write(path, text)
    return paths
