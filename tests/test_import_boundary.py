"""The import boundaries, checked in fresh interpreters.

1. The core and the CLI never import Textual: every `rnnt_tui.core` module and `rnnt_tui.cli` are imported in a
   subprocess and `sys.modules` must hold no `textual`.
2. The app's modules import no heavy library at import time (torch, NeMo, coremltools, onnxruntime, onnx), so
   the first screen paints before any of them loads.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

HEAVY = ("torch", "nemo", "coremltools", "onnxruntime", "onnx", "lightning")


def _run(code: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-4000:]
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_core_and_cli_never_import_textual() -> None:
    result = _run("""
        import importlib, json, pkgutil, sys
        import rnnt_tui.core
        names = sorted(m.name for m in pkgutil.walk_packages(rnnt_tui.core.__path__, "rnnt_tui.core."))
        for name in names + ["rnnt_tui.cli", "rnnt_tui.paths", "rnnt_tui.versions", "rnnt_tui.exit_codes"]:
            importlib.import_module(name)
        print(json.dumps({"modules": names,
                          "textual": sorted(m for m in sys.modules if m.split(".")[0] == "textual")}))
    """)
    assert len(result["modules"]) > 10  # type: ignore[arg-type]
    assert result["textual"] == [], result["textual"]


def test_app_modules_import_no_heavy_library() -> None:
    result = _run(f"""
        import importlib, json, pkgutil, sys
        import rnnt_tui.app
        names = sorted(m.name for m in pkgutil.walk_packages(rnnt_tui.app.__path__, "rnnt_tui.app."))
        for name in names:
            importlib.import_module(name)
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
        print(json.dumps({{"modules": names, "heavy": heavy}}))
    """)
    assert "rnnt_tui.app.app" in result["modules"]  # type: ignore[operator]
    assert result["heavy"] == [], result["heavy"]
