#!/usr/bin/env bash
# Set up rnnt-tui from a fresh checkout and open it on the bundled demo.
#   bash scripts/setup.sh                 # venv in .venv, install, open the app
#   bash scripts/setup.sh --install-only  # just install (CI uses this)
#   bash scripts/setup.sh --light         # replay machines: no torch, no NeMo (replay, the MIL interpreter, Core ML)
# RNNT_TUI_VENV chooses the virtualenv folder (default .venv); PYTHON the interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${RNNT_TUI_VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
# Core AI (coreai-core / coreai-torch) installs only where Apple ships wheels; say so either way, in one line.
coreai_line() {
  "$venv/bin/python" -c 'from rnnt_tui.core.coreai.platform import coreai_problem as p; r = p()
print(f"Core AI: not installed here ({r})" if r else "Core AI: installed (Apple Core AI runtime, coreai-core)")'
}
if [ "${1:-}" = "--light" ]; then
  # the base dependencies (see pyproject.toml) and Core AI's runtime where it has wheels: replays bundles recorded
  # elsewhere; add ".[onnx]" for ONNX
  "$venv/bin/python" -m pip install --quiet -c constraints.txt -e ".[coreai-run]"
  coreai_line
  exit 0
fi
# -- Macs: the full install needs torch 2.13, which has wheels for Apple silicon on macOS 14+ only --
if [ "$(uname -s)" = "Darwin" ]; then
  mac_version="$(env -u SYSTEM_VERSION_COMPAT sw_vers -productVersion 2>/dev/null || echo 0)"
  if [ "$(uname -m)" != "arm64" ] || [ "${mac_version%%.*}" -lt 14 ]; then
    echo "rnnt-tui's full install needs torch 2.13, which has no wheel for this Mac ($(uname -m), macOS" \
         "$mac_version): Apple silicon and macOS 14+ only." >&2
    echo "Use 'bash scripts/setup.sh --light' instead: it replays bundles recorded elsewhere against mil or onnx" \
         "on any Mac with Python (Core ML predictions need macOS 14+, Core AI macOS 26+)." >&2
    exit 2
  fi
fi
# torch before anything else, pinned (see constraints.txt), then the project and its dev extra (NeMo, ONNX, Core AI
# where Apple ships wheels) under the constraints.
"$venv/bin/python" -m pip install --quiet "$(grep '^torch==' constraints.txt)"
"$venv/bin/python" -m pip install --quiet -c constraints.txt -e ".[dev]"
coreai_line
if [ "${1:-}" = "--install-only" ]; then
  exit 0
fi
exec "$venv/bin/rnnt-tui" "$@"
