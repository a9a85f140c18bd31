"""Corpus runs on the demo model against ONNX Runtime, on clips of the bundled test corpus: the aggregates checked
against an independent computation, a cancelled run (plus a torn last line) resumed to the same report, shards
merged to the same report, bad lines and clips recorded, the CLI's exit codes, and nothing written outside --out."""

from __future__ import annotations

import json
import pickle
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edit_distance import levenshtein

from rnnt_tui.core.corpus import demo_manifest
from rnnt_tui.core.corpus.manifest import Shard
from rnnt_tui.core.corpus.report import REPORT_JSON, UTTERANCES_CSV, rebuild_reports
from rnnt_tui.core.corpus.runner import CORPUS_SETTINGS, CorpusFinished, CorpusRequest, UtteranceFinished, run_corpus
from rnnt_tui.paths import demo_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from make_test_corpus import build_corpus

#: demo-corpus clips used here: short ones and one concatenation the demo model gets partly wrong
CLIPS = ("hello-world.wav", "hello-world-speed0.9.wav", "hello-world+core-ml-on-a-mac.wav", "hello-world-gain-12db.wav")
TIMING = re.compile(r"rtfx|compute|created|wall|_ms$|^ms$|audio_s")


def test_demo_corpus_is_what_the_script_builds(tmp_path: Path) -> None:
    built = build_corpus(tmp_path / "corpus")
    committed = demo_manifest()
    assert built.read_text() == committed.read_text()
    for line in committed.read_text().splitlines():
        name = json.loads(line)["audio_filepath"]
        assert (built.parent / name).read_bytes() == (committed.parent / name).read_bytes()
    assert sum(p.stat().st_size for p in committed.parent.iterdir()) < 1.5e6


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four good clips (absolute paths into the demo corpus) between bad entries of each kind."""
    from conftest import write_wav

    root = tmp_path_factory.mktemp("manifest")
    entries = [json.loads(ln) for ln in demo_manifest().read_text().splitlines()]
    texts = {e["audio_filepath"]: e["text"] for e in entries}
    write_wav(root / "short.wav", seconds=0.02)
    (root / "notes.wav").write_text("these are words, not audio\n")
    good = [json.dumps({"audio_filepath": str(demo_manifest().parent / c), "text": texts[c]}) for c in CLIPS]
    lines = [good[0], "{oops", good[1], json.dumps({"audio_filepath": "short.wav", "text": "x"}), good[2],
             json.dumps({"audio_filepath": "notes.wav"}), good[3]]
    path = root / "manifest.json"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Any]:
    """The demo model restored and ONNX Runtime prepared once for every run in this module."""
    import torch

    from rnnt_tui.core.pipeline.pipeline import Pipeline
    from rnnt_tui.core.pipeline.request import Request

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a shared 2-core machine torch's spinning threads cost 10-50x on this tiny model
    pipe = Pipeline()
    pipe.open(Request(demo_checkpoint(), demo_manifest().parent / CLIPS[0], "onnx", settings=CORPUS_SETTINGS))
    yield pipe
    pipe.close()
    torch.set_num_threads(threads)


def _run(pipe: Any, manifest: Path, out: Path, cancel_after: int | None = None, **kw: Any) -> list[Any]:
    cancel = threading.Event()
    events = []
    for event in run_corpus(CorpusRequest(demo_checkpoint(), manifest, "onnx", out, **kw), cancel, pipeline=pipe):
        events.append(event)
        if isinstance(event, UtteranceFinished) and event.position == cancel_after:
            cancel.set()
    return events


@pytest.fixture(scope="module")
def full(pipeline: Any, manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    out = tmp_path_factory.mktemp("full") / "out"
    return out, _run(pipeline, manifest, out)


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()




def test_run_records_every_line_and_events_pickle(full: tuple[Path, list[Any]], manifest: Path) -> None:
    out, events = full
    finished = [e for e in events if isinstance(e, UtteranceFinished)]
    assert [e.position for e in finished] == list(range(1, 8))
    assert isinstance(events[-1], CorpusFinished) and not events[-1].interrupted
    for event in events:
        assert pickle.loads(pickle.dumps(event)) == event
    by_line = {e.record.line: e.record for e in finished}
    assert {line: (r.status, r.stage) for line, r in by_line.items() if r.status != "ok"} == \
        {2: ("error", "manifest"), 4: ("error", "audio"), 6: ("error", "audio")}
    assert "shorter than one encoder frame" in (by_line[4].error or "")
    assert "not readable audio" in (by_line[6].error or "")
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.md", "results.jsonl", "utterances.csv"]
    assert len((out / UTTERANCES_CSV).read_text().splitlines()) == 8


def test_aggregates_match_an_independent_computation(full: tuple[Path, list[Any]]) -> None:
    import soundfile as sf

    out, _ = full
    report = json.loads((out / REPORT_JSON).read_text())
    raw = [json.loads(ln) for ln in (out / "results.jsonl").read_text().splitlines()][1:]
    ok = [r for r in raw if r["status"] == "ok"]
    assert len(ok) == 4 and all(r["reference_text"] == r["nemo_text"] for r in ok)
    errors = {side: sum(levenshtein(_words(r["text"]), _words(r[f"{side}_text"])) for r in ok)
              for side in ("reference", "candidate")}
    words = sum(len(_words(r["text"])) for r in ok)
    chars = sum(len(" ".join(_words(r["text"]))) for r in ok)
    cer = {side: sum(levenshtein(list(" ".join(_words(r["text"]))), list(" ".join(_words(r[f"{side}_text"]))))
                     for r in ok) / chars for side in ("reference", "candidate")}
    s = report["summary"]
    assert errors["reference"] > 0  # the concatenation is partly wrong: the check is not of zeros
    for side in ("reference", "candidate"):
        assert s["wer"][side] == pytest.approx(errors[side] / words)
        assert s["cer"][side] == pytest.approx(cer[side])
    assert s["wer_delta"] == pytest.approx((errors["candidate"] - errors["reference"]) / words)
    qoi = sum(levenshtein(_words(r["text"]), _words(r["candidate_text"])) <= levenshtein(_words(r["text"]),
              _words(r["reference_text"])) for r in ok) / len(ok)
    assert s["qoi"] == pytest.approx(qoi) and s["qoi_over"] == 4
    assert s["identical"] == pytest.approx(sum(r["candidate_text"] == r["reference_text"] for r in ok) / len(ok))
    audio = sum(sf.info(r["audio"]).duration for r in ok)
    for side in ("reference", "candidate"):
        compute = sum(sum(st["ms"].get(side) or 0.0 for name, st in r["steps"].items()
                          if name in ("preprocessor", "encoder", "decode")) for r in ok) / 1000
        assert s["rtfx"][side] == pytest.approx(audio / compute, rel=1e-6)
    enc = np.array([r["steps"]["encoder"]["max_abs"] for r in ok])
    drift = report["drift"]["encoder"]["max_abs"]
    for p in (50, 90, 99):
        assert drift[f"p{p}"] == pytest.approx(float(np.percentile(enc, p)))
    assert drift["worst"] == pytest.approx(enc.max())
    agree = np.array([r["steps"]["joint"]["argmax_agreement"] for r in ok])
    assert report["drift"]["joint"]["argmax_agreement"]["p90"] == pytest.approx(float(np.percentile(agree, 10)))
    assert [p["line"] for p in report["problems"]] == [2, 4, 6] and report["schema"].endswith("/1")


def _comparable(report: dict[str, Any]) -> Any:
    """The report without timings, dates and shard bookkeeping (the figures a resume or merge must reproduce)."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if not TIMING.search(k) and k not in ("shard", "extra")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(report)


