"""`corpus --stream`: streaming transcripts scored over a tiny corpus made from the streaming demo's clips, against
ONNX Runtime's streaming step. The figures are checked against an independent edit distance, a cancelled run
resumes to the same report, and a resume with other stream settings (or without --stream) is refused."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from edit_distance import levenshtein

from rnnt_tui.core.corpus.report import REPORT_JSON, REPORT_MD
from rnnt_tui.core.corpus.runner import CorpusFinished, CorpusRequest, UtteranceFinished, run_corpus
from rnnt_tui.core.errors import BadInputError

ROOT = Path(__file__).parents[1]
DEMO = ROOT / "assets" / "demo"
CKPT = DEMO / "streaming-rnnt.nemo"
SPOKEN = "hello world the quick brown fox core ml on a mac"  # what the demo's NeMo streaming loop transcribes
TIMING = re.compile(r"rtfx|compute|created|wall|_ms$|^ms$|audio_s")


@pytest.fixture(scope="module")
def loaded() -> Iterator[Any]:
    import torch

    from rnnt_tui.core.checkpoint import restore

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared 2-core machine: torch's spinning threads cost more than they give here
    yield restore(CKPT)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The streaming demo clip (its text with one word changed, so WER is not zero), a short clip, a bad line."""
    path = tmp_path_factory.mktemp("stream-corpus") / "manifest.json"
    lines = [json.dumps({"audio_filepath": str(DEMO / "stream-demo.wav"), "text": SPOKEN.replace("fox", "box")}),
             "{oops",
             json.dumps({"audio_filepath": str(DEMO / "hello-world.wav"), "text": "hello world"})]
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(loaded: Any, manifest: Path, out: Path, cancel_after: int | None = None, **kw: Any) -> list[Any]:
    cancel = threading.Event()
    events = []
    request = CorpusRequest(CKPT, manifest, "onnx", out, stream=True, **kw)
    for event in run_corpus(request, cancel, loaded=loaded):
        events.append(event)
        if isinstance(event, UtteranceFinished) and event.position == cancel_after:
            cancel.set()
    return events


@pytest.fixture(scope="module")
def full(loaded: Any, manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    out = tmp_path_factory.mktemp("full") / "out"
    return out, _run(loaded, manifest, out)


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def test_streaming_records_and_rows(full: tuple[Path, list[Any]]) -> None:
    out, events = full
    assert isinstance(events[-1], CorpusFinished) and not events[-1].interrupted
    raw = [json.loads(ln) for ln in (out / "results.jsonl").read_text().splitlines()]
    assert raw[0]["stream"]["att_context"] == "default"
    ok = [r for r in raw[1:] if r["status"] == "ok"]
    assert [r["line"] for r in raw[1:] if r["status"] != "ok"] == [2] and len(ok) == 2
    demo = ok[0]
    assert demo["reference_text"] == SPOKEN  # NeMo's own streaming loop, as the demo was trained to
    entry = demo["stream"][0]
    assert entry["att_context_size"] == [70, 13] and entry["chunks"] > 1
    assert entry["offline_text"] == demo["nemo_text"] and entry["candidate_text"] == demo["candidate_text"]
    assert entry["max_drift_free_running"] > 0  # a real comparison: close, not bit-equal
    report = json.loads((out / REPORT_JSON).read_text())
    (row,) = report["stream"]
    entries = [r["stream"][0] for r in ok]

    def wer(ref_key: str, hyp_key: str, items: list[dict[str, Any]]) -> float:
        return sum(levenshtein(_words(e[ref_key]), _words(e[hyp_key])) for e in items) / \
            sum(len(_words(e[ref_key])) for e in items)

    assert row["utterances"] == 2 and row["att_context_size"] == [70, 13]
    assert row["wer_vs_streaming"] == pytest.approx(wer("reference_text", "candidate_text", entries))
    assert row["wer_vs_offline"] == pytest.approx(wer("offline_text", "candidate_text", entries))
    assert row["nemo_streaming_vs_offline"] == pytest.approx(wer("offline_text", "reference_text", entries))
    texted = [{**e, "text": r["text"]} for e, r in zip(entries, ok, strict=True)]
    assert row["wer_text"]["candidate"] == pytest.approx(wer("text", "candidate_text", texted))
    assert row["wer_text"]["candidate"] > 0
    assert row["wer_text"]["nemo_offline"] == pytest.approx(wer("text", "offline_text", texted))
    qoi = sum(levenshtein(_words(e["text"]), _words(e["candidate_text"])) <=
              levenshtein(_words(e["text"]), _words(e["reference_text"])) for e in texted) / 2
    assert row["qoi_vs_streaming"] == pytest.approx(qoi)
    assert row["identical"] == pytest.approx(sum(e["identical"] for e in entries) / 2)
    s = report["summary"]  # the ordinary figures read NeMo streaming (reference) vs the candidate's streaming
    assert s["wer"]["reference"] == pytest.approx(wer("text", "reference_text", texted))
    assert report["drift"]["stream"]["max_abs"]["worst"] == pytest.approx(
        max(e["max_drift_free_running"] for e in entries))
    md = (out / REPORT_MD).read_text()
    assert "## Streaming, per att context" in md and "| figure | NeMo streaming |" in md
    # the live rows, kept one record at a time, end where the report's (rebuilt from results.jsonl) does
    from rnnt_tui.core.corpus.records import UtteranceRecord
    from rnnt_tui.core.corpus.streaming import stream_rows

    finished = [e for e in events if isinstance(e, UtteranceFinished)]
    records = [UtteranceRecord.from_json(r) for r in raw[1:]]
    for k, event in enumerate(finished, 1):
        assert event.totals["stream"] == stream_rows(records[:k])
    assert json.loads(json.dumps(finished[-1].totals["stream"])) == report["stream"]


def _comparable(report: dict[str, Any]) -> Any:
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if not TIMING.search(k)}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(report)


