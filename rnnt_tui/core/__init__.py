"""The UI-free core of rnnt-tui: checkpoints, audio, fuse mode, components, runtimes, comparison, reports.

Nothing in this package imports Textual (a test proves it); NeMo, torch, coremltools and onnxruntime are imported
inside the functions that need them so that reading a checkpoint's summary stays instant.
"""
