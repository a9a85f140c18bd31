"""Click options shared by several subcommands, each defined once (choices come from `core.names`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from rnnt_tui.core.corpus.subset import REST_RUNTIMES
from rnnt_tui.core.fuse import AS_SAVED, VALIDATION
from rnnt_tui.core.names import (
    CANDIDATE_RUNTIMES,
    COMPUTE_UNITS,
    DEFAULT_COMPUTE_UNITS,
    DEFAULT_PRECISION,
    PRECISIONS,
)

if TYPE_CHECKING:
    from rnnt_tui.core.corpus.subset import Subset

F = TypeVar("F", bound=Callable[..., Any])


class FiniteRange(click.FloatRange):
    """`click.FloatRange` that also refuses NaN (every comparison with it is false, so a range lets it through) and
    infinities: a usage error (exit 2), not a crash deep in the run."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def _candidate(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from rnnt_tui.core.pipeline.request import REFERENCE_RUNTIME
    from rnnt_tui.core.runtimes import RUNTIMES

    candidates = [name for name in RUNTIMES if name != REFERENCE_RUNTIME]
    if value not in candidates:
        raise click.BadParameter(f"{value!r} is not a candidate runtime; choose one of {', '.join(candidates)}")
    return value


def against(required: bool = True) -> Callable[[F], F]:
    return click.option("--against", required=required, callback=_candidate,
                        metavar="{" + ",".join(CANDIDATE_RUNTIMES) + "}",
                        help="The candidate runtime: onnx (ONNX Runtime), coreml (Core ML, macOS), mil (the Core ML "
                             "program in rnnt-tui's MIL interpreter, any OS), coreai (Core AI assets on Apple's Core "
                             "AI runtime: Linux x86_64 and macOS 26+).")


json_mode = click.option("--json", "json_mode", is_flag=True, help="Machine-readable output on stdout.")
compute_units = click.option("--compute-units", type=click.Choice(COMPUTE_UNITS), default=DEFAULT_COMPUTE_UNITS,
                             show_default=True, help="Core ML compute units.")
precision = click.option("--precision", type=click.Choice(PRECISIONS), default=DEFAULT_PRECISION,
                         show_default=True, help="Core ML conversion precision (also picks the default tolerances).")
runs = click.option("--runs", type=click.IntRange(1, 1000), default=5, show_default=True, help="Timed runs.")
warmup = click.option("--warmup", type=click.IntRange(0, 1000), default=1, show_default=True,
                      help="Untimed warm-ups.")
joint_mode = click.option("--joint-mode", type=click.Choice([VALIDATION, AS_SAVED]), default=VALIDATION,
                          show_default=True,
                          help="validation: fuse off, log_softmax off (raw logits, like exports); as-saved: the "
                               "checkpoint's own flags.")
packages = click.option("--packages", type=click.Path(file_okay=False), default=None,
                        help="A folder of existing .mlpackage/.mlmodelc files (or .aimodel assets with --against "
                             "coreai) to use instead of converting.")
subset = click.option("--subset", "subset_spec", default=None, metavar="first:N|every:K",
                      help="Corpus: run the --against candidate on these manifest entries only (the first N, or every "
                           "K-th from the first) and --rest on the others: Core AI on Linux takes seconds a clip. "
                           "Each row says what ran it; the report gives a row per candidate.")
rest = click.option("--rest", default=REST_RUNTIMES[0], show_default=True, type=click.Choice(REST_RUNTIMES),
                    help="With --subset: the candidate for the entries outside it.")


def parse_subset(spec: str | None, rest_runtime: str, candidate: str | None, stream: bool = False) -> Subset | None:
    """`--subset` and `--rest` read (None: no subset): a spec it cannot read, a rest that is the candidate itself
    or a streaming corpus is a usage error (exit 2) in the core's words (`Subset.problem`)."""
    if spec is None:
        return None
    from rnnt_tui.core.corpus.subset import Subset

    try:
        chosen = Subset.parse(spec, rest_runtime)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    problem = chosen.problem(candidate or "", stream)
    if problem is not None:
        raise click.UsageError(problem)
    return chosen


atol = click.option("--atol", default="", help="Absolute tolerance: one value, or per component: "
                                               "encoder=1e-2,joint=5e-2.")
rtol = click.option("--rtol", default="", help="Relative tolerance, same form as --atol.")


def _threads(_ctx: click.Context, _param: click.Parameter, value: int | None) -> None:
    """Record the choice for this process and the app's engine process (an env var it inherits)."""
    import os

    from rnnt_tui.core import threads

    if value is not None:
        threads.set_threads(value)
        os.environ[threads.ENV] = str(value)


threads = click.option(
    "--threads", type=click.IntRange(0, 256), default=None, expose_value=False, callback=_threads,
    metavar="N", help="Threads each runtime computes with (torch, ONNX Runtime, BLAS) [default: 1, or "
                      "$RNNT_TUI_THREADS; 0 = each library's own default]. One thread keeps timings stable on a busy "
                      "machine and speedups comparable.")
joint_chunk = click.option("--joint-chunk", type=click.IntRange(0, 100000), default=32, show_default=True,
                           help="Frames per joint chunk; 0 = the whole T x U grid at once.")


def settings(runs: int, warmup: int, joint_mode: str, precision: str = DEFAULT_PRECISION, atol: str = "",
             rtol: str = "", joint_chunk: int = 32) -> Any:
    """The pipeline `Settings` these options describe (a bad tolerance is a usage error)."""
    from rnnt_tui.core.pipeline.request import Settings
    from rnnt_tui.core.tolerances import parse_override, resolve

    try:
        tolerances = resolve(precision, parse_override(atol, "atol"), parse_override(rtol, "rtol"))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    return Settings(runs=runs, warmup=warmup, joint_mode=joint_mode, tolerances=tolerances,
                    joint_chunk_frames=joint_chunk, tolerances_given=bool(atol or rtol))
