"""Pilot tests of Core AI in the real app (its engine in a child process, Apple's Core AI runtime, real NeMo): where
the candidate runs and the `--packages` asset inventory in the Runtimes tab, `d` searching the drift with Apple's
coreai_torch.debugging and its screen, the refusals where the search cannot run, and the precision screen asking
Core AI (issue 19, points 3 and 5). Only the joint is a Core AI asset here: Apple's Linux runtime is slow."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from test_app import busy, make_app, ready, screen_text, settle, wait_for
from textual.message import Message

from rnnt_tui.app.messages import JobDone
from rnnt_tui.core.coreai.platform import coreai_problem, where_it_runs

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")]
needs_coreai = pytest.mark.skipif(coreai_problem(need_converter=True) is not None,
                                  reason=f"Core AI cannot run here: {coreai_problem(need_converter=True)}")


@pytest.fixture(scope="module")
def char(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A char RNNT checkpoint built from its config (only this kind: the session's set builds five) and the model
    restored from it."""
    import factory

    from rnnt_tui.core.checkpoint import restore

    root = tmp_path_factory.mktemp("app-coreai")
    path = factory.build("rnnt-char", root / "rnnt-char.nemo", root / "work")
    return path, restore(path)


@pytest.fixture(scope="module")
def joint_assets(char: tuple[Path, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The char model's joint as a Core AI asset (converted once) and a file that is no asset, in one folder."""
    from rnnt_tui.core.coreai.convert import convert_components

    folder = tmp_path_factory.mktemp("app-assets")
    for asset in convert_components(char[1], components=["joint"]):
        shutil.copytree(asset.path, folder / "joint.aimodel")
    (folder / "README.txt").write_text("notes")
    return folder


def _done(messages: list[Message], job: str) -> list[JobDone]:
    return [m for m in messages if isinstance(m, JobDone) and m.job == job]


@needs_coreai
async def test_core_ai_assets_where_they_run_and_the_drift_search(char: tuple[Path, Any], clip: Path,
                                                                  joint_assets: Path,
                                                                  planted: dict[str, Any]) -> None:
    from rnnt_tui.app.screens.coreai_drift import CoreAIDriftScreen, DriftDone
    from rnnt_tui.app.screens.precision import WrappedTable
    from rnnt_tui.app.widgets.runtime_panel import RuntimePanel

    messages: list[Message] = []
    app = make_app(char[0], clip, against="coreai", packages_dir=str(joint_assets), runs=1, warmup=0)
    async with app.run_test(size=(140, 45), message_hook=messages.append) as pilot:
        await ready(pilot)
        where = where_it_runs()
        assert where in app.sub_title  # the header says which runtime runs the candidate
        await pilot.press("5")
        await pilot.pause(0.2)
        panel = " ".join(str(app.query_one("#open-candidate").render()).split())
        assert where in panel and f"from {joint_assets}" in panel, panel
        assert "1 mapped, 1 skipped" in panel and "joint.aimodel:main → joint" in panel
        assert "README.txt skipped (not a Core AI asset)" in panel
        assert app.query_one(RuntimePanel).options.packages_dir == str(joint_assets)

        assert "rnnt.coreai_drift" in {b.id for b in app._bindings.get_bindings_for_key("d")}
        await pilot.press("1", "right_square_bracket", "right_square_bracket", "right_square_bracket")
        assert app.pipeline.selected == "joint"
        await pilot.press("d")  # nothing out of tolerance: the selected component, on demand (its step runs first)
        assert isinstance(app.screen, CoreAIDriftScreen) and app.screen.components == ["joint"]
        screen = app.screen
        await wait_for(pilot, lambda: screen.report is not None and not busy(app), "the drift search", timeout=600)
        await pilot.pause(0.2)
        report = screen.report
        assert report is not None and report["runs_on"] == where
        joint = report["drift"]["joint"]
        assert joint["first"] is None and joint["compared"] > 0 and "coreai_torch.debugging" in joint["tool"]
        assert app.state.results["joint"].status == "done"  # the step ran first, through the pipeline
        text = " ".join(screen_text(app).split())
        assert "No op drifts beyond the per-op tolerance" in text and where in text
        assert "not those files" in text  # the assets in use are the user's: the search says what it compared
        assert _done(messages, "drift")[-1].text == "Core AI drift: no op drifts"

        # the screen drawing a real report that names a drift (a conversion with a planted change, found with
        # Apple's comparison in this process): the first op, its NeMo module and the PyTorch line on screen
        screen.post_message(DriftDone({**report, "drift": {"joint": planted}}))
        await pilot.pause(0.3)
        rows = screen.query_one("#coreai-drift-components", WrappedTable).rows
        assert rows[0][0] == "joint" and str(rows[0][2]) == planted["first"]["node"]
        assert rows[0][3] == planted["first"]["module"] and rows[0][4] == planted["first"]["source"]
        ops = screen.query_one("#coreai-drift-ops", WrappedTable).rows
        assert [op[1] for op in ops] == [f["node"] for f in planted["failing"][:len(ops)]] and ops
        assert "Drift starts in: joint" in " ".join(screen_text(app).split())
        await pilot.press("escape")
        assert not isinstance(app.screen, CoreAIDriftScreen)


@pytest.fixture(scope="module")
def planted(char: tuple[Path, Any]) -> dict[str, Any]:
    """Apple's comparison on the char model's joint converted with one weight changed (`find_drift`'s `perturb`;
    outside the test's event loop: the comparison runs its own)."""
    import numpy as np
    import torch

    from rnnt_tui.core.coreai.drift import find_drift

    loaded = char[1]
    model = loaded.model
    last = len(model.joint.joint_net) - 1
    rng = np.random.default_rng(0)
    inputs = {"encoded": rng.standard_normal((1, int(model.joint.encoder_hidden), 5)).astype(np.float32),
              "decoder_output": rng.standard_normal((1, int(model.decoder.pred_hidden), 3)).astype(np.float32)}

    def perturb(wrapper: Any) -> None:
        with torch.no_grad():
            wrapper.joint.joint_net[last].weight[0, 0] += 0.5

    report = find_drift(loaded, "joint", inputs, perturb=perturb)
    assert report.first is not None and report.first.module == f"joint.joint_net.{last} (Linear)"
    return report.to_json()


async def test_the_drift_key_says_why_it_cannot_run() -> None:
    """Another candidate: d says the search is Core AI's and where to choose it; Core AI unavailable: its reason.
    Nothing starts either way."""
    from rnnt_tui.core.pipeline.pipeline import RuntimeChoice

    app = make_app(against="onnx")
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("d")
        await pilot.pause(0.2)
        told = [n for n in app._notifications if n.title == "Core AI drift search"]
        assert told and "the open candidate is ONNX Runtime" in told[-1].message and "Runtimes tab" in told[-1].message
        assert not busy(app) and app.screen is app.screen_stack[0]
        reason = "coreai-core has no wheel for Linux on aarch64"
        app.state.availability["coreai"] = RuntimeChoice("coreai", "Core AI", ok=False, reason=reason)
        await pilot.press("d")
        await pilot.pause(0.2)
        told = [n for n in app._notifications if n.title == "Core AI drift search"]
        assert told[-1].message == f"Core AI cannot run here: {reason}" and told[-1].severity == "warning"
        assert not busy(app)


@needs_coreai
async def test_the_precision_screen_asks_core_ai_when_the_candidate_is_core_ai(char: tuple[Path, Any], clip: Path,
                                                                              joint_assets: Path) -> None:
    """p on a Core AI session opens on Core AI (c cycles back to the MIL interpreter); r either certifies on Core
    AI or says why this build cannot - never the interpreter's figures under Core AI's name."""
    from rnnt_tui.app.engine import precision_problem
    from rnnt_tui.app.screens.precision import PrecisionScreen, WrappedTable

    messages: list[Message] = []
    app = make_app(char[0], clip, against="coreai", packages_dir=str(joint_assets), runs=1, warmup=0)
    async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
        await ready(pilot)
        await pilot.press("p")
        screen = app.screen
        assert isinstance(screen, PrecisionScreen) and screen.runtime == "coreai"
        assert "precision.runtime" in {b.id for b in screen._bindings.get_bindings_for_key("c")}
        text = " ".join(screen_text(app).split())
        assert "conversion vs its fp32 program, Core AI" in text and where_it_runs() in text
        problem = precision_problem("coreai")
        await pilot.press("r")
        await settle(pilot)
        await pilot.pause(0.2)
        summary = " ".join(str(screen.query_one("#precision-summary").render()).split())
        if problem is not None:
            assert summary == f"Core AI: not certified - {problem}"
            assert all(t.row_count == 0 for t in screen.query(WrappedTable))
            assert _done(messages, "precision")[-1].text == "Precision: not certified"
        else:
            assert "status" in summary
        await pilot.press("c")
        text = " ".join(screen_text(app).split())
        assert screen.runtime == "mil" and "Core ML program, MIL interpreter" in text
        await pilot.press("escape")