def test_resume_continues_and_refuses_other_stream_settings(full: tuple[Path, list[Any]], loaded: Any,
                                                            manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _run(loaded, manifest, out, cancel_after=1)
    assert first[-1].interrupted and len((out / "results.jsonl").read_text().splitlines()) == 2
    with pytest.raises(BadInputError, match=r"other settings.*att_context"):
        _run(loaded, manifest, out, resume=True, att_context="all")
    with pytest.raises(BadInputError, match=r"other settings.*stream"):
        list(run_corpus(CorpusRequest(CKPT, manifest, "onnx", out, resume=True), loaded=loaded))
    second = _run(loaded, manifest, out, resume=True)
    assert [e.position for e in second if isinstance(e, UtteranceFinished)] == [2, 3]
    expected = json.loads((full[0] / REPORT_JSON).read_text())
    assert _comparable(json.loads((out / REPORT_JSON).read_text())) == _comparable(expected)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rnnt_tui", "corpus", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=600, env={**os.environ, "COLUMNS": "200"})


def test_cli_refusals(manifest: Path, tmp_path: Path) -> None:
    proc = _cli(str(CKPT), str(manifest), "--against", "onnx", "--att-context", "70,13", "--out", str(tmp_path / "a"))
    assert proc.returncode == 2 and "--att-context needs --stream" in proc.stderr
    if sys.platform != "darwin":  # Core ML predicts on macOS only: refused before anything is written
        proc = _cli(str(CKPT), str(manifest), "--against", "coreml", "--stream", "--out", str(tmp_path / "b"))
        assert proc.returncode == 3 and "macOS" in proc.stderr
        assert not (tmp_path / "b").exists()


def test_core_ai_streams_a_corpus(manifest: Path, tmp_path: Path) -> None:
    """The corpus streams through the same session as `stream`: Core AI's steps, labelled with where they ran."""
    from rnnt_tui.core.coreai.platform import coreai_problem

    if coreai_problem():
        pytest.skip(f"Core AI: {coreai_problem()}")
    proc = _cli(str(CKPT), str(manifest), "--against", "coreai", "--stream", "--out", str(tmp_path / "c"))
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads((tmp_path / "c" / REPORT_JSON).read_text())
    assert "Core AI" in json.dumps(report["run"]) and report["stream"]


def test_every_lookahead_a_row_each(loaded: Any, tmp_path: Path) -> None:
    """`--att-context all`: every record holds an entry per context, and report.json, report.md and the CLI's
    table each have one row per context, its figures from that context's entries only."""
    manifest = tmp_path / "short.json"
    manifest.write_text("\n".join(json.dumps({"audio_filepath": str(DEMO / name), "text": text}) for name, text in
                                  (("hello-world.wav", "hello world"), ("the-quick-brown-fox.wav", "the quick box"))))
    out = tmp_path / "out"
    events = _run(loaded, manifest, out, att_context="all")
    assert isinstance(events[-1], CorpusFinished)
    contexts = [list(c) for c in loaded.model.encoder.att_context_size_all]
    assert len(contexts) >= 2
    records = [json.loads(ln) for ln in (out / "results.jsonl").read_text().splitlines()][1:]
    assert len(records) == 2 and all(r["status"] == "ok" for r in records)
    assert all([e["att_context_size"] for e in r["stream"]] == contexts for r in records)
    report = json.loads((out / REPORT_JSON).read_text())
    rows = report["stream"]
    assert [r["att_context_size"] for r in rows] == contexts
    assert len({r["latency_ms"] for r in rows}) == len(contexts)  # each lookahead its own latency
    for i, row in enumerate(rows):
        entries = [r["stream"][i] for r in records]
        assert row["utterances"] == 2 and row["latency_ms"] == entries[0]["latency_ms"]
        assert row["identical"] == pytest.approx(sum(e["identical"] for e in entries) / 2)
        words = sum(len(_words(e["reference_text"])) for e in entries)
        assert row["wer_vs_streaming"] == pytest.approx(sum(
            levenshtein(_words(e["reference_text"]), _words(e["candidate_text"])) for e in entries) / words)
        assert row["drift_free_running"]["worst"] == pytest.approx(max(e["max_drift_free_running"] for e in entries))
    md = (out / REPORT_MD).read_text().split("## Streaming, per att context")[1]
    assert [line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| [")] == \
        [str(c) for c in contexts]
    proc = subprocess.run([sys.executable, "-m", "rnnt_tui", "corpus-report", str(out)], capture_output=True,
                          text=True, cwd=ROOT, timeout=600, env={**os.environ, "COLUMNS": "250"})
    assert proc.returncode in (0, 1), proc.stderr
    table = proc.stdout.split("Streaming per att context")[1]
    cells = [line.split("│")[1].strip() for line in table.split("\n\n")[0].splitlines() if line.startswith("│")]
    assert [c for c in cells if c.startswith("[")] == [str(c) for c in contexts]


def test_cache_states_corpus_carries_the_caches_in_core_ml_states(streaming: Any, tmp_path: Path) -> None:
    """`corpus --stream --cache-states --against mil`: every utterance streams through the stateful step (the MIL
    interpreter), the run's settings and report.md say so, and the same run without it does not resume it."""
    from rnnt_tui.core.pipeline.events import Progress

    manifest = tmp_path / "short.json"
    manifest.write_text("\n".join(json.dumps({"audio_filepath": str(DEMO / name), "text": text}) for name, text in
                                  (("hello-world.wav", "hello world"), ("the-quick-brown-fox.wav", "the quick"))))
    out = tmp_path / "out"
    events = list(run_corpus(CorpusRequest(streaming.path, manifest, "mil", out, stream=True, cache_states=True),
                             loaded=streaming))
    assert isinstance(events[-1], CorpusFinished) and not events[-1].interrupted
    assert any(isinstance(e, Progress) and "caches in Core ML states" in e.text for e in events)
    raw = [json.loads(ln) for ln in (out / "results.jsonl").read_text().splitlines()]
    assert raw[0]["stream"]["cache_states"] is True and raw[0]["candidate_label"] == "Core ML program, MIL interpreter"
    assert [r["status"] for r in raw[1:]] == ["ok", "ok"]
    for record in raw[1:]:  # fp16 states, fp32 program: close to NeMo, as `stream --cache-states` is
        assert 0 < record["stream"][0]["max_drift_free_running"] < 1e-3 and record["within_tolerance"]
    assert "carries its encoder caches in Core ML states" in (out / REPORT_MD).read_text()
    with pytest.raises(BadInputError, match=r"other settings.*cache_states"):
        list(run_corpus(CorpusRequest(streaming.path, manifest, "mil", out, stream=True, resume=True),
                        loaded=streaming))


def test_cache_states_refused_where_the_step_has_no_states(manifest: Path, tmp_path: Path) -> None:
    proc = _cli(str(CKPT), str(manifest), "--against", "onnx", "--stream", "--cache-states", "--out",
                str(tmp_path / "a"))
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "--cache-states needs a Core ML program" in lines[0]
    assert not (tmp_path / "a").exists()
    proc = _cli(str(CKPT), str(manifest), "--against", "mil", "--cache-states", "--out", str(tmp_path / "b"))
    assert proc.returncode == 2 and "--cache-states is for the streaming step: it needs --stream" in proc.stderr
