"""The compute-unit sweep, driven on Linux with real runtimes: the reference runs once whatever the number of
units (and its replay gives the very diffs a direct comparison gives), every unit keeps its row with its error,
and every candidate is closed. The MIL interpreter stands in for Core ML where a unit must run here: it executes
the same packages through the same binding code."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from rnnt_tui.core.pipeline.driver import run_steps
from rnnt_tui.core.runtimes.coreml_runtime import CoreMLRuntime
from rnnt_tui.core.runtimes.mil_runtime import MilRuntime
from rnnt_tui.core.runtimes.torch_runtime import TorchRuntime

UNITS = ("CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL")


class CountingTorch(TorchRuntime):
    """The real reference, counting the calls that reach it."""

    calls = 0

    def bind(self, component: str, inputs: Any) -> Any:
        from rnnt_tui.core.runtimes.base import FunctionCall

        bound = super().bind(component, inputs)

        def call() -> Any:
            type(self).calls += 1
            return bound()

        return FunctionCall(call, bound.outputs)

    def decoder_step(self, token: int, state: Any) -> Any:
        type(self).calls += 1
        return super().decoder_step(token, state)

    def joint_step(self, frame: Any, decoder_output: Any) -> Any:
        type(self).calls += 1
        return super().joint_step(frame, decoder_output)


class ClosingMil(MilRuntime):
    closed: ClassVar[list[str]] = []

    def close(self) -> None:
        type(self).closed.append(self.options.compute_units)
        super().close()


class ClosingCoreML(CoreMLRuntime):
    closed: ClassVar[list[str]] = []

    def close(self) -> None:
        type(self).closed.append(self.options.compute_units)
        super().close()


@pytest.fixture(scope="module")
def base(loaded_model: Callable[[str], Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A MIL comparison on the tiny char model over a 0.5 s clip (one timed run), with the counting reference."""
    import torch
    from conftest import write_wav

    from rnnt_tui.core.audio import load_audio
    from rnnt_tui.core.fuse import VALIDATION
    from rnnt_tui.core.options import RuntimeOptions
    from rnnt_tui.core.pipeline.driver import prepare_session
    from rnnt_tui.core.pipeline.facts import NemoFacts
    from rnnt_tui.core.pipeline.request import Settings

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny LSTM step: threads only contend on a shared runner
    loaded = loaded_model("rnnt-char")
    facts = NemoFacts(loaded, VALIDATION)
    audio = load_audio(write_wav(tmp_path_factory.mktemp("sweep") / "short.wav", seconds=0.5), 16000)
    candidate = MilRuntime(loaded, RuntimeOptions())
    yield prepare_session(facts, audio, CountingTorch(loaded), candidate, Settings(runs=1, warmup=0))
    torch.set_num_threads(threads)


def test_reference_runs_once_and_replays_the_same_diffs(base: Any) -> None:
    from rnnt_tui.core.pipeline.session import Session
    from rnnt_tui.core.sweep import sweep

    alone = Session(base.facts, base.audio, base.reference, None, base.settings, base.prepare_reports)
    CountingTorch.calls = 0
    run_steps(alone)
    reference_calls = CountingTorch.calls
    CountingTorch.calls = 0
    rows = sweep(base, units=("CPU_ONLY", "ALL"), load_timing=False, runtime=ClosingMil)
    assert reference_calls > 0
    assert CountingTorch.calls == reference_calls, "the reference ran more than once"
    assert [r.compute_units for r in rows] == ["CPU_ONLY", "ALL"] and [r.status for r in rows] == ["ok", "ok"]

    direct = Session(base.facts, base.audio, base.reference, base.candidate, base.settings, base.prepare_reports)
    run_steps(direct)
    for row in rows:
        assert set(row.components) == {"preprocessor", "encoder", "decoder", "joint"}
        for name, comp in row.components.items():
            worst = max((c.stats.max_abs for c in direct.results[name].comparisons if c.stats), default=None)
            assert worst is not None and comp["worst_max_abs"] == worst, name
            assert comp["reference_median_ms"] > 0 and comp["speedup"] is not None
        assert direct.decode_comparison is not None
        assert row.transcript == direct.decode_comparison.candidate_text
    reference_ms = [{n: c["reference_median_ms"] for n, c in r.components.items()} for r in rows]
    assert reference_ms[0] == reference_ms[1], "each row's speedup must be against the same reference run"


