"""Record → replay: the replay's report equals compare's, path-only joints keep compare's path statistics, and a
damaged bundle is named and refused. Uses the demo model (recorded once per module)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from rnnt_tui.core.pipeline.driver import run_steps
from rnnt_tui.paths import demo_checkpoint, demo_dir

HELLO = demo_dir() / "hello-world.wav"
FOX = demo_dir() / "the-quick-brown-fox.wav"


def _record(out: Path, clips: str | Path, *extra: str) -> Path:
    from rnnt_tui.cli.bundle_cmd import record

    result = CliRunner().invoke(record, [str(demo_checkpoint()), str(clips), "--out", str(out), "--runs", "1",
                                         "--warmup", "0", *extra])
    assert result.exit_code == 0, result.output
    return out


def _replay(bundle: Path, *extra: str) -> tuple[int, str, str]:
    from rnnt_tui.cli.bundle_cmd import replay

    result = CliRunner().invoke(replay, [str(bundle), *extra])
    return result.exit_code, result.stdout, " ".join(result.stderr.split())  # rich wraps at 80 columns


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A whole-grid bundle of one demo clip (with NeMo's ONNX export and the tool's fp32 Core ML conversion), and a
    path-only bundle of two clips."""
    root = tmp_path_factory.mktemp("bundles")
    manifest = root / "two.jsonl"
    manifest.write_text("\n".join(json.dumps({"audio_filepath": str(p), "text": t})
                                  for p, t in ((HELLO, "hello world"), (root / "missing.wav", "gone"),
                                               (FOX, "the quick brown fox"))))
    return {"full": _record(root / "full", HELLO, "--joint", "full", "--export", "onnx", "--convert", "fp32"),
            "path": _record(root / "path", manifest, "--joint", "path", "--export", "onnx")}


def test_a_manifest_clip_whose_audio_is_unusable_is_skipped_and_the_rest_recorded(tmp_path: Path) -> None:
    """A manifest's clip with no samples, or not audio, is skipped with its line and why (stderr and the bundle's
    `skipped`), as a missing one is, and the other clips are recorded: it stopped the whole record (exit 2, nothing
    written). A lone clip that cannot be used is still refused, naming it."""
    import soundfile as sf

    from rnnt_tui.cli.bundle_cmd import record

    zero, junk = tmp_path / "zero.wav", tmp_path / "junk.wav"
    sf.write(str(zero), np.zeros(0, np.float32), 16000, subtype="PCM_16")
    junk.write_text("not audio")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps({"audio_filepath": str(p), "text": "x"})
                                  for p in (zero, HELLO, junk, FOX)))
    out = _record(tmp_path / "b", manifest)
    meta = json.loads((out / "bundle.json").read_text())
    assert [Path(c["audio"]["path"]).name for c in meta["clips"]] == [HELLO.name, FOX.name]
    assert [(e["line"], e["problem"]) for e in meta["skipped"]] == [
        (1, f"{zero}: holds zero audio samples"), (3, meta["skipped"][1]["problem"])]
    assert meta["skipped"][1]["problem"].startswith(f"{junk}: not readable audio")
    result = CliRunner().invoke(record, [str(demo_checkpoint()), str(zero), "--out", str(tmp_path / "lone")])
    assert result.exit_code == 2 and "zero.wav: holds zero audio samples" in result.stderr
    assert not (tmp_path / "lone").exists()


def _tree_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
            digest.update(str(path.stat().st_mtime_ns).encode())
    return digest.hexdigest()


def _numbers(report: dict[str, Any]) -> dict[str, Any]:
    """The comparison's findings: shapes, statistics, statuses, transcripts (timings and paths differ)."""
    comps = {c["name"]: {"status": c["status"],
                         "outputs": [{k: o[k] for k in ("name", "shape_reference", "shape_candidate", "stats", "ok")}
                                     for o in c["outputs"]]} for c in report["components"]}
    decode = {k: report["decode"][k] for k in ("reference_text", "candidate_text", "nemo_text", "reference_tokens",
                                               "candidate_tokens", "nemo_tokens", "token_agreement", "wer",
                                               "reference_matches_nemo", "candidate_matches_nemo")}
    return {"components": comps, "decode": decode, "status": report["status"], "fuse": report["fuse"],
            "summary": report["checkpoint"]["summary"], "sha256": report["checkpoint"]["sha256"]}


