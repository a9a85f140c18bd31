"""Which packages a package runtime uses, and what each one is: the inventory behind `PackageRuntime.prepare`.

`collect_packages` gets the packages (converted from the restored model, or matched in `options.packages_dir`),
keeps every one with what it is used for or why it is skipped (`PackageEntry`), and gathers the warnings a user
should see before any number: flexible inputs whose default shape is [1,1], duration bins in the exporter's
`metadata.json` that differ from the model's. `read_program_facts` reads a program's real compute precision and
weight compression with the MIL reader (any OS); `precision_warning` says when the package's metadata or the
`--precision` flag claims otherwise (the common exporter writes FLOAT32 while coremltools computes in fp16).
`tiles` splits a joint's T or U axis into calls its declared shape accepts (`joint_bounds`).

`KnownPackages` is what was read of a folder's packages before, kept as JSON (`record_packages`: a bundle records
it beside its packages): each package's declared spec and its program's facts. A runtime given them neither reads
the specs with coremltools nor loads a program to learn its precision, so it can defer loading each program to
its first call (`PackageRuntime.load_for`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rnnt_tui.core.components import JOINT
from rnnt_tui.core.coreml.matching import (
    HEADS,
    JOINT_DECISION,
    JOINT_DECISION_STEP,
    MEL_ENCODER,
    FolderMetadata,
    PackageInfo,
    match_packages,
    package_info,
    read_folder_metadata,
)
from rnnt_tui.core.coreml.spec import PackageSpec, shape_warnings
from rnnt_tui.core.errors import BadInputError
from rnnt_tui.core.runtimes.base import Progress, RuntimeOptions


@dataclass(frozen=True)
class ProgramFacts:
    """What a program really computes in: "fp32", "fp16" or "mixed", and its compressed-weight op types."""

    precision: str
    weight_compression: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"precision": self.precision, "weight_compression": list(self.weight_compression)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProgramFacts:
        return cls(str(data["precision"]), tuple(str(w) for w in data.get("weight_compression") or ()))


@dataclass(frozen=True)
class KnownPackages:
    """What was read of a folder's packages before, by file name: declared specs and program facts (a package
    missing from either is read the usual way). `note`: why there is nothing known (said once while preparing)."""

    specs: dict[str, PackageSpec] = field(default_factory=dict)
    programs: dict[str, ProgramFacts] = field(default_factory=dict)
    note: str | None = None

    @classmethod
    def from_json(cls, folder: Path, data: dict[str, Any]) -> KnownPackages:
        """The inverse of `record_packages`, for the packages now in `folder`."""
        return cls(specs={name: PackageSpec.from_json(entry["spec"], folder / name) for name, entry in data.items()},
                   programs={name: ProgramFacts.from_json(entry["program"]) for name, entry in data.items()
                             if entry.get("program")})

    def program(self, path: Path) -> ProgramFacts | None:
        return self.programs.get(path.name)


def record_packages(paths: Sequence[Path]) -> dict[str, Any]:
    """Each package's declared spec and its program's facts, as JSON by file name (`KnownPackages.from_json`
    reads it back); a program that cannot be read has no facts (it is then read again where it is used)."""
    from rnnt_tui.core.coreml.spec import read_spec

    out: dict[str, Any] = {}
    for path in paths:
        facts, _ = read_program_facts(path)
        spec = {k: v for k, v in read_spec(path).to_json().items() if k not in ("path", "deployment_target")}
        out[path.name] = {"spec": spec, "program": facts.to_json() if facts is not None else None}
    return out


@dataclass(frozen=True)
class PackageEntry:
    """One package of the folder (or conversion): what it is, what it is used for (None: skipped) and why."""

    path: str
    role: str
    mapped_to: str | None
    reason: str
    precision: str | None = None  # the program's real compute precision, where it was read
    weight_compression: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "role": self.role, "mapped_to": self.mapped_to, "reason": self.reason,
                "precision": self.precision, "weight_compression": list(self.weight_compression),
                "notes": list(self.notes)}

    def line(self) -> str:
        """One line for a text report."""
        name = Path(self.path).name
        used = f"→ {self.mapped_to}" if self.mapped_to else "skipped"
        extra = f", computes {self.precision}" if self.precision else ""
        return f"{name}: {used} ({self.reason}{extra})"


def read_program_facts(path: Path) -> tuple[ProgramFacts | None, str | None]:
    """A package's compute precision and weight compression, read with the MIL reader; (None, why) if unreadable."""
    try:
        from rnnt_tui.core.mil.program import MilProgram
    except ImportError as exc:
        return None, f"the MIL reader is not available ({exc})"
    try:
        program = MilProgram.load(path)
    except BadInputError as exc:
        return None, exc.problem
    return ProgramFacts(str(program.precision), tuple(program.weight_compression)), None


