"""Third-party streaming step packages (`stream --step PKG --map FILE`): tensors mapped to roles by name where the
tool knows the names, by the user's map where it does not, and refused (one line naming them, exit 2) otherwise.

The packages are the tool's own streaming step for the session's small `streaming` model, converted here and then
renamed with coremltools (`ct.utils.rename_feature`) so their names are ones no exporter uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_stream_cli import _cli, refusal_line

ROOT = Path(__file__).parents[1]
CLIP = ROOT / "assets" / "demo" / "hello-world.wav"
RENAMED = {"features": "x_in", "cache_last_channel": "state_a", "cache_last_time": "state_b",
           "encoded": "y", "cache_last_channel_next": "state_a_out", "cache_last_time_next": "state_b_out"}


@pytest.fixture(scope="module")
def renamed(streaming: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(first-chunk package, next-chunk package) with the names in RENAMED."""
    import coremltools as ct

    from rnnt_tui.core.progress import no_progress
    from rnnt_tui.core.stream.config import choose_contexts
    from rnnt_tui.core.stream.steps import MilStreamStep

    step = MilStreamStep(streaming, choose_contexts(streaming.path, streaming.model.encoder, None)[0])
    step.prepare(no_progress)
    built = step.path
    assert built is not None
    out = tmp_path_factory.mktemp("thirdparty")
    paths = []
    for phase in ("first", "next"):
        model = ct.models.MLModel(str(built / f"encoder-{phase}.mlpackage"), skip_model_load=True)
        spec = model.get_spec()
        for old, new in RENAMED.items():
            ct.utils.rename_feature(spec, old, new)
        target = out / f"vendor-{phase}.mlpackage"
        ct.models.MLModel(spec, weights_dir=model.weights_dir, skip_model_load=True).save(str(target))
        paths.append(target)
    return paths[0], paths[1]


def _run(loaded: Any, packages: tuple[Path, ...], role_map: Path | None, context: str | None = None) -> Any:
    from rnnt_tui.core.stream.compare import run_stream
    from rnnt_tui.core.stream.config import StreamRequest

    request = StreamRequest(loaded.path, CLIP, "mil", context, step_packages=packages, role_map=role_map)
    return run_stream(request, lambda e: None, loaded=loaded)


def test_unknown_names_refused_naming_them(streaming: Any, renamed: tuple[Path, Path]) -> None:
    line = refusal_line(_cli(str(streaming.path), str(CLIP), "--against", "mil", "--step", str(renamed[0]),
                             "--step", str(renamed[1]), "--json", timeout=600))
    assert renamed[0].name in line and "'x_in'" in line and "'state_a'" in line and "--map" in line
    assert "'length'" not in line  # a name the tool knows is mapped by name, not reported


def test_map_with_an_unknown_role_refused(streaming: Any, renamed: tuple[Path, Path], tmp_path: Path) -> None:
    from rnnt_tui.core.errors import BadInputError

    bad = tmp_path / "map.json"
    bad.write_text(json.dumps({"x_in": "audio", "state_a": "cache_last_channel"}))
    with pytest.raises(BadInputError, match=r"unknown role\(s\) audio;"):
        _run(streaming, renamed, bad)


def _role_map(tmp_path: Path) -> Path:
    role_map = tmp_path / "map.yaml"  # YAML here; JSON is read the same way
    role_map.write_text("x_in: audio_signal\nstate_a: cache_last_channel\nstate_b: cache_last_time\n"
                        "y: encoded\nstate_a_out: cache_last_channel_next\nstate_b_out: cache_last_time_next\n")
    return role_map


def test_mapped_package_streams_like_nemo(streaming: Any, renamed: tuple[Path, Path], tmp_path: Path) -> None:
    role_map = _role_map(tmp_path)
    report = _run(streaming, renamed, role_map).to_json()
    assert report["candidate"] == "Core ML program, MIL interpreter"
    assert any("x_in=audio_signal" in n and renamed[0].name in n for n in report["candidate_notes"])
    chunks = report["chunks"]
    assert len(chunks) >= 2 and all(c["ok"] for c in chunks)
    assert all(c["free_running"]["outputs"][0]["max_abs"] < 1e-3 for c in chunks)
    assert report["decode"]["candidate_text"] == report["decode"]["reference_text"]


def test_every_lookahead_runs_the_one_context_the_package_declares(streaming: Any, renamed: tuple[Path, Path],
                                                                    tmp_path: Path) -> None:
    """`--att-context all` with fixed-shape packages built at [70, 13] (the model also has [70, 1]): that context
    runs, and one note says the package declares it only (its chunk frames) and which context did not run."""
    from factory import STREAMING_ATT_CONTEXTS

    built, other = STREAMING_ATT_CONTEXTS
    report = _run(streaming, renamed, _role_map(tmp_path), "all").to_json()
    assert report["att_context_size"] == built and "contexts" not in report
    (note,) = [n for n in report["notes"] if "--att-context all" in n]
    assert renamed[0].name in note and f"{built} only" in note and f"not run at {other}" in note
    assert all(c["ok"] for c in report["chunks"])


def test_a_package_of_another_context_is_refused_naming_the_one_to_give(streaming: Any, renamed: tuple[Path, Path],
                                                                         tmp_path: Path) -> None:
    from factory import STREAMING_ATT_CONTEXTS

    from rnnt_tui.core.errors import BadInputError

    built, other = STREAMING_ATT_CONTEXTS
    with pytest.raises(BadInputError) as caught:
        _run(streaming, renamed, _role_map(tmp_path), ",".join(map(str, other)))
    message = str(caught.value)
    assert caught.value.path == renamed[0] and f"not att context {other}'s" in message
    assert f"give --att-context {built[0]},{built[1]}" in message and "\n" not in message