def _close(a: Any, b: Any, path: str = "") -> None:
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for key in a:
            _close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-9), path
    else:
        assert a == b, path


def test_replay_gives_compare_report(bundles: dict[str, Path]) -> None:
    from rnnt_tui.core.options import RuntimeOptions
    from rnnt_tui.core.pipeline.pipeline import open_session
    from rnnt_tui.core.pipeline.request import Request, Settings
    from rnnt_tui.core.report import build_report

    session = open_session(Request(demo_checkpoint(), HELLO, "onnx", RuntimeOptions(), Settings(runs=1, warmup=0)))
    run_steps(session)
    compared = build_report(session)
    before = _tree_hash(bundles["full"])
    code, stdout, stderr = _replay(bundles["full"], "--against", "onnx", "--json", "--runs", "1", "--warmup", "0")
    assert code == 0, stderr
    replayed = json.loads(stdout)
    assert _tree_hash(bundles["full"]) == before, "replay wrote into the bundle"
    _close(_numbers(compared), _numbers(replayed))
    assert replayed["reference"]["label"].endswith("(recorded)")
    assert replayed["bundle"]["reference_timings"] == "recorded"
    assert replayed["components"][1]["timings"]["reference"]["median_ms"] > 0


def test_path_joint_has_compare_statistics_on_path_cells(bundles: dict[str, Path]) -> None:
    from rnnt_tui.core.bundle.facts import BundleFacts
    from rnnt_tui.core.bundle.format import Bundle
    from rnnt_tui.core.bundle.onnx_replay import BundleOnnxRuntime
    from rnnt_tui.core.bundle.recorded import RecordedModel
    from rnnt_tui.core.stats.diff import diff_stats
    from rnnt_tui.core.tolerances import defaults

    code, stdout, stderr = _replay(bundles["path"], "--against", "onnx", "--json", "--runs", "1", "--warmup", "0")
    assert code == 0, stderr
    replayed = json.loads(stdout)
    assert [c["bundle"]["joint_storage"] for c in replayed["clips"]] == ["path", "path"]
    assert replayed["clips"][0]["decode"]["reference_text"] == "hello world"
    assert replayed["clips"][1]["decode"]["reference_text"] == "the quick brown fox"
    corpus = replayed["corpus"]  # scored as a corpus run scores it, against the manifest's texts
    assert corpus["summary"]["wer"] == {"reference": 0.0, "candidate": 0.0}
    assert corpus["summary"]["identical"] == 1.0 and corpus["summary"]["evaluated"] == 2
    assert [s["line"] for s in corpus["skipped_at_record"]] == [2]
    joint = next(c for c in replayed["clips"][0]["components"] if c["name"] == "joint")

    full, path = Bundle.open(bundles["full"]), Bundle.open(bundles["path"])
    clip_full, clip_path = full.meta["clips"][0], path.meta["clips"][0]
    grid = full.array(clip_full["arrays"]["joint.grid"])
    cells = path.array(clip_path["arrays"]["joint.path_cells"])
    ref_cells = grid[0, cells[:, 0], cells[:, 1]]
    np.testing.assert_array_equal(ref_cells, path.array(clip_path["arrays"]["joint.path_logits"]))
    np.testing.assert_array_equal(ref_cells.argmax(axis=1), path.array(clip_path["arrays"]["joint.path_argmax"]))
    # the candidate's grid as compare computes it (whole grid, the recorded chunks), read at the path cells
    facts = BundleFacts(full)
    runtime = BundleOnnxRuntime(RecordedModel(facts.path, facts.summary, facts.sha256), None,
                                full.file("onnx"), full.meta["onnx"])
    runtime.prepare()
    arr = clip_full["arrays"]
    length = int(full.array(arr["encoder.encoded_length"])[0])
    encoded = full.array(arr["encoder.encoded"])[:, :, :length]
    g, targets = full.array(arr["decoder.decoder_output"]), full.array(arr["decoder.targets"])
    chunk = full.meta["settings"]["joint_chunk_frames"]
    cand = np.concatenate([runtime.run("joint", {"encoded": encoded[:, :, s:s + chunk], "decoder_output": g,
                                                 "targets": targets})["logits"] for s in range(0, length, chunk)],
                          axis=1)
    tol = defaults()["joint"]
    expected = diff_stats(ref_cells, cand[0, cells[:, 0], cells[:, 1]], tol.atol, tol.rtol, logits=True).to_json()
    _close(expected, joint["outputs"][0]["stats"])
    assert joint["outputs"][0]["shape_reference"] == list(ref_cells.shape)
    full.close()
    path.close()


