"""Shared helpers for the bench scripts: paths, machine description, load-average gate, memory probes, child
processes, clips and result files.

Not a benchmark itself. Every figure script runs its measurements in fresh child processes (`run_child`) where
import state or peak memory matters, and writes `bench/results/<name>.json` with the date, the machine, the load
average before and after, and the command that produced it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
MODELS = BENCH / ".models"
WORK = BENCH / ".work"  # private cache / state dirs of the children (gitignored)
PY = sys.executable
HEAVY = ("torch", "nemo", "coremltools", "onnxruntime", "onnx", "lightning", "pytorch_lightning", "numba",
         "sentencepiece", "scipy", "librosa")

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


# -- statistics -------------------------------------------------------------------------------------------
def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def spread(values: Sequence[float]) -> dict[str, Any]:
    """Median, min, max and the raw values (rounded), for a result file."""
    vals = [float(v) for v in values]
    return {"median": round(median(vals), 4), "min": round(min(vals), 4) if vals else None,
            "max": round(max(vals), 4) if vals else None, "n": len(vals), "values": [round(v, 4) for v in vals]}


# -- the machine ------------------------------------------------------------------------------------------
def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    with contextlib.suppress(OSError, AttributeError):
        mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
    from rnnt_tui.versions import all_versions

    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(mem_kib / 2**20, 1),
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "versions": all_versions()}


def wait_for_quiet(max_load: float = 1.5, budget_s: float = 0.0, poll_s: float = 20.0) -> dict[str, Any]:
    """Wait (up to `budget_s`) until the 1-minute load average is below `max_load`; say whether it was."""
    start = time.monotonic()
    first = loadavg()
    while os.getloadavg()[0] >= max_load and time.monotonic() - start < budget_s:
        time.sleep(poll_s)
    last = loadavg()
    return {"max_load": max_load, "load_at_request": first, "load_at_start": last,
            "waited_s": round(time.monotonic() - start, 1), "quiet": last[0] < max_load}


def add_load_options(parser: argparse.ArgumentParser, wait: float = 0.0) -> None:
    """`--max-load` and `--wait`: the load gate every figure script takes (`gated`)."""
    parser.add_argument("--max-load", type=float, default=1.5, help="the 1-minute load average a quiet machine is "
                                                                     "below (recorded with every figure)")
    parser.add_argument("--wait", type=float, default=wait, help="max seconds to wait for a quiet machine first")


def gated(args: argparse.Namespace) -> tuple[float, dict[str, Any]]:
    """Start the clock, then wait (up to `--wait` s) for the load to drop below `--max-load`: (started, gate),
    what `save` records."""
    started = time.monotonic()
    return started, wait_for_quiet(args.max_load, args.wait)


def ungated() -> tuple[float, dict[str, Any]]:
    """Start the clock and note the load, for a script that does not wait for a quiet machine: (started, gate),
    what `save` records."""
    return time.monotonic(), {"load_before": loadavg()}


# -- memory -----------------------------------------------------------------------------------------------
def _status_kib(field: str) -> int:
    match = re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text())
    return int(match.group(1)) if match else 0


def rss_mib() -> float:
    return _status_kib("VmRSS") / 1024


def peak_rss_mib() -> float:
    """VmHWM: the process's peak resident set since start (or since the last `reset_peak_rss`)."""
    return _status_kib("VmHWM") / 1024


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, `echo 5 > /proc/self/clear_refs`)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# -- child processes --------------------------------------------------------------------------------------
def child_env(tag: str, fresh_cache: bool = False, cache: Path | None = None) -> dict[str, str]:
    """An environment whose rnnt-tui cache and state live under bench/.work/<tag> (never the user's)."""
    import shutil

    root = WORK / tag
    cache_dir = cache or root / "cache"
    if fresh_cache and cache_dir.exists():
        shutil.rmtree(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    (root / "state").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    # A user's installed tool runs from byte-code after its first launch; with PYTHONDONTWRITEBYTECODE (set in some
    # sandboxes) every launch would compile rnnt_tui's modules while Textual's come compiled, skewing the ratio.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update({"RNNT_TUI_CACHE_DIR": str(cache_dir), "RNNT_TUI_STATE_DIR": str(root / "state"),
                "NEMO_TELEMETRY_DISABLED": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"})
    return env


def run_child(script: Path, args: Sequence[str], env: dict[str, str] | None = None,
              timeout: float = 3600) -> dict[str, Any]:
    """Run `python script --child args...` in a fresh process; its last stdout line is a JSON object."""
    cmd = [PY, str(script), "--child", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=str(REPO))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
        raise RuntimeError(f"child {shlex.join(cmd)} exited {proc.returncode}:\n{tail}")
    out: dict[str, Any] = json.loads(lines[-1])
    return out


def emit(payload: dict[str, Any]) -> None:
    """A child's answer: one JSON line on stdout."""
    sys.stdout.write(json.dumps(payload, default=str) + "\n")
    sys.stdout.flush()


# -- inputs -----------------------------------------------------------------------------------------------
def speech_like(seconds: float, rate: int = 16000, seed: int = 0) -> Any:
    """`seconds` of the bundled demo clips, concatenated and repeated (real speech, deterministic)."""
    import numpy as np

    from rnnt_tui.core.audio import load_audio
    from rnnt_tui.paths import demo_dir

    clips = [load_audio(p, rate).samples for p in sorted(demo_dir().glob("*.wav"))]
    need = int(seconds * rate)
    gap = np.zeros(rate // 4, dtype=np.float32)
    parts: list[Any] = []
    while sum(len(p) for p in parts) < need:
        for clip in clips:
            parts.extend([clip, gap])
    rng = np.random.default_rng(seed)
    signal = np.concatenate(parts)[:need]
    return (signal + 1e-3 * rng.standard_normal(need)).astype(np.float32)


# -- results ----------------------------------------------------------------------------------------------
def command_line(argv: Sequence[str] | None = None) -> str:
    args = list(sys.argv[1:] if argv is None else argv)
    script = Path(sys.argv[0]).resolve()
    try:
        script_s = str(script.relative_to(REPO))
    except ValueError:
        script_s = str(script)
    return shlex.join(["python", script_s, *args])


def save(name: str, payload: dict[str, Any], gate: dict[str, Any] | None = None,
         started: float | None = None) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": name, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "command": command_line(), "machine": machine(), "load": {"gate": gate, "at_end": loadavg()},
           "elapsed_s": round(time.monotonic() - started, 1) if started is not None else None, **payload}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    print(f"wrote {path.relative_to(REPO)}", file=sys.stderr)
    return path


def model_path(name: str) -> Path:
    """`demo` (bundled) or a model built by bench/models.py."""
    if name == "demo":
        from rnnt_tui.paths import demo_checkpoint

        return demo_checkpoint()
    path = MODELS / f"{name}.nemo"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: build it first with `python bench/models.py {name}`")
    return path
