"""Corpus runs: certify a port over many clips against NeMo — manifests, the resumable results store, WER / QoI
aggregates and the reports derived from the results file.

Modules: `manifest` (what to run), `runner` (running it: a generator of plain events), `records` (one utterance's
outcome), `store` (results.jsonl: append, resume, merge), `metrics` (WER / CER), `aggregate` (corpus figures and
gates), `report` (JSON / Markdown / CSV). This `__init__` imports nothing heavy.
"""

from __future__ import annotations

from pathlib import Path

DEMO_CORPUS = "corpus"
DEMO_MANIFEST = "manifest.json"


def demo_manifest() -> Path:
    """The bundled test corpus's NeMo manifest (variants of the demo clips; `scripts/make_test_corpus.py`)."""
    from rnnt_tui.paths import demo_dir

    return demo_dir() / DEMO_CORPUS / DEMO_MANIFEST
