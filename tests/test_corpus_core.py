"""Corpus core without a model: manifests (bad lines, shards), WER/CER against a hand-written edit distance, the
results store (torn lines, resume checks, merging) and corpus aggregates and gates from records."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from edit_distance import levenshtein

from rnnt_tui.core.corpus.aggregate import Gates, aggregate, breached
from rnnt_tui.core.corpus.manifest import ManifestError, Shard, Utterance, looks_like_manifest, read_manifest
from rnnt_tui.core.corpus.metrics import normalise, score
from rnnt_tui.core.corpus.records import OK, UtteranceRecord, error_record
from rnnt_tui.core.corpus.store import RESULTS_FILE, ResultsStore, RunHeader, merge_results, read_results
from rnnt_tui.core.errors import BadInputError


@pytest.fixture()
def wavs(tmp_path: Path) -> Path:
    from conftest import write_wav

    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("a.wav", "b.wav", "sub/c.wav"):
        (folder / name).parent.mkdir(exist_ok=True)
        write_wav(folder / name, seconds=0.3)
    return folder


def test_manifest_bad_lines_are_recorded_with_line_file_and_problem(wavs: Path) -> None:
    manifest = wavs / "m.json"
    lines = ['{"audio_filepath": "a.wav", "duration": 0.3, "text": "a b"}', "{not json", "",
             '{"duration": 1.0}', '["a.wav"]', '{"audio_filepath": "nope.wav"}', '{"audio_filepath": "b.wav", '
             '"text": 5}', '{"audio_filepath": "sub/c.wav", "duration": "long"}', '{"audio_filepath": "sub/c.wav"}']
    manifest.write_text("\n".join(lines) + "\n")
    read = read_manifest(manifest)
    problems = {e.line: e.problem for e in read.errors}
    assert set(problems) == {2, 4, 5, 6, 7, 8}  # line 3 is blank: skipped, not an entry
    assert problems[2].startswith("malformed JSON")
    assert problems[4] == "no audio_filepath key"
    assert "not found" in problems[6] and str(wavs / "nope.wav") in problems[6]
    assert "text" in problems[7] and "duration" in problems[8]
    assert all(e.file == manifest for e in read.errors)
    good = read.utterances
    assert [(u.line, u.audio_path, u.text) for u in good] == [(1, wavs / "a.wav", "a b"), (9, wavs / "sub/c.wav", None)]
    assert [e.index for e in read.entries] == list(range(8))
    assert "m.json:2:" in read.errors[0].message()


def test_manifest_kinds_and_refusals(wavs: Path, tmp_path: Path) -> None:
    folder = read_manifest(wavs)
    assert [u.source for u in folder.utterances] == ["a.wav", "b.wav", "sub/c.wav"]
    listing = tmp_path / "list.txt"
    listing.write_text(f"# clips\n{wavs / 'a.wav'}\nclips/b.wav\nclips/missing.wav\n")
    read = read_manifest(listing)
    assert [u.audio_path for u in read.utterances] == [wavs / "a.wav", wavs / "b.wav"]
    assert [(e.line, e.source) for e in read.errors] == [(4, "clips/missing.wav")]
    assert looks_like_manifest(wavs) and looks_like_manifest(listing) and not looks_like_manifest(wavs / "a.wav")
    empty = tmp_path / "empty.json"
    empty.write_text("\n \n")
    with pytest.raises(BadInputError, match="no utterances"):
        read_manifest(empty)
    with pytest.raises(BadInputError, match="audio file, not a manifest"):
        read_manifest(wavs / "a.wav")
    with pytest.raises(BadInputError, match="no such file"):
        read_manifest(tmp_path / "absent.json")
    array = tmp_path / "clips.json"  # one JSON document: refused once, not as a malformed line per line
    array.write_text(json.dumps([{"audio_filepath": "a.wav", "text": "a"}], indent=2))
    with pytest.raises(BadInputError, match="is a JSON array, not a NeMo manifest") as refused:
        read_manifest(array)
    assert refused.value.path == array


def test_shards_partition_the_limited_entries(wavs: Path) -> None:
    manifest = wavs / "m.json"
    manifest.write_text("".join(json.dumps({"audio_filepath": "a.wav", "text": str(i)}) + "\n" for i in range(11)))
    read = read_manifest(manifest)
    whole = [e.uid for e in read.select(limit=9)]
    parts = [[e.uid for e in read.select(limit=9, shard=Shard(i, 3))] for i in (1, 2, 3)]
    joined = [uid for part in parts for uid in part]
    assert sorted(joined) == sorted(whole) and len(set(joined)) == 9
    assert parts == [[e.uid for e in read.select(limit=9, shard=Shard.parse(f"{i}/3"))] for i in (1, 2, 3)]
    for bad in ("0/3", "4/3", "x", "1/2/3"):
        with pytest.raises(ValueError):
            Shard.parse(bad)


@pytest.mark.parametrize(("ref", "hyp"), [("the quick brown fox", "the quick brown fox"),
                                          ("the quick brown fox", "a quick fox jumps over"),
                                          ("Hello, World!", "hello world"), ("core ml on a mac", ""),
                                          ("one two three", "one three three four")])
def test_wer_and_cer_equal_a_hand_written_edit_distance(ref: str, hyp: str) -> None:
    scored = score(ref, hyp)
    r, h = normalise(ref), normalise(hyp)
    assert scored.words.errors == levenshtein(r.split(), h.split())
    assert scored.chars.errors == levenshtein(list(r), list(h))
    assert scored.words.length == len(r.split()) and scored.chars.length == len(r)
    assert scored.words.hits + scored.words.substitutions + scored.words.deletions == scored.words.length


def test_normalisation_is_documented_behaviour() -> None:
    assert normalise("  Don't STOP, it's  rock-n-'roll'! ") == "don't stop it's rock n roll"
    assert normalise("ＦＵＬＬ width") == "full width"


def _header(**changes: object) -> RunHeader:
    base = RunHeader(checkpoint="m.nemo", checkpoint_sha256="abc", manifest="m.json", manifest_digest="d",
                     against="onnx", candidate_label="ONNX Runtime", options={"precision": "fp32"},
                     settings={"runs": 1}, normalisation="n", wer_library="jiwer")
    return replace(base, **changes)  # type: ignore[arg-type]


def _record(i: int, text: str | None, ref: str, cand: str, seconds: float = 1.0) -> UtteranceRecord:
    scores = {} if text is None else {"reference": score(text, ref), "candidate": score(text, cand)}
    return UtteranceRecord(uid=f"{i + 1}:{i}.wav", index=i, line=i + 1, audio=f"{i}.wav", text=text, status=OK,
                           duration_s=seconds, reference_text=ref, candidate_text=cand, identical=ref == cand,
                           token_agreement=1.0 if ref == cand else 0.5, scores=scores,
                           compute_ms={"reference": 500.0 * seconds, "candidate": 250.0 * seconds})


def test_store_appends_resumes_tolerates_a_torn_line_and_refuses_other_settings(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with ResultsStore.open(out, _header(), resume=False) as store:
        assert store.append(_record(0, "a b", "a b", "a b"))
        assert not store.append(_record(0, "a b", "a b", "a b"))  # never twice
    path = out / RESULTS_FILE
    with pytest.raises(BadInputError, match="--resume"):
        ResultsStore.open(out, _header(), resume=False)
    with pytest.raises(BadInputError, match=r"other settings.*checkpoint_sha256"):
        ResultsStore.open(out, _header(checkpoint_sha256="other"), resume=True)
    with pytest.raises(BadInputError, match="shard"):
        ResultsStore.open(out, _header(shard="1/2"), resume=True)
    torn = json.dumps(_record(1, "c", "c", "c").to_json())
    with path.open("a") as handle:
        handle.write(torn[: len(torn) // 2])  # a kill mid-write
    read = read_results(out)
    assert [r.uid for r in read.records] == ["1:0.wav"] and read.torn_at is not None
    with ResultsStore.open(out, _header(created="later"), resume=True) as store:
        assert store.done("1:0.wav") and not store.done("2:1.wav")
        store.append(_record(1, "c", "c", "d"))
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line) for line in lines)
    assert read_results(out).records[1].candidate_text == "d"


def test_merge_refuses_runs_with_other_settings(tmp_path: Path) -> None:
    for name, header in (("a", _header(shard="1/2")), ("b", _header(shard="2/2")), ("c", _header(against="mil"))):
        with ResultsStore.open(tmp_path / name, header, resume=False) as store:
            store.append(_record(0 if name == "a" else 1, "x", "x", "x"))
    header, records, _ = merge_results([tmp_path / "b", tmp_path / "a"])
    assert [r.index for r in records] == [0, 1] and header.extra["merged_shards"] == ["1/2", "2/2"]
    with pytest.raises(BadInputError, match="against"):
        merge_results([tmp_path / "a", tmp_path / "c"])


def test_corpus_wer_is_errors_over_words_not_a_mean_and_gates_breach() -> None:
    records = [_record(0, "one two three four five six seven eight nine ten", "one two three four five six seven "
                       "eight nine ten", "one two three four five six seven eight nine"),
               _record(1, "yes", "no", "no", seconds=2.0), _record(2, "a b", "a b", "a c"),
               _record(3, None, "x", "x"),
               error_record(Utterance(4, 5, Path("e.wav"), None, None, "e.wav"), "audio", "too short"),
               error_record(ManifestError(5, 6, Path("m.json"), None, "malformed JSON"), "manifest", "malformed")]
    figures = aggregate(records, Gates(max_wer_delta=0.01, min_qoi=0.5, min_identical=0.9))
    s = figures["summary"]
    assert (s["utterances"], s["evaluated"], s["errors"], s["with_text"]) == (6, 4, 2, 3)
    assert s["wer"]["reference"] == pytest.approx(1 / 13) and s["wer"]["candidate"] == pytest.approx(3 / 13)
    mean_of_rates = (0.1 + 1.0 + 0.5) / 3
    assert s["wer"]["candidate"] != pytest.approx(mean_of_rates)
    assert s["wer_delta"] == pytest.approx(2 / 13)
    assert s["qoi"] == pytest.approx(1 / 3) and s["qoi_over"] == 3
    assert s["identical"] == pytest.approx(2 / 4)
    assert s["rtfx"]["reference"] == pytest.approx(5.0 / 2.5) and s["rtfx"]["candidate"] == pytest.approx(4.0)
    assert len(figures["gates"]["breached"]) == 3
    assert figures["worst"][0] == "1:0.wav"  # the candidate added the most word errors there
    assert [p["status"] for p in figures["problems"]] == ["error", "error"]
    assert breached(s, Gates(max_wer_delta=0.2, min_qoi=0.3, min_identical=0.5)) == []


def _out_of_tolerance(record: UtteranceRecord, step: str = "preprocessor") -> UtteranceRecord:
    """`record` with `step` out of tolerance, as `record_from` writes it for a clip `compare` calls a mismatch."""
    from rnnt_tui.core.corpus.records import StepFigures

    steps = {name: StepFigures("mismatch" if name == step else "done", max_abs=0.095 if name == step else 1e-6)
             for name in ("preprocessor", "encoder", "decoder", "joint", "decode")}
    return replace(record, steps=steps, within_tolerance=False)


def test_out_of_tolerance_utterances_are_counted_listed_first_and_gated_by_default(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from rnnt_tui.cli.corpus_cmd import corpus_report
    from rnnt_tui.core.corpus.aggregate import RunningTotals
    from rnnt_tui.core.corpus.report import REPORT_MD, UTTERANCES_CSV

    good = [replace(_record(i, "a b", "a b", "a b" if i else "a c"), within_tolerance=True) for i in range(14)]
    records = list(good)
    records[3] = _out_of_tolerance(records[3])
    records[11] = _out_of_tolerance(records[11], "joint")
    records[5] = replace(records[5], resampler="lhotse's resampler", audio_loader="NeMo's transcribe() loader")
    figures = aggregate(records)  # default gates: none out of tolerance allowed, like `compare`
    s = figures["summary"]
    assert s["resamplers"] == {"lhotse's resampler": 1, "unknown": 13}  # what fed both sides and NeMo's column
    assert (s["out_of_tolerance"], s["within_tolerance"]) == (2, 12)
    assert [o["line"] for o in figures["out_of_tolerance_utterances"]] == [4, 12]
    assert figures["out_of_tolerance_utterances"][1]["steps"] == ["joint"]
    assert figures["worst"][:2] == ["4:3.wav", "12:11.wav"]  # ahead of the one with an added word error
    assert len(figures["gates"]["breached"]) == 1 and "2 utterances out of tolerance" in figures["gates"]["breached"][0]
    assert aggregate(records, Gates(max_out_of_tolerance=2))["gates"]["breached"] == []
    totals = RunningTotals()
    for record in records:
        totals.add(record)
    assert totals.headline()["out_of_tolerance"] == 2  # what the app's Corpus tab reads while a run goes on

    with ResultsStore.open(tmp_path / "run", _header(), resume=False) as store:
        for record in records:
            store.append(record)
    runner = CliRunner()
    result = runner.invoke(corpus_report, [str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    assert "out of tolerance" in result.stdout and "--max-out-of-tolerance 0" in result.stderr
    worst = result.stdout[result.stdout.index("Worst utterances"):]
    firsts = [ln.split("│")[1].strip() for ln in worst.splitlines() if ln.startswith("│") and ln.split("│")[1].strip()]
    assert firsts[:3] == ["4", "12", "1"], result.stdout  # both listed, ahead of the added word error
    markdown = (tmp_path / "run" / REPORT_MD).read_text()
    assert "Out of tolerance: 2 of 14" in markdown and "line 4 (3.wav: preprocessor)" in markdown
    assert "preprocessor" in (tmp_path / "run" / UTTERANCES_CSV).read_text()
    assert "1 lhotse's resampler" in markdown and "1 lhotse's" in result.stdout
    as_json = runner.invoke(corpus_report, [str(tmp_path / "run"), "--json", "--max-out-of-tolerance", "2"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["summary"]["out_of_tolerance"] == 2


def test_runs_on_is_recorded_reported_and_part_of_a_runs_identity(tmp_path: Path) -> None:
    """Core AI's header says where it ran; a resume elsewhere (another runtime) is refused, a file from before
    runs_on was recorded resumes, and report.md says it."""
    from rnnt_tui.core.coreai.platform import coreai_problem, where_it_runs
    from rnnt_tui.core.corpus.report import to_markdown
    from rnnt_tui.core.corpus.runner import runs_on

    linux = _header(against="coreai", candidate_label="Core AI", runs_on="Apple Core AI runtime, Linux CPU")
    assert runs_on("onnx") is None
    assert runs_on("coreai") == (where_it_runs() if coreai_problem() is None else None)
    with ResultsStore.open(tmp_path / "a", linux, resume=False) as store:
        store.append(_record(0, "a", "a", "a"))
    assert json.loads((tmp_path / "a" / RESULTS_FILE).read_text().splitlines()[0])["runs_on"] == linux.runs_on
    with pytest.raises(BadInputError, match="runs_on"):
        ResultsStore.open(tmp_path / "a", replace(linux, runs_on="Core AI framework, macOS 27.0, GPU"), resume=True)
    with ResultsStore.open(tmp_path / "a", linux, resume=True) as store:
        assert store.done("1:0.wav")
    with ResultsStore.open(tmp_path / "old", replace(linux, runs_on=None), resume=False) as store:
        store.append(_record(0, "a", "a", "a"))
    with ResultsStore.open(tmp_path / "old", linux, resume=True) as store:  # recorded before runs_on existed
        assert store.done("1:0.wav")
    from rnnt_tui.core.corpus.report import rebuild_reports

    rebuild_reports(tmp_path / "a")
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["run"]["runs_on"] == linux.runs_on
    assert f"- candidate runs on: {linux.runs_on}" in to_markdown(report)
    assert f"- candidate runs on: {linux.runs_on}" in (tmp_path / "a" / "report.md").read_text()
