"""`record --stream` / `replay` of a streaming bundle: NeMo's chunked reference recorded once from the streaming
demo on a manifest of two short clips (a corpus), replayed against the recorded ONNX and Core ML (MIL interpreter)
streaming steps in a process where torch and NeMo cannot be imported (the light install), with the same per-chunk
figures as the live comparison on each clip and the corpus's per-context rows; a one-clip bundle of the first
streaming format still replays; a malformed or newer streaming record is one line naming the bundle, exit 2."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parents[1]
DEMO = ROOT / "assets" / "demo"
CKPT = DEMO / "streaming-rnnt.nemo"
CLIPS = {"hello-world.wav": "hello world", "the-quick-brown-fox.wav": "the quick brown fox"}
#: a process where torch and NeMo do not exist, as in the light install
NO_HEAVY = (
    "import sys, importlib.abc\n"
    "class Block(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path, target=None):\n"
    "        if name.split('.')[0] in ('torch', 'nemo', 'lightning'):\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
    "sys.meta_path.insert(0, Block())\n"
    "from rnnt_tui.cli import main\n"
    "try:\n"
    "    code = main(sys.argv[1:])\n"
    "except SystemExit as exc:\n"
    "    code = exc.code\n"
    "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'nemo', 'lightning'))\n"
    "print('HEAVY', heavy, file=sys.stderr)\n"
    "sys.exit(code)\n")


@pytest.fixture(scope="module")
def live() -> Any:
    """The demo restored once; its live streaming comparison against ONNX Runtime on each clip."""
    import torch

    from rnnt_tui.core.checkpoint import restore
    from rnnt_tui.core.stream.compare import StreamSession
    from rnnt_tui.core.stream.config import StreamRequest

    torch.set_num_threads(1)
    loaded = restore(CKPT)
    with StreamSession(StreamRequest(CKPT, DEMO / next(iter(CLIPS)), "onnx"), lambda e: None, loaded=loaded) as s:
        return loaded, [s.compare(DEMO / name) for name in CLIPS]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, live: Any) -> Path:
    from rnnt_tui.core.bundle.corpus_input import read_clips
    from rnnt_tui.core.bundle.record import record
    from rnnt_tui.core.pipeline.request import Settings

    folder = tmp_path_factory.mktemp("stream-bundle")
    manifest = folder / "manifest.json"
    manifest.write_text("\n".join(json.dumps({"audio_filepath": str(DEMO / name), "text": text})
                                   for name, text in CLIPS.items()))
    clips, bad = read_clips(manifest)
    assert len(clips) == 2 and not bad
    return record(CKPT, clips, folder / "b", convert="fp32", export_onnx=True, settings=Settings(runs=1, warmup=0),
                  stream=True)


def _replay(bundle: Path, *args: str, tmpdir: Path | None = None) -> tuple[int, str, str]:
    env = {**os.environ, "TMPDIR": str(tmpdir)} if tmpdir is not None else None
    done = subprocess.run([sys.executable, "-c", NO_HEAVY, "replay", str(bundle), *args], capture_output=True,
                          text=True, timeout=600, cwd=ROOT, env=env)
    return done.returncode, done.stdout, done.stderr


def _same_as_live(report: dict[str, Any], reference: Any, against: str, compute_ms: float) -> None:
    assert report["att_context_size"] == list(reference.att_context_size)
    assert len(report["chunks"]) == len(reference.chunks) > 1
    assert report["decode"]["reference_text"] == reference.reference_text
    assert report["decode"]["offline_text"] == reference.offline_text
    assert report["decode"]["candidate_text"] == reference.reference_text
    tf = [c["teacher_forced"]["outputs"][0]["max_abs"] for c in report["chunks"]]
    fr = [c["free_running"]["outputs"][0]["max_abs"] for c in report["chunks"]]
    if against == "onnx":  # the same program on the same recorded inputs: the live run's figures exactly
        assert tf == [c.teacher_forced.encoder_max_abs for c in reference.chunks]
        assert fr == [c.free_running.encoder_max_abs for c in reference.chunks]
    assert max(tf) > 0 and report["chunks"][0]["timing_ms"]["reference"] == pytest.approx(compute_ms, abs=1e-3)


@pytest.mark.parametrize("against", ["onnx", "mil"])
def test_replay_without_torch_or_nemo_matches_the_live_comparison(bundle: Path, live: Any, against: str) -> None:
    code, stdout, stderr = _replay(bundle, "--against", against, "--json")
    assert code == 0, stderr[-3000:]
    assert "HEAVY []" in stderr
    report = json.loads(stdout)
    block = json.loads((bundle / "bundle.json").read_text())["stream"]
    assert block["format"] == 2  # no stateful step: the format every reader since 2 takes
    recorded = block["contexts"][0]["clips"]
    assert [Path(c["clip"]).name for c in report["clips"]] == list(CLIPS)
    for clip, result, rec in zip(report["clips"], live[1], recorded, strict=True):
        _same_as_live(clip, result.contexts[0], against, rec["chunks"][0]["compute_ms"])
    (row,) = report["stream"]  # the corpus's row for the one context, as `corpus --stream` gives it
    assert row["utterances"] == 2 and row["att_context_size"] == list(live[1][0].contexts[0].att_context_size)
    assert row["with_text"] == 2 and row["identical"] == 1.0


def test_a_one_clip_bundle_of_the_first_format_replays(bundle: Path, live: Any, tmp_path: Path) -> None:
    def first_format(block: dict[str, Any]) -> None:
        block["format"] = 1
        for context in block["contexts"]:
            clip = context.pop("clips")[0]
            context.update(chunks=clip["chunks"], offline_tokens=clip["offline_tokens"])

    copy = _edited(bundle, tmp_path, first_format)
    code, stdout, stderr = _replay(copy, "--against", "onnx", "--json")
    assert code == 0, stderr[-3000:]
    meta = json.loads((copy / "bundle.json").read_text())["stream"]["contexts"][0]
    _same_as_live(json.loads(stdout), live[1][0].contexts[0], "onnx", meta["chunks"][0]["compute_ms"])


def _edited(bundle: Path, tmp_path: Path, edit: Any) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    meta = json.loads((copy / "bundle.json").read_text())
    edit(meta["stream"])
    (copy / "bundle.json").write_text(json.dumps(meta))
    return copy


@pytest.mark.parametrize(("edit", "says"), [
    (lambda s: s["contexts"][0]["clips"][1]["chunks"][0].pop("length"),
     "streaming record (bundle.json `stream`) is malformed"),
    (lambda s: s["contexts"][0]["clips"][0]["chunks"][1]["arrays"].update(features="stream/nope"), "malformed"),
    (lambda s: s["contexts"][0]["clips"][1].update(clip=7), "malformed"),
    (lambda s: s.update(format=99), "format 99"),
    (lambda s: s.update(contexts=[]), "no att context is recorded"),
    (lambda s: s["contexts"][0]["clips"][0]["chunks"][0].update(tokens="abc"), "malformed"),
    (lambda s: s["contexts"][0]["steps"].update(onnx="../../.."), "not a folder inside the bundle"),
    (lambda s: s["contexts"][0]["steps"].update(onnx="/etc"), "not a folder inside the bundle"),
    # every field the chunk loop reads is checked before it runs (these were a KeyError / TypeError, exit 4)
    (lambda s: s["contexts"][0]["clips"][0]["chunks"][1].pop("index"), "malformed: KeyError 'index'"),
    (lambda s: s["contexts"][0]["clips"][1]["chunks"][0].pop("start_s"), "malformed: KeyError 'start_s'"),
    (lambda s: s["contexts"][0]["clips"][0]["chunks"][0]["arrays"].pop("in.cache_last_time"),
     "clip 0 chunk 0 names no array in.cache_last_time"),
    (lambda s: s["contexts"][0]["clips"][0]["chunks"][1]["arrays"].pop("encoded"),
     "clip 0 chunk 1 names no array encoded"),
    (lambda s: s["contexts"][0]["clips"][0].update(offline="windowed"), "malformed: TypeError"),
    (lambda s: s["contexts"][0].pop("latency_ms"), "malformed: KeyError 'latency_ms'"),
    (lambda s: s["contexts"][0].update(streaming_cfg=1), "malformed: TypeError"),
    (lambda s: s.pop("sample_rate"), "malformed: KeyError 'sample_rate'"),
])
def test_malformed_streaming_bundle_is_one_line(bundle: Path, tmp_path: Path, edit: Any, says: str) -> None:
    copy = _edited(bundle, tmp_path, edit)
    code, stdout, stderr = _replay(copy, "--against", "onnx")
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("HEAVY")]
    assert code == 2 and stdout == ""
    assert len(lines) == 1 and str(copy) in " ".join(lines[0].split()) and says in lines[0], stderr


@pytest.mark.parametrize(("damage", "says"), [
    (lambda f: f.write_bytes(b"not an onnx model"), "the manifest says"),
    (lambda f: f.unlink(), "is missing"),
])
def test_a_damaged_streaming_step_is_one_line_naming_the_bundle(bundle: Path, tmp_path: Path, damage: Any,
                                                                says: str) -> None:
    """The recorded step's files are checked against the manifest before ONNX Runtime reads them: one line naming
    the bundle (not the runtime's error, not a scratch folder), exit 2, the bundle left as it was."""
    copy = _edited(bundle, tmp_path, lambda s: None)
    step = copy / json.loads((copy / "bundle.json").read_text())["stream"]["contexts"][0]["steps"]["onnx"]
    damage(step / "encoder-next.onnx")
    before = sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in copy.rglob("*"))
    code, stdout, stderr = _replay(copy, "--against", "onnx")
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("HEAVY")]
    assert code == 2 and stdout == ""
    assert len(lines) == 1 and str(copy) in " ".join(lines[0].split()) and says in lines[0], stderr
    assert "encoder-next.onnx" in lines[0]
    assert sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in copy.rglob("*")) == before