def precision_warning(info: PackageInfo, facts: ProgramFacts, declared: str | None, by: str) -> str | None:
    """A warning when what the package (or flag) declares and what its program computes in disagree."""
    if declared is None or declared == facts.precision or (declared == "fp16" and facts.precision == "mixed"):
        return None
    follows = "fp32" if facts.precision == "fp32" else "fp16"
    return (f"{info.path.name}: {by} says {declared}, but the program computes in {facts.precision}; tolerances "
            f"follow the program ({follows})")


def tiles(n: int, bounds: tuple[int, int]) -> list[tuple[int, int, int]]:
    """(start, stop, padded size) calls covering n steps of an axis whose declared (lower, upper) bounds are
    `bounds` (upper -1: unbounded): a fixed axis in calls of its size (the last zero-padded), a flexible one in as
    few calls as its upper bound allows."""
    low, high = bounds
    size = max(1, low if low == high else n if high == -1 else min(n, high))
    return [(start, min(start + size, n), max(min(start + size, n) - start, low)) for start in range(0, n, size)]


def joint_bounds(info: PackageInfo) -> tuple[tuple[int, int], tuple[int, int]]:
    """A joint or decision head's declared (lower, upper) bounds on T (its encoded input's time axis, in the
    package's layout) and on U (decoder_output's)."""
    enc = info.spec.input(info.inputs["encoded"]).bounds(1 if info.layouts.get("encoded") == "BTD" else 2)
    return enc, info.spec.input(info.inputs["decoder_output"]).bounds(2)


def joint_calls(info: PackageInfo) -> str:
    """How a joint or decision head is called over the T x U grid, from its declared shapes."""
    enc, dec = joint_bounds(info)
    if enc == (1, 1) and dec == (1, 1):
        return "called once per (frame, decoder step) cell"
    if dec == (1, 1):
        window = f"a fixed window of {enc[0]} frames" if enc[0] == enc[1] else "all frames"
        return f"{window}, called once per decoder step (U=1: its U axis is not a time axis)"
    return "the T x U grid in as few calls as its shapes allow"


def _use(key: str, info: PackageInfo, decodes: bool) -> str:
    if key == JOINT:
        return f"joint ({joint_calls(info)}; compared with the reference joint)"
    if key == MEL_ENCODER:
        return "mel_encoder (fused preprocessor + encoder: compared with the reference preprocessor → encoder)"
    if key in (JOINT_DECISION, JOINT_DECISION_STEP):
        decode = "; the candidate's transcript is decoded through it" if decodes else ""
        return f"{key} (decision head, {joint_calls(info)}; compared with the reference joint's decisions{decode})"
    return key


