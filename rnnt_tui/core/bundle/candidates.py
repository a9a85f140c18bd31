"""The candidate of a replay, built without NeMo: Core ML / MIL on packages, ONNX Runtime on the recorded export.

Core ML and the MIL interpreter run a folder of packages (`--packages DIR`, else the bundle's own conversion); the
package runtimes read only the model's summary, which the bundle has (`RecordedModel`). ONNX Runtime runs the NeMo
export recorded in the bundle (`record --export onnx`): `onnx_replay.BundleOnnxRuntime` is the ONNX runtime with
its graphs taken from the bundle instead of exported from a restored model. `provenance` says whether the packages were
converted from the recorded checkpoint (the tool's own packages carry its SHA-256), or that it cannot be told.

`known_packages`: what the bundle recorded of its own packages (each one's declared spec and its program's
facts, `record --convert`), so a replay reads neither with coremltools and the MIL interpreter loads each program
on its first call: opening a bundle imports neither coremltools nor torch. A bundle recorded before these facts
were (rnnt-tui before issue 21) is read the slow way, and says so once.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnt_tui.core.bundle.format import Bundle
from rnnt_tui.core.bundle.recorded import RecordedModel
from rnnt_tui.core.errors import BadInputError
from rnnt_tui.core.options import RuntimeOptions
from rnnt_tui.core.runtimes.base import Runtime

if TYPE_CHECKING:
    from rnnt_tui.core.coreml.spec import PackageSpec
    from rnnt_tui.core.runtimes.package_inventory import KnownPackages

PACKAGE_RUNTIMES = ("coreml", "mil")
PRECISION_ORDER = ("fp32", "fp16")
#: said once while preparing a bundle recorded without its packages' facts
UNRECORDED_FACTS = ("this bundle was recorded before rnnt-tui kept its packages' specs: reading them with "
                    "coremltools, which takes a while (record it again to open it without coremltools)")


def packages_dir(bundle: Bundle, precision: str | None) -> tuple[Path, str]:
    """The bundle's package folder for `precision` (default: fp32 if recorded, else what was), and its precision."""
    recorded: dict[str, Any] = bundle.meta.get("packages") or {}
    if not recorded:
        raise BadInputError(bundle.path, "holds no Core ML packages: record it with --convert fp32 (or fp16), or "
                                         "pass --packages DIR")
    if precision is not None and precision not in recorded:
        raise BadInputError(bundle.path, f"holds no {precision} packages (it has {', '.join(recorded)})")
    chosen = precision or next((p for p in PRECISION_ORDER if p in recorded), next(iter(recorded)))
    return bundle.file(recorded[chosen]["dir"]), chosen


def coreai_dir(bundle: Bundle) -> Path:
    """The bundle's Core AI assets (`record --convert coreai`)."""
    recorded: dict[str, Any] = bundle.meta.get("coreai") or {}
    if not recorded:
        raise BadInputError(bundle.path, "holds no Core AI assets: record it with --convert coreai, or pass "
                                         "--packages DIR (a folder of .aimodel assets)")
    return bundle.file(recorded["dir"])


def known_packages(bundle: Bundle, folder: Path) -> KnownPackages | None:
    """What `bundle` recorded of the packages in `folder` when it is one of its own package folders (None: it is
    not; nothing known, with a note, for a bundle recorded before the facts were)."""
    from rnnt_tui.core.runtimes.package_inventory import KnownPackages

    for recorded in (bundle.meta.get("packages") or {}).values():
        if bundle.file(recorded["dir"]).resolve() != folder.resolve():
            continue
        if not recorded.get("facts"):
            return KnownPackages(note=UNRECORDED_FACTS)
        try:
            return KnownPackages.from_json(folder, recorded["facts"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadInputError(bundle.path, f"its record of the packages in {recorded['dir']} is unreadable "
                                             f"({type(exc).__name__}: {exc})") from exc
    return None


def provenance(folder: Path, sha256: str | None, known: Mapping[str, PackageSpec] | None = None) -> list[str]:
    """Warnings about where the packages in `folder` came from, one line each (empty: they fit the recording);
    `known`: specs already read, by file name."""
    from rnnt_tui.core.coreml.spec import PACKAGE_SUFFIXES, read_spec

    notes = []
    for path in sorted(p for p in folder.iterdir() if p.suffix in PACKAGE_SUFFIXES):
        try:
            source = (known[path.name] if known and path.name in known else read_spec(path)).ours("source_sha256")
        except BadInputError as exc:
            notes.append(f"{path.name}: cannot read its metadata ({exc.problem}), so its checkpoint cannot be "
                         f"checked")
            continue
        if source is None:
            notes.append(f"{path.name}: not converted by rnnt-tui (no source SHA-256 in its metadata), so whether "
                         f"it came from the recorded checkpoint cannot be checked")
        elif sha256 is not None and source != sha256:
            notes.append(f"{path.name} was converted from a different checkpoint (SHA-256 {source[:12]}…, the "
                         f"recording is of {sha256[:12]}…): its diffs measure two models, not one port")
    return notes


def candidate_runtime(bundle: Bundle, loaded: RecordedModel, against: str, options: RuntimeOptions,
                      known: KnownPackages | None = None) -> Runtime:
    """The candidate `against` for a replay of `bundle` (options.packages_dir: the packages to run; `known`: what
    the bundle recorded of them)."""
    if against == "onnx":
        export = bundle.meta.get("onnx")
        if not export:
            raise BadInputError(bundle.path, "holds no ONNX export: an ONNX replay runs NeMo's export, which needs "
                                             "torch and NeMo to make - record with --export onnx")
        from rnnt_tui.core.bundle.onnx_replay import BundleOnnxRuntime

        return BundleOnnxRuntime(loaded, options, bundle.file(export["dir"]), export)
    if against not in (*PACKAGE_RUNTIMES, "coreai"):
        raise ValueError(f"unknown candidate {against!r}; choose one of onnx, coreai, {', '.join(PACKAGE_RUNTIMES)}")
    from rnnt_tui.core.runtimes import get_runtime_class

    if against in PACKAGE_RUNTIMES:  # the summary is all they read of the model
        return get_runtime_class(against)(loaded, options, known=known)  # type: ignore[arg-type, call-arg]
    return get_runtime_class(against)(loaded, options)  # type: ignore[arg-type]
