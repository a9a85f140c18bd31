"""The Textual app behind `rnnt-tui`: it arranges and shows what the core returns, and computes nothing itself.

Only `rnnt_tui.app` imports Textual. Its top-level modules import no heavy library (torch, NeMo, coremltools,
onnxruntime): those load inside background workers so the first screen paints at once.
"""
