"""Start-up: time from typing `rnnt-tui` to its first frame on the demo, against a bare Textual hello-world app.

How: each run starts a fresh process in a pseudo-terminal (120 x 40, TERM=xterm-256color) and reads what it
writes. "First frame" is the moment the first full-screen update has been written: the cursor move to the last
row (`ESC[40;1H`) that every full repaint emits. The same rule times `bench/hello_app.py` (Header, Static,
Footer) in the same run; the two alternate order run by run, after one untimed warm-up of each (page cache).
The figure is median(rnnt-tui) / median(hello-world). rnnt-tui is the installed console script with no
arguments (the bundled demo, `--against onnx` on Linux), with its cache and state under bench/.work/.

A probe variant runs the same command with Textual's `App._display` wrapped to note, at the first frame, which
heavy modules (torch, nemo, coremltools, onnxruntime, ...) are already in `sys.modules`: the goal wants NeMo and
coremltools not yet imported. After the first frame each rnnt-tui run keeps reading until the status line says
"Ready" (NeMo imported, model restored, ONNX export served by the cache) and reports that time too.

Run:   python bench/startup.py [--runs 9] [--no-ready] [--max-load 1.5 --wait 0] [--bundle B]

`--bundle B` also times `rnnt-tui B` (a recorded bundle, e.g. `rnnt-tui record DEMO CLIP --out B --export onnx`)
to "Ready" in each run: nothing of NeMo runs, so that is the app's own cost of opening a replay.
Takes: ~15 s per run with --ready (default), ~3 s per run with --no-ready.
Writes bench/results/startup.json.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path
from typing import Any

from common import BENCH, HEAVY, PY, add_load_options, child_env, gated, median, save, spread

COLS, ROWS = 120, 40
LAST_ROW = f"\x1b[{ROWS};1H".encode()
READY = b"Ready \xc2\xb7"  # the status line once the session is prepared ("Ready · n: next step ...")
ANSI = re.compile(rb"\x1b(\[[0-9;?<>=$]*[ -/]*[@-~]|\][^\x07]*\x07|[@-Z\\-_])")


def rnnt_command(src: str | None = None, args: tuple[str, ...] = ()) -> list[str]:
    """The installed `rnnt-tui` console script, or (with --src) the same entry point from another checkout."""
    if src:
        return [PY, "-c", f"import sys; sys.path.insert(0, {src!r}); from rnnt_tui.cli import main; "
                          f"sys.exit(main({list(args)!r}))"]
    script = Path(PY).parent / "rnnt-tui"
    return [str(script), *args] if script.is_file() else [PY, "-m", "rnnt_tui", *args]


def run_in_pty(cmd: list[str], env: dict[str, str], want_ready: bool, timeout: float = 120.0) -> dict[str, Any]:
    """Start `cmd` in a fresh pty; seconds from spawn to the first full frame (and to "Ready" if asked)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    env = {**env, "TERM": "xterm-256color", "COLORTERM": "truecolor", "BENCH_T0": repr(time.time())}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
                            close_fds=True)
    os.close(slave)
    buf = bytearray()
    first_output = first_frame = ready = None
    deadline = start + timeout
    try:
        while time.perf_counter() < deadline:
            readable, _, _ = select.select([master], [], [], 0.02)
            if not readable:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:
                break
            now = time.perf_counter() - start
            if not chunk:
                break
            buf += chunk
            first_output = first_output if first_output is not None else now
            if first_frame is None and LAST_ROW in buf:
                first_frame = now
                if not want_ready:
                    break
            if want_ready and ready is None and READY in buf:
                ready = now
                break
    finally:
        stop(proc, master)
    if first_frame is None:
        text = ANSI.sub(b"", bytes(buf)).decode(errors="replace").strip()[-800:]
        raise RuntimeError(f"{cmd} wrote no full frame within {timeout:.0f} s; it wrote: {text!r}")
    return {"first_output_s": first_output, "first_frame_s": first_frame, "ready_s": ready}


def stop(proc: subprocess.Popen[bytes], master: int) -> None:
    """Quit the app politely (q), then by SIGTERM, then SIGKILL - only the process this script started."""
    with contextlib.suppress(OSError):
        os.write(master, b"q")
    deadline = time.perf_counter() + 3
    while proc.poll() is None and time.perf_counter() < deadline:
        with contextlib.suppress(OSError):
            if select.select([master], [], [], 0.05)[0]:
                os.read(master, 1 << 16)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=3)
    with contextlib.suppress(OSError):
        os.close(master)


