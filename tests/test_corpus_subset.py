"""`corpus --subset`: Core AI on a chosen subset, the MIL interpreter on the rest, each row labelled with what ran
it, a summary row per candidate, the expected time said up front, and the subset part of the run's identity."""

from __future__ import annotations

import csv
import json
import pickle
import threading
from pathlib import Path

import pytest

from rnnt_tui.core.corpus import demo_manifest
from rnnt_tui.core.corpus.manifest import Utterance
from rnnt_tui.core.corpus.report import REPORT_JSON, REPORT_MD, UTTERANCES_CSV
from rnnt_tui.core.corpus.runner import CorpusFinished, CorpusPlanned, CorpusRequest, UtteranceFinished, run_corpus
from rnnt_tui.core.corpus.store import RESULTS_FILE, read_results
from rnnt_tui.core.corpus.subset import REST_RUNTIMES, Estimate, Subset, ran_on
from rnnt_tui.core.errors import BadInputError
from rnnt_tui.core.names import CANDIDATE_RUNTIMES
from rnnt_tui.exit_codes import ExitCode
from rnnt_tui.paths import demo_checkpoint


def test_subset_specs_choose_by_manifest_position() -> None:
    assert [i for i in range(7) if Subset.parse("first:2").holds(i)] == [0, 1]
    assert [i for i in range(7) if Subset.parse("every:3").holds(i)] == [0, 3, 6]
    for bad in ("first", "every:0", "some:2", "first:x"):
        with pytest.raises(ValueError, match="first:N or every:K"):
            Subset.parse(bad)


def test_estimate_says_the_work_up_front_and_an_eta_once_each_candidate_ran() -> None:
    estimate = Estimate()
    clip = Path("a.wav")
    for index, (key, duration) in enumerate((("coreai", 2.0), ("mil", 1.0), ("mil", 3.0))):
        estimate.add(key, key.upper(), Utterance(index, index + 1, clip, None, duration, "a.wav"))
    plan = estimate.plan()
    assert "COREAI: 1 utterance, 2.0 s of audio" in plan and "MIL: 2 utterances, 4.0 s of audio" in plan
    assert "estimate after the first utterance" in plan
    eta, note = estimate.finished("coreai", 10.0, 2.0, 2.0)  # 5 s per audio second; MIL not measured yet
    assert eta is None and note is not None and "5 s per audio second" in note
    eta, note = estimate.finished("mil", 0.5, 1.0, 1.0)  # 0.5 s per audio second, 3 s of audio left
    assert eta == pytest.approx(1.5) and note is not None and "about 2 s left" in note
    assert estimate.finished("mil", 1.0, 3.0, 3.0) == (0.0, None)


def test_a_subset_says_what_runs_where_and_refuses_the_candidate_as_its_rest() -> None:
    assert Subset.parse("every:10").describe("coreai") == (
        "Core AI on every 10th manifest entry (from the first), Core ML program, MIL interpreter on the rest")
    assert Subset.parse("every:2", "onnx").describe("the candidate") == (
        "the candidate on every 2nd manifest entry (from the first), ONNX Runtime on the rest")
    assert Subset.parse("first:1").describe("coreai").startswith("Core AI on the first 1 manifest entry,")
    assert Subset.parse("first:3").problem("coreai") is None
    assert "another runtime than the candidate (Core ML program, MIL interpreter)" in str(
        Subset.parse("first:3").problem("mil"))
    assert set(REST_RUNTIMES) == set(CANDIDATE_RUNTIMES)


def test_the_runner_refuses_a_subset_whose_rest_is_the_candidate(tmp_path: Path) -> None:
    request = CorpusRequest(demo_checkpoint(), demo_manifest(), "mil", tmp_path / "out", limit=2,
                            subset=Subset.parse("first:1", "mil"))
    with pytest.raises(BadInputError, match="another runtime than the candidate"):
        list(run_corpus(request, threading.Event()))
    assert not (tmp_path / "out").exists()  # refused before anything is written


