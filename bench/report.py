"""Renders bench/results/*.json as the Markdown of README.md's "## Figures" section (printed to stdout).

Measures nothing. Run after the figure scripts:   python bench/report.py > /tmp/figures.md
and paste it over the section (the README's other sections are not touched).
"""

from __future__ import annotations

import json
from typing import Any

from common import RESULTS


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def yes(flag: bool | None) -> str:
    return "—" if flag is None else ("**yes**" if flag else "**no**")


def ms(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 1:
        return f"{value:.1f} ms"
    return f"{value * 1000:.0f} µs"


def gib(mib: float) -> str:
    return f"{mib / 1024:.1f} GiB" if mib >= 1024 else f"{mib:.0f} MiB"


def load_note(doc: dict[str, Any]) -> str:
    gate = doc["load"]["gate"] or {}
    return f"load {gate.get('load_at_start', ['?'])[0]}→{doc['load']['at_end'][0]}"


def main() -> None:
    docs = {n: load(n) for n in ("startup", "stalls", "cache", "timing", "joint_memory", "diff_throughput",
                                 "scaling", "startup-src", "stalls-in-process", "stalls-fix-gc-freeze-imports",
                                 "stalls-fix-offload")}
    any_doc = next((d for d in docs.values() if d), None)
    if any_doc is None:
        raise SystemExit("no results yet: run the bench scripts first (see bench/README.md)")
    m = any_doc["machine"]
    v = m["versions"]
    dates = sorted({d["date"][:10] for d in docs.values() if d})
    out = ["## Figures", "",
           f"Measured {', '.join(dates)} on {m['cpu']} ({m['cores']} cores, {m['mem_gib']} GiB, {m['os']}), "
           f"Python {m['python']}, torch {v.get('torch')}, NeMo {v.get('nemo_toolkit')}, onnxruntime "
           f"{v.get('onnxruntime')}, coremltools {v.get('coremltools')}, textual {v.get('textual')}. "
           "Each figure is a median of several runs; a ratio is against a baseline measured in the same run. "
           "How to run them, and what each measures: [`bench/README.md`](bench/README.md); raw numbers: "
           "`bench/results/*.json`.", "",
           "| # | Measure | Figure | Goal | Met | Command |", "|---|---|---|---|---|---|"]
    d = docs["startup"]
    if d:
        s = d["summary"]
        heavy = {k: "yes" if v else "no" for k, v in s["heavy_loaded_at_first_frame"].items()}
        ready = f"; ready (restored, ONNX from cache) {s['rnnt_ready_s']['median']:.1f} s" if s.get("rnnt_ready_s") \
            else ""
        out.append(f"| 1 | Start-up: first frame of `rnnt-tui` (demo) vs a Textual hello-world, fresh process in a "
                   f"120x40 pty | {ms(s['rnnt_first_frame_ms']['median'])} vs {ms(s['hello_first_frame_ms']['median'])}"
                   f" = **{s['ratio_of_medians']:.2f}x**; imported at the first frame: NeMo {heavy['nemo']}, torch "
                   f"{heavy['torch']}, coremltools {heavy['coremltools']}{ready} | ≤ 2.5x, NeMo and coremltools not "
                   f"imported | {yes(s['goal_met'])} | `python bench/startup.py` ({load_note(d)}) |")
        fix = docs["startup-src"]
        if fix:
            f = fix["summary"]
            out.append(f"| 1' | history: the start-up fix on a patched checkout, before numpy left the UI's "
                       f"imports | {ms(f['rnnt_first_frame_ms']['median'])} vs "
                       f"{ms(f['hello_first_frame_ms']['median'])} = **{f['ratio_of_medians']:.2f}x** | ≤ 2.5x | "
                       f"{yes(f['goal_met'])} | `bench/results/startup-src.json` ({load_note(fix)}) |")
    d = docs["stalls"]
    if d:
        s = d["summary"]
        rows = "; ".join(f"{t['model']} vs {t['against']} {t['median_max_stall_ms']:.0f} ms"
                         for t in s["table"] if t["model"] != "hello")
        base = next((t for t in s["table"] if t["model"] == "hello"), None)
        base_s = f"; idle hello-world baseline {base['median_max_stall_ms']:.0f} ms" if base else ""
        out.append(f"| 2 | Responsiveness: longest event-loop stall (10 ms Textual timer) while NeMo imports, the "
                   f"model restores, ONNX exports / Core ML converts, then all steps run | {rows}{base_s} | no stall "
                   f"over 50 ms | {yes(s['goal_met'])} | `python bench/stalls.py` ({load_note(d)}) |")
        for tag, label in (
                ("stalls-in-process", "history: the engine in the app's own process (worker threads)"),
                ("stalls-fix-gc-freeze-imports", "history: + GC frozen after the heavy imports"),
                ("stalls-fix-offload", "history: + exports / conversions in a child process")):
            fix = docs[tag]
            if fix:
                f = fix["summary"]
                rows = "; ".join(f"{t['model']} vs {t['against']} {t['median_max_stall_ms']:.0f} ms"
                                 for t in f["table"] if t["model"] != "hello")
                out.append(f"| 2' | {label} | {rows} | no stall over 50 ms | {yes(f['goal_met'])} | "
                           f"`bench/results/{tag}.json` ({load_note(fix)}) |")
    d = docs["cache"]
    if d:
        s = d["summary"]
        rows = "; ".join(f"{t['model']} {t['runtime']}: {ms(t['hit_ms'])} vs {t['cold_s']:.1f} s = "
                         f"{t['ratio'] * 100:.2f} %" for t in s["table"])
        out.append(f"| 3 | Cache: re-open performs no export/conversion; hit cost vs the export/conversion it saves | "
                   f"builds on re-open: {'0' if s['warm_builds_all_zero'] else 'NOT 0'}; {rows} | 0 builds, ≤ 5 % | "
                   f"{yes(s['goal_met'])} | `python bench/cache_hits.py` ({load_note(d)}) |")
    d = docs["timing"]
    if d:
        s = d["summary"]
        rows = "; ".join(f"{t['case']} ({t['clip_s']:g} s clip): {ms(t['tool_ms'])} vs {ms(t['bare_ms'])} = "
                         f"{(t['ratio'] - 1) * 100:+.1f} %" for t in s["table"])
        out.append(f"| 4 | Timing fidelity: reported median vs a bare `perf_counter` loop | {rows} | within 2 % | "
                   f"{yes(s['goal_met'])} | `python bench/timing_fidelity.py` ({load_note(d)}) |")
    d = docs["joint_memory"]
    if d:
        s = d["summary"]
        rows = "; ".join(f"{t['seconds']:g} s {t['mode']}: {gib(t['extra_mib'])}" for t in s["table"])
        out.append(f"| 5 | Joint grid peak extra RSS, Parakeet dims (T x U x 1025), vs {s['candidate']} | {rows} | "
                   f"chunked < 256 MB at 60 s | {yes(s['goal_met'])} | `python bench/joint_memory.py` "
                   f"({load_note(d)}) |")
    d = docs["diff_throughput"]
    if d:
        s = d["summary"]
        rows = "; ".join(f"{t['case']}: {t['tool_gbps']:.2f} GB/s (np.allclose {t['allclose_gbps']:.2f}, proposed "
                         f"{t['proposed_gbps']:.2f})" for t in s["table"])
        out.append(f"| 6 | Diff statistics throughput (float32 pairs) | {rows} | ≥ 1 GB/s | {yes(s['goal_met'])} | "
                   f"`python bench/diff_throughput.py` ({load_note(d)}) |")
    d = docs["scaling"]
    if d:
        s = d["summary"]
        prep = s.get("prepare_from_cache_json") or {}
        out += ["", "### Scaling (7): cost by model size and clip length", "",
                "Medians of 5 timed calls after 1 warm-up, as the tool times them; decoder = one step, joint = one "
                "chunk of 32 frames x U (U = 2.5 tokens/s + 1). Export/convert are per model (bench/cache_hits.py). "
                f"Command: `python bench/scaling.py` ({load_note(d)}).", "",
                "| model | clip | T x U | import torch+NeMo | restore | ONNX session load | preprocessor (PT) | "
                "encoder PT / ORT | decoder step PT / ORT | joint chunk PT / ORT | peak RSS |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for t in s["table"]:
            out.append(f"| {t['model']} | {t['seconds']:g} s | {t['T']} x {t['U']} | {t['import_s']:.1f} s | "
                       f"{t['restore_s']:.1f} s | {ms(t['onnx_session_load_ms'])} | "
                       f"{ms(t.get('preprocessor_pytorch_ms'))} | {ms(t.get('encoder_pytorch_ms'))} / "
                       f"{ms(t.get('encoder_onnx_ms'))} | {ms(t.get('decoder_pytorch_ms'))} / "
                       f"{ms(t.get('decoder_onnx_ms'))} | {ms(t.get('joint_pytorch_ms'))} / "
                       f"{ms(t.get('joint_onnx_ms'))} | {t['peak_rss_gib']:.2f} GiB |")
        if prep:
            out += ["", "| model | ONNX export cold / cached | Core ML conversion (4 components) cold / cached |",
                    "|---|---|---|"]
            for model, per in prep.items():
                onnx, cml = per.get("onnx", {}), per.get("coreml", {})
                out.append(f"| {model} | {ms(onnx.get('cold_ms'))} / {ms(onnx.get('hit_ms'))} | "
                           f"{ms(cml.get('cold_ms'))} / {ms(cml.get('hit_ms'))} |")
    d = docs["joint_memory"]
    if d:
        out += ["", "### Joint grid memory (5), Parakeet dimensions", "",
                "| clip | T x U | one logits grid | chunked (32 frames) extra | whole-grid extra |",
                "|---|---|---|---|---|"]
        table = d["summary"]["table"]
        for seconds in sorted({t["seconds"] for t in table}):
            row = {t["mode"]: t for t in table if t["seconds"] == seconds}
            first = next(iter(row.values()))
            chunk = next((t for k, t in row.items() if k != "whole grid"), None)
            whole = row.get("whole grid")
            whole_s = f"{gib(whole['extra_mib'])} ({whole['extra_over_grid']:.1f}x the grid)" if whole else "—"
            out.append(f"| {seconds:g} s | {first['T']} x {first['U']} | {gib(first['grid_mib'])} | "
                       f"{gib(chunk['extra_mib']) if chunk else '—'} | {whole_s} |")
    print("\n".join(out))


if __name__ == "__main__":
    main()
