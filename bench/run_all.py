"""Runs every figure script in turn (each waits for a quiet machine first), then prints the README section.

Run:   python bench/run_all.py [--wait 1800] [--max-load 1.5] [--quick]
Takes: ~1.5-2 h on a 2-core machine (most of it: the Parakeet-size restores, exports and conversion);
--quick runs each script at reduced size (~15 min) as a smoke test and writes bench/results/ all the same.
Builds the two large models first if they are missing (bench/models.py).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from common import BENCH, MODELS, PY, REPO, add_load_options

FULL = [
    ["startup.py"],
    ["diff_throughput.py"],
    ["timing_fidelity.py"],
    ["cache_hits.py"],
    ["joint_memory.py"],
    ["scaling.py"],
    ["stalls.py"],
]
QUICK = [
    ["startup.py", "--runs", "3", "--no-ready"],
    ["diff_throughput.py", "--mib", "64", "--reps", "2"],
    ["timing_fidelity.py", "--rounds", "3"],
    ["cache_hits.py", "--models", "demo,conformer-120m", "--warm", "2"],
    ["joint_memory.py", "--seconds", "5,60", "--reps", "1", "--runs", "1", "--warmup", "0"],
    ["scaling.py", "--models", "demo,conformer-120m", "--seconds", "5,15"],
    ["stalls.py", "--models", "demo", "--runs", "1"],
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_load_options(parser, wait=1800)  # passed on: each script waits for a quiet machine
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if not all((MODELS / f"{m}.nemo").is_file() for m in ("conformer-120m", "parakeet-0.6b")):
        subprocess.run([PY, str(BENCH / "models.py")], check=True, cwd=REPO)
    for step in QUICK if args.quick else FULL:
        cmd = [PY, str(BENCH / step[0]), *step[1:], "--wait", str(args.wait), "--max-load", str(args.max_load)]
        print(f"== {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
        start = time.monotonic()
        subprocess.run(cmd, check=True, cwd=REPO)
        print(f"== {step[0]} took {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
    subprocess.run([PY, str(BENCH / "report.py")], check=True, cwd=REPO)


if __name__ == "__main__":
    main()
