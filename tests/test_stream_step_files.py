"""`stream --step` with ONNX models and Core AI assets: a user's streaming step run by the candidate's own runtime.

The steps are the tool's own (NeMo's ONNX export with cache_support; the coreai-torch conversion) for the session's
small `streaming` model, given back as if a user had made them: the numbers must be the tool's own step's, exactly.
Renamed copies (onnx's own graph editing) check that unknown names are refused in one line, exit 2, before the
checkpoint is even read, and that `--map` names them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_stream_cli import _cli, refusal_line

from rnnt_tui.core.coreai.platform import coreai_problem

ROOT = Path(__file__).parents[1]
CLIP = ROOT / "assets" / "demo" / "hello-world.wav"
RENAMED = {"audio_signal": "x_in", "cache_last_channel": "state_a", "outputs": "y",
           "cache_last_channel_next": "state_a_out"}


def _own(loaded: Any, kind: str) -> tuple[Path, Path]:
    """(first, next) files of the tool's own streaming step for the default context."""
    from rnnt_tui.core.progress import no_progress
    from rnnt_tui.core.stream.config import choose_contexts
    from rnnt_tui.core.stream.step_kinds import STEPS

    step = STEPS[kind](loaded, choose_contexts(loaded.path, loaded.model.encoder, None)[0])
    step.prepare(no_progress)
    step.close()
    assert step.path is not None
    suffix = {"onnx": ".onnx", "coreai": ".aimodel"}[kind]
    return step.path / f"encoder-first{suffix}", step.path / f"encoder-next{suffix}"


@pytest.fixture(scope="module")
def own_onnx(streaming: Any) -> tuple[Path, Path]:
    return _own(streaming, "onnx")


def _run(loaded: Any, against: str, packages: tuple[Path, ...] = (), role_map: Path | None = None) -> dict[str, Any]:
    from rnnt_tui.core.stream.compare import run_stream
    from rnnt_tui.core.stream.config import StreamRequest

    request = StreamRequest(loaded.path, CLIP, against, step_packages=packages, role_map=role_map)
    return run_stream(request, lambda e: None, loaded=loaded).to_json()


def _numbers(report: dict[str, Any]) -> list[Any]:
    """Every chunk's comparison without its timings (those differ run to run)."""
    return [{k: v for k, v in c.items() if k != "timing_ms"} for c in report["chunks"]]


def _same_as_own(own: dict[str, Any], given: dict[str, Any]) -> None:
    assert given["candidate"] == own["candidate"]
    assert len(own["chunks"]) >= 2
    assert _numbers(given) == _numbers(own)
    assert given["decode"] == own["decode"]
    assert any("roles" in n for n in given["candidate_notes"])


def _renamed(source: Path, out: Path) -> Path:
    import onnx

    model = onnx.load(str(source))
    graph = model.graph
    for value in [*graph.input, *graph.output]:
        value.name = RENAMED.get(value.name, value.name)
    for node in graph.node:
        node.input[:] = [RENAMED.get(n, n) for n in node.input]
        node.output[:] = [RENAMED.get(n, n) for n in node.output]
    onnx.save(model, str(out))
    return out


def test_onnx_step_gives_the_tools_own_numbers(streaming: Any, own_onnx: tuple[Path, Path]) -> None:
    _same_as_own(_run(streaming, "onnx"), _run(streaming, "onnx", own_onnx))


def test_one_onnx_file_runs_every_chunk(streaming: Any, own_onnx: tuple[Path, Path]) -> None:
    """NeMo's own export is one file: it runs the first chunk too (said in a note); from the second chunk on, the
    teacher-forced feed (the reference's caches in) is the tool's own next-chunk step's exactly."""
    own, single = _run(streaming, "onnx"), _run(streaming, "onnx", (own_onnx[1],))
    assert any("one package for every chunk" in n and "drop_extra_pre_encoded" in n for n in single["candidate_notes"])
    assert [c["teacher_forced"] for c in single["chunks"][1:]] == [c["teacher_forced"] for c in own["chunks"][1:]]


def test_renamed_onnx_refused_before_the_checkpoint_then_mapped(streaming: Any, own_onnx: tuple[Path, Path],
                                                                 tmp_path: Path) -> None:
    renamed = (_renamed(own_onnx[0], tmp_path / "vendor-first.onnx"),
               _renamed(own_onnx[1], tmp_path / "vendor-next.onnx"))
    bogus = tmp_path / "not-a-checkpoint.nemo"  # were the checkpoint restored first, the error would name this
    bogus.write_text("nothing")
    line = refusal_line(_cli(str(bogus), str(CLIP), "--against", "onnx", "--step", str(renamed[0]),
                             "--step", str(renamed[1]), "--json", timeout=600))
    assert renamed[0].name in line and "'x_in'" in line and "'state_a'" in line and "--map" in line
    assert "'length'" not in line and bogus.name not in line

    role_map = tmp_path / "map.json"
    role_map.write_text('{"x_in": "audio_signal", "state_a": "cache_last_channel", "y": "encoded", '
                        '"state_a_out": "cache_last_channel_next"}')
    mapped = _run(streaming, "onnx", renamed, role_map)
    assert any("x_in=audio_signal" in n for n in mapped["candidate_notes"])
    _same_as_own(_run(streaming, "onnx", own_onnx), mapped)


def test_every_lookahead_refused_for_a_dynamic_time_axis(streaming: Any, own_onnx: tuple[Path, Path]) -> None:
    """NeMo's ONNX export takes any chunk length, so it does not say which att context its mask was traced at:
    `--att-context all` is one line naming the file and why (exit 2); the default context runs as asked."""
    line = refusal_line(_cli(str(streaming.path), str(CLIP), "--against", "onnx", "--step", str(own_onnx[0]),
                             "--step", str(own_onnx[1]), "--att-context", "all", "--json", timeout=600))
    assert own_onnx[0].name in line and "dynamic time axis" in line and "--att-context L,R" in line


def test_a_step_of_the_wrong_kind_is_refused(tmp_path: Path) -> None:
    from rnnt_tui.core.errors import BadInputError
    from rnnt_tui.core.stream.package_io import package_roles

    package = tmp_path / "vendor.mlpackage"
    package.mkdir()
    with pytest.raises(BadInputError, match=r"Core ML package.*--against onnx.*--against mil or coreml"):
        package_roles((package,), None, "onnx")
    model = tmp_path / "vendor.onnx"
    model.write_bytes(b"\x00garbage")
    with pytest.raises(BadInputError, match=r"ONNX model.*--against coreai.*--against onnx"):
        package_roles((model,), None, "coreai")
    with pytest.raises(BadInputError, match=r"vendor.onnx.*not a readable ONNX model"):
        package_roles((model,), None, "onnx")
    model.write_bytes(b"")  # parses as an empty ModelProto: it was refused as lacking the input roles (see --map)
    with pytest.raises(BadInputError, match=r"vendor.onnx: is empty \(0 bytes\), not an ONNX model$"):
        package_roles((model,), None, "onnx")


@pytest.mark.skipif(coreai_problem(need_converter=True) is not None,
                    reason=f"Core AI cannot run here: {coreai_problem(need_converter=True)}")
def test_coreai_assets_give_the_tools_own_numbers(streaming: Any) -> None:
    assets = _own(streaming, "coreai")
    given = _run(streaming, "coreai", assets)
    assert given["candidate"].startswith("Core AI (")
    _same_as_own(_run(streaming, "coreai"), given)