@pytest.mark.skipif(not importlib.util.find_spec("coreai_torch"), reason="coreai-torch is not installed")
def test_the_core_ai_streaming_steps_are_recorded_and_replay_without_torch_or_nemo(bundle: Path, live: Any,
                                                                                    tmp_path: Path) -> None:
    """`record --stream --convert coreai --cache-states` keeps the Core AI assets and both Core AI streaming steps
    (explicit caches, and caches in Core AI states); `replay --against coreai [--cache-states]` runs them through
    Apple's Core AI runtime where torch and NeMo cannot be imported, as close to NeMo's recorded chunks as the live
    ONNX comparison is, leaving nothing in the temp dir (the lowered programs' scratch folder, one per replay
    before, is removed); a bundle recorded without them is one line saying how to record it."""
    from rnnt_tui.cli import main

    out = tmp_path / "b"
    assert main(["record", str(CKPT), str(DEMO / next(iter(CLIPS))), "--out", str(out), "--stream", "--convert",
                 "coreai", "--cache-states"]) == 0
    steps = json.loads((out / "bundle.json").read_text())["stream"]["contexts"][0]["steps"]
    assert sorted(steps) == ["coreai", "coreai-states", "mil", "mil-states", "onnx"]
    reference = live[1][0].contexts[0]
    for args, carried in ((), "explicit inputs and outputs"), (("--cache-states",), "Core AI states"):
        scratch = tmp_path / f"tmp{len(args)}"
        scratch.mkdir()
        code, stdout, stderr = _replay(out, "--against", "coreai", *args, "--json", tmpdir=scratch)
        assert code == 0, stderr[-3000:]
        assert not list(scratch.glob("rnnt-tui-stream-*")), sorted(scratch.iterdir())
        assert "HEAVY []" in stderr
        report = json.loads(stdout)
        assert report["candidate"].startswith("Core AI (") and report["caches_carried_in"].startswith(carried)
        assert report["decode"]["candidate_text"] == report["decode"]["reference_text"] == reference.reference_text
        assert len(report["chunks"]) == len(reference.chunks)
        assert max(c["free_running"]["outputs"][0]["max_abs"] for c in report["chunks"]) < 1e-4
    code, stdout, stderr = _replay(bundle, "--against", "coreai", "--cache-states")
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("HEAVY")]
    assert code == 2 and stdout == "" and len(lines) == 1, stderr
    assert "record it with --stream --convert coreai --cache-states" in " ".join(lines[0].split())