@pytest.mark.parametrize(("command", "extra", "said"), [
    ("corpus", ["--subset", "some:2"], "expected first:N or every:K"),
    ("corpus", ["--subset", "first:1", "--rest", "onnx"], "another runtime than the candidate (ONNX Runtime)"),
    ("corpus", ["--subset", "first:1", "--stream"], "--subset does not go with --stream"),
    ("open", ["--subset", "every:0"], "expected first:N or every:K"),
    ("open", ["--subset", "first:1", "--rest", "onnx"], "another runtime than the candidate (ONNX Runtime)"),
])
def test_subset_options_the_core_refuses_are_usage_errors_in_its_words(command: str, extra: list[str], said: str,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """`corpus` and the app's command line (`rnnt-tui CHECKPOINT MANIFEST --subset …`) read --subset the same way
    and refuse before anything opens (exit 2)."""
    from rnnt_tui.cli import main

    code = main([command, str(demo_checkpoint()), str(demo_manifest()), "--against", "onnx", *extra])
    assert code == ExitCode.BAD_INPUT
    assert said in " ".join(capsys.readouterr().err.split())


def test_ran_on_is_where_the_candidate_ran_else_its_label(tmp_path: Path) -> None:
    """The app's "ran on" column and `corpus-report`'s worst-utterance table of a subset run say it the same way:
    the record's runs_on where the label alone does not say, else the label."""
    from click.testing import CliRunner

    from rnnt_tui.cli.corpus_cmd import corpus_report
    from rnnt_tui.core.corpus.metrics import score
    from rnnt_tui.core.corpus.records import OK, UtteranceRecord
    from rnnt_tui.core.corpus.store import ResultsStore, RunHeader

    linux = "Apple Core AI runtime, Linux CPU"
    assert ran_on("Core AI", linux) == linux
    assert ran_on("Core ML program, MIL interpreter", None) == "Core ML program, MIL interpreter"
    assert ran_on(None, None) is None
    header = RunHeader(checkpoint="m.nemo", checkpoint_sha256="abc", manifest="m.json", manifest_digest="d",
                       against="coreai", candidate_label="Core AI", options={}, settings={"runs": 1},
                       normalisation="n", wer_library="jiwer", runs_on=linux,
                       subset=Subset.parse("first:1").to_json("coreai"))
    tags = [("coreai", "Core AI", linux), ("mil", "Core ML program, MIL interpreter", None)]
    with ResultsStore.open(tmp_path / "run", header, resume=False) as store:
        for i, (key, label, where) in enumerate(tags):
            store.append(UtteranceRecord(uid=f"{i + 1}:{i}.wav", index=i, line=i + 1, audio=f"{i}.wav", text="a b",
                                         status=OK, duration_s=1.0, reference_text="a b", candidate_text="a c",
                                         identical=False, scores={"reference": score("a b", "a b"),
                                                                  "candidate": score("a b", "a c")},
                                         candidate=key, candidate_label=label, runs_on=where))
    result = CliRunner().invoke(corpus_report, [str(tmp_path / "run")], env={"COLUMNS": "250"})
    worst = result.stdout[result.stdout.index("Worst utterances"):]
    assert "ran on" in worst and linux in worst and "Core ML program, MIL interpreter" in worst, result.stdout


def _request(out: Path, subset: str, resume: bool = False) -> CorpusRequest:
    return CorpusRequest(demo_checkpoint(), demo_manifest(), "coreai", out, limit=3, resume=resume,
                         subset=Subset.parse(subset, "mil"))


@pytest.mark.slow
def test_coreai_on_one_utterance_mil_on_the_rest(tmp_path: Path) -> None:
    from rnnt_tui.core.coreai.platform import coreai_problem, where_it_runs

    if coreai_problem(need_converter=True) is not None:
        pytest.skip(f"Core AI cannot run here: {coreai_problem(need_converter=True)}")
    out = tmp_path / "out"
    events = list(run_corpus(_request(out, "first:1"), threading.Event()))
    pickle.dumps(events)
    planned = next(e for e in events if isinstance(e, CorpusPlanned))
    assert planned.estimate is not None and "Core AI" in planned.estimate and "1 utterance," in planned.estimate
    assert "MIL interpreter: 2 utterances" in planned.estimate
    finished = [e for e in events if isinstance(e, UtteranceFinished)]
    assert [e.note is not None for e in finished] == [True, True, False]  # each candidate's first utterance
    assert finished[0].eta_s is None and finished[1].eta_s is not None
    assert isinstance(events[-1], CorpusFinished)

    linux = where_it_runs()
    results = read_results(out / RESULTS_FILE)
    assert [(r.candidate, r.candidate_label, r.runs_on) for r in results.records] == [
        ("coreai", "Core AI", linux), ("mil", "Core ML program, MIL interpreter", None),
        ("mil", "Core ML program, MIL interpreter", None)]
    assert results.header.subset is not None and results.header.subset["spec"] == "first:1"
    with (out / UTTERANCES_CSV).open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["candidate"], r["runs_on"]) for r in rows] == [("Core AI", linux),
                                                              ("Core ML program, MIL interpreter", ""),
                                                              ("Core ML program, MIL interpreter", "")]
    report = json.loads((out / REPORT_JSON).read_text())
    per = {c["candidate"]: c for c in report["candidates"]}
    assert (per["coreai"]["utterances"], per["mil"]["utterances"]) == (1, 2)
    assert per["coreai"]["runs_on"] == linux and per["mil"]["label"] == "Core ML program, MIL interpreter"
    assert per["coreai"]["evaluated"] + per["mil"]["evaluated"] == report["summary"]["evaluated"] == 3
    assert report["summary"]["candidate_mixed"].startswith("mixed: Core AI")
    assert [u["candidate"] for u in report["utterances"]] == [r["candidate"] for r in rows]
    markdown = (out / REPORT_MD).read_text()
    assert "## Per candidate" in markdown and "candidate (mixed: Core AI" in markdown

    before = (out / RESULTS_FILE).read_bytes()
    with pytest.raises(BadInputError, match="subset"):
        list(run_corpus(_request(out, "every:2", resume=True)))
    assert (out / RESULTS_FILE).read_bytes() == before
    resumed = list(run_corpus(_request(out, "first:1", resume=True)))  # same subset: nothing left to run
    assert not [e for e in resumed if isinstance(e, UtteranceFinished)]