@dataclass
class Collected:
    """The packages a runtime will use and skip, how each was obtained, and what to warn about."""

    used: dict[str, PackageInfo]
    skipped: dict[str, PackageInfo]
    actions: dict[str, tuple[str, float, bool, list[str]]]
    warnings: list[str] = field(default_factory=list)
    elapsed_ms: float = 0.0
    folder: FolderMetadata | None = None
    flag: str | None = None  # the --precision flag, as a claim about a folder with no metadata

    def declared(self, info: PackageInfo) -> str | None:
        """The precision the package's metadata (or the flag) claims, as a program precision."""
        claim = info.spec.ours("precision") or (self.folder.precision if self.folder else None) or self.flag
        return {"fp16-all": "fp16"}.get(claim or "", claim)

    def declared_by(self, info: PackageInfo) -> str:
        if info.spec.ours("precision"):
            return "its rnnt-tui metadata"
        if self.folder is not None and self.folder.precision:
            return f"{self.folder.path.name} (compute_precision {self.folder.declared})"
        return "the --precision flag"

    def inventory(self, programs: dict[str, ProgramFacts], decodes: bool) -> list[PackageEntry]:
        def entry(info: PackageInfo, mapped: str | None) -> PackageEntry:
            facts = programs.get(info.component) if mapped else None
            return PackageEntry(path=str(info.path), role=info.component, mapped_to=mapped, reason=info.reason,
                                precision=facts.precision if facts else None,
                                weight_compression=facts.weight_compression if facts else (),
                                notes=tuple(w for w in self.warnings if w.startswith(info.path.name + ":")))

        head = JOINT_DECISION_STEP if JOINT_DECISION_STEP in self.used else JOINT_DECISION
        rows = [entry(info, _use(key, info, decodes and key == head)) for key, info in self.used.items()]
        rows += [entry(info, None) for info in self.skipped.values()]
        return sorted(rows, key=lambda e: Path(e.path).name)


def _prefer_programs(found: dict[str, PackageInfo]) -> dict[str, PackageInfo]:
    """Swap a matched `.mlmodelc` for a duplicate of the same kind that is a package (for runtimes that cannot
    read compiled models back)."""
    out = dict(found)
    for key, info in found.items():
        if info.path.suffix != ".mlmodelc":
            continue
        spare = next((k for k, v in out.items() if k.startswith(f"{key}:") and v.path.suffix != ".mlmodelc"), None)
        if spare is not None:
            better = out.pop(spare)
            out[key] = replace(better, comparable=True, reason=f"{better.reason or key} (chosen over "
                                                               f"{info.path.name}: a compiled model is not readable)")
            out[f"{key}:{info.path.name}"] = replace(info, comparable=False,
                                                     reason=f"compiled; {better.path.name} is used instead")
    return out


def collect_packages(loaded: Any, options: RuntimeOptions, components: Sequence[str], progress: Progress,
                     cancel: threading.Event | None, reads_compiled: bool = True,
                     known: KnownPackages | None = None) -> Collected:
    """Convert `components` of the restored model, or match the packages in `options.packages_dir` (`known`: their
    specs as read before)."""
    from rnnt_tui.core.coreml.convert import convert_components

    summary = loaded.summary
    if not options.packages_dir:
        converted = convert_components(loaded, precision=options.precision,
                                       minimum_deployment_target=options.minimum_deployment_target,
                                       max_frames=options.max_frames, components=components, progress=progress,
                                       cancel=cancel, use_cache=options.use_cache)
        used = {p.component: package_info(p.path, summary, p.component) for p in converted}
        actions = {p.component: (f"{'converted (cached)' if p.cached else 'converted'} to {options.precision} ML "
                                 "program", p.elapsed_ms, p.cached, list(p.notes)) for p in converted}
        return Collected(used=used, skipped={}, actions=actions,
                         warnings=[w for i in used.values() for w in shape_warnings(i.spec)])
    start = time.perf_counter()
    found = match_packages(options.packages_dir, summary, known=known.specs if known is not None else None)
    if not reads_compiled:
        found = _prefer_programs(found)
    elapsed = (time.perf_counter() - start) * 1000
    wanted = (*components, *HEADS)
    used = {k: v for k, v in found.items() if k in wanted}
    skipped = {k: v for k, v in found.items() if k not in wanted}
    actions = {k: (f"package {v.path.name} ({v.source})", elapsed, True, [v.reason] if v.reason else [])
               for k, v in used.items()}
    folder = read_folder_metadata(options.packages_dir)
    warnings = [w for i in used.values() for w in shape_warnings(i.spec)]
    durations = list(summary.durations or [])
    if folder is not None and folder.duration_bins is not None and list(folder.duration_bins) != durations:
        warnings.append(f"{folder.path.name}: duration_bins {list(folder.duration_bins)} differ from the model's "
                        f"durations {durations}; decisions are read with the model's")
    return Collected(used=used, skipped=skipped, actions=actions, warnings=warnings, elapsed_ms=elapsed,
                     folder=folder, flag=options.precision if folder is None or not folder.precision else None)
