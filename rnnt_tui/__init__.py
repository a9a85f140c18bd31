"""rnnt-tui: check that a Core ML (or ONNX Runtime) port of a NeMo transducer computes what NeMo computes."""

__version__ = "0.1.0"
