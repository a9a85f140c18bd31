"""The names the whole tool shares, in one place: step statuses, runtime sides, compute units and precisions.

Statuses are a str-enum, so they compare equal to their text, serialise to it in JSON and pickle across the app's
engine pipe. Nothing here imports a library: the app's process reads these at start-up.
"""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """Where a step (or a whole comparison) stands."""

    PENDING = "pending"
    PREPARING = "preparing"
    RUNNING = "running"
    DONE = "done"
    MISMATCH = "mismatch"
    FAILED = "failed"
    REFERENCE_ONLY = "reference-only"
    UNAVAILABLE = "unavailable"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


#: what an audio clip's file is called (anything else given as a clip is a manifest, a list or a folder)
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".au", ".caf", ".w64")

#: the two sides of a comparison
REFERENCE = "reference"
CANDIDATE = "candidate"
SIDES = (REFERENCE, CANDIDATE)

#: the candidate runtimes the tool offers (core.runtimes maps each to its class and label)
CANDIDATE_RUNTIMES = ("onnx", "coreml", "mil", "coreai")

#: what each runtime is called on screen and in reports; the MIL interpreter runs the Core ML *program*, never
#: Core ML itself, and says so everywhere; Core AI's runtime class adds where it runs ("Apple Core AI runtime,
#: Linux CPU")
RUNTIME_LABELS = {"pytorch": "NeMo / PyTorch", "onnx": "ONNX Runtime", "coreml": "Core ML",
                  "mil": "Core ML program, MIL interpreter", "coreai": "Core AI"}

#: Core ML compute units, as coremltools names them (`ct.ComputeUnit.<name>`)
COMPUTE_UNITS = ("CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL")
DEFAULT_COMPUTE_UNITS = "CPU_ONLY"

#: conversion precisions the tool offers
PRECISIONS = ("fp32", "fp16")
DEFAULT_PRECISION = "fp32"

#: the comparison's overall status, from its steps: unavailable > failed > mismatch > ok
OK = "ok"