def test_path_bundle_is_small_and_says_why(bundles: dict[str, Path]) -> None:
    from rnnt_tui.core.bundle.format import Bundle

    bundle = Bundle.open(bundles["path"])
    assert bundle.meta["joint"]["storage"] == "path"
    assert "--joint path" in bundle.meta["joint"]["why"]
    assert not any("joint.grid" in name for name in bundle.manifest["arrays"])
    bundle.close()


def _damaged(bundles: dict[str, Path], tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(bundles["full"], copy)
    return copy


def test_tampered_array_is_named(bundles: dict[str, Path], tmp_path: Path) -> None:
    copy = _damaged(bundles, tmp_path)
    target = copy / "arrays" / "clips" / "0" / "encoder.encoded.npy"
    data = bytearray(target.read_bytes())
    data[-3] ^= 0x01
    target.write_bytes(bytes(data))
    code, _, stderr = _replay(copy, "--against", "onnx")
    assert code == 2
    assert "array clips/0/encoder.encoded" in stderr and "SHA-256" in stderr
    assert "Traceback" not in stderr


def test_missing_array_is_named(bundles: dict[str, Path], tmp_path: Path) -> None:
    copy = _damaged(bundles, tmp_path)
    (copy / "arrays" / "clips" / "0" / "decoder.h.npy").unlink()
    code, _, stderr = _replay(copy, "--against", "onnx")
    assert code == 2
    assert "array clips/0/decoder.h is missing" in stderr


def test_newer_format_version_refused(bundles: dict[str, Path], tmp_path: Path) -> None:
    copy = _damaged(bundles, tmp_path)
    meta = json.loads((copy / "bundle.json").read_text())
    meta["format_version"] = 99
    (copy / "bundle.json").write_text(json.dumps(meta))
    code, _, stderr = _replay(copy, "--against", "onnx")
    assert code == 2
    assert "format version 99" in stderr and "newer" in stderr


def test_zip_bundle_reads_and_truncation_is_refused(bundles: dict[str, Path], tmp_path: Path) -> None:
    from rnnt_tui.core.bundle.format import Bundle
    from rnnt_tui.core.errors import BadInputError

    archive = Path(shutil.make_archive(str(tmp_path / "demo"), "zip", bundles["full"]))
    packed = archive.rename(tmp_path / "demo.rnntb")
    bundle = Bundle.open(packed)
    assert bundle.meta["clips"][0]["decode"]["reference_text"] == "hello world"
    bundle.close()
    truncated = tmp_path / "truncated.rnntb"
    truncated.write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    with pytest.raises(BadInputError, match="truncated"):
        Bundle.open(truncated)


def test_record_never_overwrites(bundles: dict[str, Path]) -> None:
    from rnnt_tui.cli.bundle_cmd import record

    before = _tree_hash(bundles["full"])
    result = CliRunner().invoke(record, [str(demo_checkpoint()), str(HELLO), "--out",
                                                         str(bundles["full"])])
    assert result.exit_code == 2
    assert "already exists" in " ".join(result.stderr.split())
    assert _tree_hash(bundles["full"]) == before


def test_onnx_replay_needs_the_export(bundles: dict[str, Path], tmp_path: Path) -> None:
    copy = _damaged(bundles, tmp_path)
    meta = json.loads((copy / "bundle.json").read_text())
    meta["onnx"] = None
    (copy / "bundle.json").write_text(json.dumps(meta))
    code, _, stderr = _replay(copy, "--against", "onnx")
    assert code == 2
    assert "--export onnx" in stderr


def test_replay_imports_neither_torch_nor_nemo(bundles: dict[str, Path]) -> None:
    code = (
        "import sys, json\n"
        "from rnnt_tui.cli import main\n"
        f"assert main(['replay', {str(bundles['full'])!r}, '--against', 'onnx', '--json']) == 0\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'nemo', 'lightning') or "
        "m == 'rnnt_tui.core.runtimes.torch_runtime')\n"
        "print('HEAVY', json.dumps(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    heavy = json.loads(done.stdout.split("HEAVY", 1)[1])
    assert heavy == []


@pytest.mark.parametrize("kind", ["tdt"])  # BPE (SentencePiece text without NeMo) and TDT durations in one model
def test_recorded_reference_answers_as_the_live_model(kind: str, checkpoints: dict[str, Path], loaded_model: Any,
                                                      clip: Path, tmp_path: Path) -> None:
    """Replaying a BPE / TDT recording against the live model itself: every diff is exactly zero, the decode and
    its text (read from the recorded vocabulary, no NeMo) equal NeMo's."""
    from rnnt_tui.core.bundle.corpus_input import ClipInput
    from rnnt_tui.core.bundle.format import Bundle
    from rnnt_tui.core.bundle.record import record
    from rnnt_tui.core.bundle.replay import Recording
    from rnnt_tui.core.fuse import VALIDATION, fuse_mode_of
    from rnnt_tui.core.pipeline.pipeline import Pipeline
    from rnnt_tui.core.pipeline.request import Request, Settings
    from rnnt_tui.core.report import build_report
    from rnnt_tui.core.runtimes.torch_runtime import TorchRuntime

    loaded = loaded_model(kind)
    path = record(checkpoints[kind], [ClipInput(clip)], tmp_path / "b", joint="path",
                  settings=Settings(runs=1, warmup=0))
    bundle = Bundle.open(path)
    meta = bundle.meta["clips"][0]["decode"]
    assert meta["reference_matches_nemo"] is True and meta["text_from_vocabulary_matches"] is True
    assert bundle.meta["model"]["vocabulary"]["single_tokens_disagreeing"] == []
    fuse_mode_of(loaded.model).set(VALIDATION)
    live = TorchRuntime(loaded)

    class AgainstLive(Recording):
        def candidate(self, against: str, options: Any) -> Any:
            return live

    report = build_report(run_steps(Pipeline().open(Request(path, path, "pytorch"), reference=AgainstLive(bundle))))
    assert report["status"] == "ok", report
    for component in report["components"]:
        for output in component["outputs"]:
            assert output["stats"]["max_abs"] == 0.0, (component["name"], output["name"])
    decode = report["decode"]
    assert decode["candidate_tokens"] == decode["reference_tokens"] == decode["nemo_tokens"]
    assert decode["reference_text"] == decode["nemo_text"] == meta["nemo_text"]
    if kind == "tdt":
        assert bundle.meta["model"]["summary"]["durations"]
    bundle.close()


def test_provenance_of_packages(tmp_path: Path) -> None:
    """The tool's packages name their checkpoint; others cannot be checked, and replay says which."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    from rnnt_tui.core.bundle.candidates import provenance

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4))])
    def prog(x: Any) -> Any:
        return mb.add(x=x, y=1.0)

    for name, source in (("ours.mlpackage", "a" * 64), ("theirs.mlpackage", None)):
        model = ct.convert(prog, convert_to="mlprogram")
        if source:
            model.user_defined_metadata["rnnt_tui.source_sha256"] = source
        model.save(str(tmp_path / name))
    assert provenance(tmp_path, "a" * 64) == [next(n for n in provenance(tmp_path, "a" * 64) if "theirs" in n)]
    notes = provenance(tmp_path, "b" * 64)
    assert any("ours.mlpackage was converted from a different checkpoint" in n for n in notes)
    assert any("theirs.mlpackage" in n and "cannot be checked" in n for n in notes)


def test_joint_mode_is_fixed_at_record_time(bundles: dict[str, Path]) -> None:
    from rnnt_tui.core.bundle.facts import BundleFacts
    from rnnt_tui.core.bundle.format import Bundle
    from rnnt_tui.core.errors import BadInputError
    from rnnt_tui.core.fuse import AS_SAVED, VALIDATION

    bundle = Bundle.open(bundles["full"])
    facts = BundleFacts(bundle)
    assert facts.set_joint_mode(VALIDATION).mode == VALIDATION
    assert facts.fuse().saved.fuse_loss_wer is True and facts.fuse().current.fuse_loss_wer is False
    with pytest.raises(BadInputError, match="fixed at record time"):
        facts.set_joint_mode(AS_SAVED)
    assert facts.max_symbols() is not None
    bundle.close()


_AT_READY = """
import json, sys, threading
from pathlib import Path
from rnnt_tui.app.engine import Engine
from rnnt_tui.core.options import RuntimeOptions
from rnnt_tui.core.pipeline import events as ev
from rnnt_tui.core.pipeline.request import Request, Settings

heavy = ('coremltools', 'torch', 'torchao', 'nemo', 'google.protobuf')
at_ready = []

def post(envelope):
    if isinstance(envelope.event, ev.SessionReady):
        at_ready.extend(sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') for h in heavy)))

bundle = Path(sys.argv[1])
Engine().open_checkpoint(Request(bundle, bundle, 'mil', RuntimeOptions(precision='fp32'), Settings(runs=1, warmup=0)),
                         post, threading.Event())
print('AT_READY', json.dumps(at_ready))
"""


def test_a_bundle_is_ready_without_coremltools_and_replays_as_before(bundles: dict[str, Path], tmp_path: Path) -> None:
    """Issue 21, 6: a bundle recorded with `--convert` opens the app's way (the engine child's `open_checkpoint`)
    with neither coremltools, torch nor NeMo imported at Ready (the packages' specs and program facts are the
    bundle's record; each MIL program loads on its first step, saying so); its steps then give the results a bundle
    recorded before that gives (read with coremltools and loaded up front, which it says once)."""
    from rnnt_tui.core.bundle.replay import recording_for
    from rnnt_tui.core.options import RuntimeOptions
    from rnnt_tui.core.pipeline import events as ev
    from rnnt_tui.core.pipeline.pipeline import Pipeline
    from rnnt_tui.core.pipeline.request import Request, Settings
    from rnnt_tui.core.report import build_report

    bundle = bundles["full"]
    done = subprocess.run([sys.executable, "-c", _AT_READY, str(bundle)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.split("AT_READY", 1)[1]) == []

    older = tmp_path / "older"  # the same bundle as recorded before the facts were kept
    shutil.copytree(bundle, older)
    meta = json.loads((older / "bundle.json").read_text())
    del meta["packages"]["fp32"]["facts"]
    (older / "bundle.json").write_text(json.dumps(meta))

    def replay(path: Path) -> tuple[dict[str, Any], list[str], list[float | None]]:
        texts: list[str] = []

        def emit(event: ev.Event) -> None:
            if isinstance(event, ev.Progress):
                texts.append(event.text)

        request = Request(path, path, "mil", RuntimeOptions(precision="fp32"), Settings(runs=1, warmup=0))
        pipeline = Pipeline(emit)
        try:
            session = pipeline.open(request, reference=recording_for(request))
            assert pipeline.candidate is not None
            at_ready = [r.load_ms for r in pipeline.candidate.reports.values()]
            return build_report(run_steps(session, emit=emit)), texts, at_ready
        finally:
            pipeline.close()

    new, new_texts, new_loads = replay(bundle)
    old, old_texts, old_loads = replay(older)
    _close(_numbers(old), _numbers(new))
    assert new["settings"]["tolerances"] == old["settings"]["tolerances"]
    assert new["candidate"]["label"] == old["candidate"]["label"] == "Core ML program, MIL interpreter"
    assert new_loads == [None] * 4 and None not in old_loads  # loaded by the steps, not before Ready
    assert [p["load_ms"] is not None for p in new["candidate"]["prepare"]] == [True] * 4
    assert [p["action"] for p in new["candidate"]["prepare"]] == [p["action"] for p in old["candidate"]["prepare"]]
    assert sum("loading the encoder (its first call)" in t for t in new_texts) == 1
    from rnnt_tui.core.bundle.candidates import UNRECORDED_FACTS

    assert old_texts.count(UNRECORDED_FACTS) == 1 and UNRECORDED_FACTS not in new_texts