def test_cancelled_run_with_a_torn_line_resumes_to_the_same_report(full: tuple[Path, list[Any]], pipeline: Any,
                                                                   manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _run(pipeline, manifest, out, cancel_after=3)
    assert isinstance(first[-1], CorpusFinished) and first[-1].interrupted
    results = out / "results.jsonl"
    assert len(results.read_text().splitlines()) == 1 + 3
    with results.open("a") as handle:
        handle.write('{"kind": "utterance", "uid": "7:')  # killed mid-write
    second = _run(pipeline, manifest, out, resume=True)
    assert isinstance(second[-1], CorpusFinished) and not second[-1].interrupted
    assert [e.position for e in second if isinstance(e, UtteranceFinished)] == [4, 5, 6, 7]
    lines = results.read_text().splitlines()
    uids = [json.loads(ln)["uid"] for ln in lines[1:]]
    assert len(uids) == 7 == len(set(uids))
    expected = json.loads((full[0] / REPORT_JSON).read_text())
    assert _comparable(json.loads((out / REPORT_JSON).read_text())) == _comparable(expected)
    third = _run(pipeline, manifest, out, resume=True)  # nothing left: nothing recomputed or duplicated
    assert not [e for e in third if isinstance(e, UtteranceFinished)]
    assert results.read_text().splitlines() == lines


def test_shards_merge_to_the_same_report(full: tuple[Path, list[Any]], pipeline: Any, manifest: Path,
                                         tmp_path: Path) -> None:
    parts = [tmp_path / f"shard{i}" for i in (1, 2)]
    for i, part in enumerate(parts, 1):
        _run(pipeline, manifest, part, shard=Shard(i, 2))
    counts = [len((p / "results.jsonl").read_text().splitlines()) - 1 for p in parts]
    assert counts == [4, 3]
    merged = tmp_path / "merged"
    rebuild_reports(merged, sources=parts)
    expected = json.loads((full[0] / REPORT_JSON).read_text())
    assert _comparable(json.loads((merged / REPORT_JSON).read_text())) == _comparable(expected)


def _listing(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_cli_gates_exit_codes_and_nothing_written_outside_out(manifest: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from rnnt_tui.cli.corpus_cmd import corpus, corpus_report

    monkeypatch.chdir(tmp_path)
    before = _listing(manifest.parent)
    short_first = tmp_path / "m.json"
    lines = manifest.read_text().splitlines()
    short_first.write_text("\n".join([lines[3].replace("short.wav", str(manifest.parent / "short.wav")), lines[0]])
                           + "\n")
    runner = CliRunner()
    args = [str(demo_checkpoint()), str(short_first), "--against", "onnx", "--json"]
    result = runner.invoke(corpus, [*args, "--out", "a", "--max-wer-delta", "-0.01", "--min-identical", "1"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["summary"]["evaluated"] == 1 and report["summary"]["errors"] == 1
    assert len(report["gates"]["breached"]) == 1 and "ΔWER" in report["gates"]["breached"][0]
    again = runner.invoke(corpus, [*args, "--out", "a"])
    assert again.exit_code == 2 and "--resume" in again.stderr
    rebuilt = runner.invoke(corpus_report, ["a", "--json", "--min-qoi", "1"])
    assert rebuilt.exit_code == 0 and json.loads(rebuilt.stdout)["summary"] == report["summary"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"audio_filepath": "missing.wav"}\nnot json\n')
    nothing = runner.invoke(corpus, [str(demo_checkpoint()), str(bad), "--against", "onnx", "--out", "b"])
    assert nothing.exit_code == 2, nothing.output
    assert f"{bad}:2" in nothing.stderr
    from rnnt_tui.core.runtimes import get_runtime_class

    if not get_runtime_class("coreml").availability().ok:  # refused before restoring or converting anything
        unavailable = runner.invoke(corpus, [str(demo_checkpoint()), str(short_first), "--against", "coreml",
                                             "--out", "c"])
        assert unavailable.exit_code == 3, unavailable.output
        assert not (tmp_path / "c").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "bad.json", "m.json"]
    assert _listing(manifest.parent) == before