# -- the probe: runs inside the rnnt-tui process ----------------------------------------------------------
def probe_main() -> None:
    """`rnnt-tui` with App._display wrapped: at the first frame, dump a timeline (seconds since spawn: interpreter
    ready, rnnt_tui.cli imported, the app's modules imported, App.run called, first frame) and which heavy modules
    are already in sys.modules to BENCH_PROBE_OUT."""
    t0 = float(os.environ["BENCH_T0"])
    marks = {"interpreter_ready": time.time() - t0}
    if os.environ.get("BENCH_SRC"):
        sys.path.insert(0, os.environ["BENCH_SRC"])
    out = Path(os.environ["BENCH_PROBE_OUT"])
    import textual.app

    original_display, original_run = textual.app.App._display, textual.app.App.run
    done = False

    def display(self: Any, screen: Any, renderable: Any) -> None:
        nonlocal done
        original_display(self, screen, renderable)
        if not done and renderable is not None:
            done = True
            import threading

            marks["first_frame"] = time.time() - t0
            loaded = {name: name in sys.modules for name in HEAVY}
            out.write_text(json.dumps({"first_frame_s": marks["first_frame"], "marks_s": marks,
                                       "heavy_loaded": loaded, "modules": len(sys.modules),
                                       "threads": threading.active_count()}))

    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        marks["app_run_called"] = time.time() - t0
        return original_run(self, *args, **kwargs)

    textual.app.App._display = display  # type: ignore[method-assign]
    textual.app.App.run = run  # type: ignore[method-assign]
    from rnnt_tui.cli import main as cli_main

    marks["cli_imported"] = time.time() - t0
    import rnnt_tui.app.app  # noqa: F401 - what `open` imports first; timed here

    marks["app_imported"] = time.time() - t0
    sys.exit(cli_main([]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--no-ready", action="store_true", help="stop at the first frame (do not wait for Ready)")
    add_load_options(parser)
    parser.add_argument("--src", help="measure the rnnt_tui package in this checkout instead of the installed one "
                        "(e.g. a copy with a proposed fix); results go to startup-src.json")
    parser.add_argument("--bundle", help="also time `rnnt-tui BUNDLE` to Ready (a recorded bundle: no NeMo), "
                        "in the same run")
    parser.add_argument("--tag", help="result file name (bench/results/TAG.json; default startup or startup-src)")
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe_main()
        return
    started, gate = gated(args)
    env = child_env("startup")
    want_ready = not args.no_ready
    hello = [PY, str(BENCH / "hello_app.py")]
    rnnt = rnnt_command(args.src)
    if args.src:
        env = {**env, "BENCH_SRC": args.src}
    # warm-up (untimed): page cache, the demo's hash memo and ONNX export in the bench cache
    run_in_pty(hello, env, False)
    run_in_pty(rnnt, env, True)
    bundle = rnnt_command(args.src, (args.bundle,)) if args.bundle else None
    if bundle is not None:
        run_in_pty(bundle, env, True)
    rows: list[dict[str, Any]] = []
    for i in range(args.runs):
        order = [("hello", hello), ("rnnt", rnnt)] if i % 2 == 0 else [("rnnt", rnnt), ("hello", hello)]
        row: dict[str, Any] = {}
        for name, cmd in order:
            row[name] = run_in_pty(cmd, env, want_ready and name == "rnnt")
        row["ratio"] = row["rnnt"]["first_frame_s"] / row["hello"]["first_frame_s"]
        if bundle is not None:
            row["bundle"] = run_in_pty(bundle, env, True)
        rows.append(row)
        print(f"run {i + 1}/{args.runs}: hello {row['hello']['first_frame_s'] * 1000:.0f} ms, rnnt-tui "
              f"{row['rnnt']['first_frame_s'] * 1000:.0f} ms (x{row['ratio']:.2f}), ready "
              f"{row['rnnt']['ready_s'] if row['rnnt']['ready_s'] is None else round(row['rnnt']['ready_s'], 2)} s",
              file=sys.stderr)
    probes = []
    for _ in range(3):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "probe.json"
            run_in_pty([PY, str(Path(__file__).resolve()), "--probe"], {**env, "BENCH_PROBE_OUT": str(out)}, False)
            probes.append(json.loads(out.read_text()) if out.is_file() else {"error": "no probe output"})
    hello_ms = [r["hello"]["first_frame_s"] * 1000 for r in rows]
    rnnt_ms = [r["rnnt"]["first_frame_s"] * 1000 for r in rows]
    ready = [r["rnnt"]["ready_s"] for r in rows if r["rnnt"]["ready_s"] is not None]
    loaded_any = {name: any(p.get("heavy_loaded", {}).get(name) for p in probes) for name in HEAVY}
    ratio = median(rnnt_ms) / median(hello_ms)
    summary = {
        "hello_first_frame_ms": spread(hello_ms),
        "rnnt_first_frame_ms": spread(rnnt_ms),
        "ratio_of_medians": round(ratio, 3),
        "ratio_per_run": spread([r["ratio"] for r in rows]),
        "rnnt_first_output_ms": spread([r["rnnt"]["first_output_s"] * 1000 for r in rows]),
        "hello_first_output_ms": spread([r["hello"]["first_output_s"] * 1000 for r in rows]),
        "rnnt_ready_s": spread(ready) if ready else None,
        "bundle_ready_s": spread([r["bundle"]["ready_s"] for r in rows if r.get("bundle", {}).get("ready_s")])
        if bundle is not None else None,
        "bundle_first_frame_ms": spread([r["bundle"]["first_frame_s"] * 1000 for r in rows if "bundle" in r])
        if bundle is not None else None,
        "heavy_loaded_at_first_frame": loaded_any,
        "probe_timeline_s": {k: round(median([p["marks_s"][k] for p in probes if k in p.get("marks_s", {})]), 3)
                             for k in ("interpreter_ready", "cli_imported", "app_imported", "app_run_called",
                                       "first_frame")},
        "goal": "ratio <= 2.5 and neither nemo nor coremltools imported at the first frame",
        "goal_met": bool(ratio <= 2.5 and not loaded_any.get("nemo") and not loaded_any.get("coremltools")),
    }
    doc = {"src": args.src, "summary": summary, "runs": rows, "probes": probes, "terminal": f"{COLS}x{ROWS}",
           "commands": {"hello": "python bench/hello_app.py", "rnnt": " ".join(rnnt),
                        "bundle": " ".join(bundle) if bundle else None}}
    save(args.tag or ("startup-src" if args.src else "startup"), doc, gate, started)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
