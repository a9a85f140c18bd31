"""Timings under load: the thread count is chosen (and applied to torch, BLAS and ONNX Runtime), every timing
carries the threads, load and CPU count it was taken with, unreliable figures say so, and the decode is timed like
every other step."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rnnt_tui.core import threads
from rnnt_tui.core.pipeline.driver import run_steps
from rnnt_tui.core.timing import conditions_footer, measure


@pytest.fixture()
def _restore_threads() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    yield
    threads.set_threads(threads.DEFAULT_THREADS)
    torch.set_num_threads(before)


def test_a_noisy_figure_and_a_busy_machine_are_called_unreliable() -> None:
    calls = iter(range(100))

    def call() -> None:
        time.sleep(0.03 if next(calls) % 5 == 4 else 0.001)  # 2 of the 10 timed runs are slow

    _, timings = measure(call, runs=10, warmup=0)
    assert timings.threads is not None and timings.cpu_count and timings.load_1min is not None
    assert timings.warning is not None and "p90 is" in timings.warning, timings
    assert threads.reliability(1.0, 1.2, 5, 0.5, 2) is None
    busy = threads.reliability(1.0, 1.2, 5, 4.0, 2)
    assert busy is not None and "load 4.0 on 2 CPUs" in busy
    assert threads.reliability(1.0, 9.0, 1, None, None) is None  # one run has no spread to judge
    footer = conditions_footer([("encoder reference", timings)])
    assert footer[0].startswith(f"timed with {timings.threads} thread(s) per runtime")
    assert any(line.startswith("encoder reference: p90 is") for line in footer[1:])


@pytest.mark.usefixtures("_restore_threads")
def test_the_chosen_count_reaches_torch_blas_and_onnx_runtime() -> None:
    import torch
    from threadpoolctl import threadpool_info

    torch.set_num_threads(2)
    threads.set_threads(1)
    threads.apply()
    assert torch.get_num_threads() == 1 and threads.onnxruntime_threads() == 1
    assert all(pool["num_threads"] == 1 for pool in threadpool_info() if pool["user_api"] == "blas")
    assert threads.conditions()["threads"] == 1
    threads.set_threads(0)  # each library's own default: left as it is
    torch.set_num_threads(2)
    threads.apply()
    assert torch.get_num_threads() == 2


@pytest.mark.usefixtures("_restore_threads")
def test_run_reports_threads_and_load_with_every_timing_and_times_the_decode_like_a_step(
        capsys: pytest.CaptureFixture[str], checkpoints: dict[str, Path], clip: Path) -> None:
    from rnnt_tui.cli import main
    from rnnt_tui.cli.render import run_table
    from rnnt_tui.core.pipeline.pipeline import open_session
    from rnnt_tui.core.pipeline.request import Request, Settings

    code = main(["run", str(checkpoints["rnnt-char"]), str(clip), "--runs", "3", "--warmup", "1", "--threads", "1",
                 "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    for comp in data["components"]:
        timing = comp["timings"]
        assert timing["threads"] == 1 and timing["cpu_count"] and isinstance(timing["load_1min"], float), timing
        assert "warning" in timing
    session = open_session(Request(checkpoints["rnnt-char"], clip, None, settings=Settings(runs=3, warmup=1)))
    run_steps(session)
    decode = session.results["decode"].timings["reference"]
    assert decode is not None and (decode.runs, decode.warmup) == (3, 1)  # not one cold call
    assert decode.threads == 1
    assert "thread(s) per runtime" in str(run_table(session).caption)
