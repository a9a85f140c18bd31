"""The headless commands' exit codes, in one place (the README's table is generated from these docstrings)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a headless `rnnt-tui` command's exit status means."""

    OK = 0
    """Done; for `compare`, every component within tolerance and the transcripts agree."""
    MISMATCH = 1
    """`compare` ran and found a component out of tolerance (or a shape mismatch, or NaN/Inf); `corpus`: a gate was
    breached; `precision`: hazards found."""
    BAD_INPUT = 2
    """A file given could not be used (missing, corrupt, wrong kind, not a transducer, a tampered bundle); stderr
    names it. `corpus`: nothing could be evaluated."""
    UNAVAILABLE = 3
    """The chosen runtime cannot run here (for example Core ML predictions need macOS); stderr says why."""
    FAILED = 4
    """A step failed unexpectedly (a runtime raised mid-run), or preparing the candidate crashed (an export or
    conversion raised; the reference still ran); stderr has the error."""
    INTERRUPTED = 130
    """Stopped with Ctrl-C; no partial cache entry is left behind."""


def exit_code_for(status: str) -> ExitCode:
    """The exit code of a comparison's overall status (`ok`, `mismatch`, `failed`, `unavailable`)."""
    return {"ok": ExitCode.OK, "mismatch": ExitCode.MISMATCH, "failed": ExitCode.FAILED,
            "unavailable": ExitCode.UNAVAILABLE}.get(status, ExitCode.FAILED)


def sweep_exit_code(statuses: list[str]) -> ExitCode:
    """A compute-unit sweep: 3 when Core ML could run on no unit, else 1 when any unit mismatches, else 4 when
    any failed, else 0."""
    if not statuses or all(s == "unavailable" for s in statuses):
        return ExitCode.UNAVAILABLE
    if "mismatch" in statuses:
        return ExitCode.MISMATCH
    if "failed" in statuses:
        return ExitCode.FAILED
    return ExitCode.OK