def test_out_of_tolerance_components_get_a_drift_search_or_its_reason(base: Any) -> None:
    """With every tolerance at zero the MIL program's float32 arithmetic leaves the reference's somewhere: those
    components mismatch and each gets a drift search (here: the reason Core ML cannot run one)."""
    from dataclasses import replace

    from rnnt_tui.core.pipeline.session import Session
    from rnnt_tui.core.sweep import sweep
    from rnnt_tui.core.tolerances import Tolerance

    strict = replace(base.settings, tolerances={k: Tolerance(0.0, 0.0) for k in base.settings.tolerances},
                     tolerances_given=True)  # as --atol 0 --rtol 0: the user's, not the programs' own
    session = Session(base.facts, base.audio, base.reference, base.candidate, strict, base.prepare_reports)
    row, = sweep(session, units=("ALL",), load_timing=False, runtime=ClosingMil, drift=True)
    mismatched = {n for n, c in row.components.items() if c["status"] == "mismatch"}
    assert row.status == "mismatch" and mismatched
    assert set(row.drift) == mismatched
    if sys.platform != "darwin":
        assert all("drift searches need macOS" in entry["error"] for entry in row.drift.values())


def test_a_unit_whose_runtime_fails_keeps_its_row_and_is_closed(base: Any, tmp_path: Path) -> None:
    from dataclasses import replace

    from rnnt_tui.core.sweep import sweep

    broken = replace(base.candidate.options, packages_dir=str(tmp_path / "no-such-folder"))
    base.candidate.options = broken
    try:
        ClosingMil.closed.clear()
        CountingTorch.calls = 0
        rows = sweep(base, units=UNITS, load_timing=False, runtime=ClosingMil)
    finally:
        base.candidate.options = replace(broken, packages_dir=None)
    assert [r.status for r in rows] == ["failed"] * 4
    assert all("no-such-folder" in (r.error or "") and r.traceback for r in rows)
    assert ClosingMil.closed == list(UNITS)
    assert CountingTorch.calls == 0, "no unit could run, so the reference must not have run"


@pytest.mark.skipif(sys.platform == "darwin", reason="checks the rows where Core ML cannot run")
def test_core_ml_units_unavailable_here_keep_rows_with_the_reason(base: Any) -> None:
    from rnnt_tui.core.sweep import sweep
    from rnnt_tui.exit_codes import ExitCode, sweep_exit_code

    ClosingCoreML.closed.clear()
    CountingTorch.calls = 0
    rows = sweep(base, units=UNITS, runtime=ClosingCoreML)
    assert CountingTorch.calls == 0, "no unit could run, so the reference must not have run"
    assert [r.compute_units for r in rows] == list(UNITS)
    assert all(r.status == "unavailable" and "need macOS" in (r.error or "") for r in rows)
    assert ClosingCoreML.closed == list(UNITS), "a candidate was not closed"
    assert sweep_exit_code([r.status for r in rows]) == ExitCode.UNAVAILABLE


def test_placements_keep_each_components_error(loaded_model: Callable[[str], Any], tmp_path: Path) -> None:
    """A compute plan that cannot be had for one component (here: not a compiled model) is that component's error;
    the platform-wide refusal (not macOS 14.4+) replaces the whole placement with its reason."""
    from rnnt_tui.core.options import RuntimeOptions
    from rnnt_tui.core.sweep import placements

    runtime = CoreMLRuntime(loaded_model("rnnt-char"), RuntimeOptions())
    runtime.compiled_paths = {"encoder": tmp_path / "encoder.mlpackage"}
    got = placements(runtime, "ALL")
    if sys.platform == "darwin":
        assert "compiled model (.mlmodelc)" in got["encoder"]["error"]
    else:
        assert set(got) == {"unavailable"} and "need macOS" in got["unavailable"]


def test_sweep_details_show_placement_and_never_name_an_unconfirmed_first_op() -> None:
    from types import SimpleNamespace

    from rnnt_tui.cli.sweep_details import placement_rows
    from rnnt_tui.core.sweep.verdict import drift_verdict

    row = SimpleNamespace(compute_units="CPU_AND_NE", placement={
        "encoder": {"ops": 10, "op_share": {"CPU": 0.3, "GPU": 0.0, "NE": 0.7}},
        "decoder": {"error": "Core ML refused"}}, drift={})
    assert placement_rows([row]) == [("CPU_AND_NE", "encoder", "CPU 30% GPU 0% NE 70% of 10 ops"),
                                     ("CPU_AND_NE", "decoder", "no compute plan: Core ML refused")]
    unconfirmed = {"first": None, "compared": 1, "load_failures": ["probe refused"],
                   "failing": [{"op_type": "add", "output": "c", "max_abs": 0.5, "confirmed": False}]}
    text = drift_verdict(unconfirmed)
    assert "no first op named" in text and "probe refused" in text and "first drifting op" not in text
    confirmed = {**unconfirmed, "first": "c", "load_failures": []}
    assert drift_verdict(confirmed).startswith("first drifting op: add c")
    assert drift_verdict({"error": "no Mac"}) == "no search: no Mac"
