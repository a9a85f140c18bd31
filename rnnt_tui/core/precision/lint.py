"""Static lint of a Core ML package: precision and shape hazards found without a clip, and without a Mac.

Reads the package's declared I/O (`coreml.spec.read_spec`) and its ML program (coremltools' milproto loader, the
bytes the user ships) and reports:

- `dim-over-16384` (warning): an input bound or a fixed tensor dimension over the Neural Engine's 16384 per-dim
  limit (users report such models failing to load on iPhone or falling back off the Neural Engine);
- `flexible-default-1` / `flexible-lower-bound-1` (warning): a flexible input whose default shape is 1 on a
  flexible axis, or whose lower bound is 1 (reported: empty transcripts on iPad);
- `fp16-constant` (error): an fp16 constant holding ±inf/NaN (e.g. a −1e9 mask that became −inf), or an fp32
  constant beyond 65504 feeding an op that computes in fp16;
- `fp16-index-arithmetic` / `fp16-flexible-statistic` (error): index arithmetic or a sum over the flexible axis
  computed in fp16 (`coreml.fp16_policy`);
- `not-on-neural-engine` (info, "informational: no compute plan here"): op types public reports say the Neural
  Engine does not run (`lstm`, `gru`, `rnn`, control flow), and ops computing in fp32 (the Neural Engine
  computes fp16 only). On a Mac, `MLComputePlan` says where ops really run.

Each finding names the file, the op and (for the tool's own packages) the NeMo module. A package may say in its
metadata which compute units it is meant for and which findings are expected, and why (`rnnt_tui.intended_*`,
`rnnt_tui.lint_expected`, written by `coreml.convert`: e.g. the preprocessor takes raw samples and is meant for the
CPU): an expected finding is reported as `info` with that reason, never hidden.
Exit (`rnnt-tui lint`): 1 when any package has an error or a warning, 4 when one cannot be read, else 0.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnt_tui.core.coreml import op_modules
from rnnt_tui.core.coreml.fp16_policy import INDEX_ARITHMETIC, _inputs, classify
from rnnt_tui.core.coreml.op_modules import walk
from rnnt_tui.core.coreml.spec import META_PREFIX, PACKAGE_SUFFIXES, read_spec
from rnnt_tui.core.errors import BadInputError

NE_DIM_LIMIT = 16384
FP16_MAX = 65504.0
NOT_ON_NE_TYPES = frozenset({"lstm", "gru", "rnn", "while_loop", "cond"})
SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class LintFinding:
    severity: str
    check: str
    message: str
    op: str | None = None
    op_type: str | None = None
    module: str | None = None
    input: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"severity": self.severity, "check": self.check, "message": self.message, "op": self.op,
                "op_type": self.op_type, "module": self.module, "input": self.input}


@dataclass(frozen=True)
class LintReport:
    """One package's findings (`error` set when the package could not be read at all)."""

    path: Path
    findings: tuple[LintFinding, ...] = field(default_factory=tuple)
    ops: int = 0
    compute_dtypes: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    intended_units: str | None = None
    intended_why: str | None = None

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    @property
    def failing(self) -> bool:
        """An error or a warning: what makes `lint` (and `precision`) exit 1."""
        return bool(self.count("error") or self.count("warning"))

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "ops": self.ops, "compute_dtypes": dict(self.compute_dtypes),
                "error": self.error, "intended_compute_units": self.intended_units,
                "intended_why": self.intended_why, "counts": {s: self.count(s) for s in SEVERITIES},
                "findings": [f.to_json() for f in self.findings]}


def load_program(path: Path) -> Any:
    """The ML program of a `.mlpackage` / `.mlmodel` as a MIL Program (Linux too); BadInputError otherwise."""
    from rnnt_tui.core.coreml.spec import load_coremltools
    from rnnt_tui.core.quiet import quiet

    if path.suffix == ".mlmodelc":
        raise BadInputError(path, "a compiled .mlmodelc cannot be read back into a program (coremltools has no "
                                  "loader for it); lint the .mlpackage it was compiled from")
    ct, _ = load_coremltools()
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load

    with quiet():
        try:
            model = ct.models.MLModel(str(path), skip_model_load=True)
            spec = model.get_spec()
        except Exception as exc:  # noqa: BLE001 - coremltools raises bare Exceptions on unreadable packages
            raise BadInputError(path, f"not a readable Core ML package ({exc})") from None
        if spec.WhichOneof("Type") != "mlProgram":
            raise BadInputError(path, f"not an ML program ({spec.WhichOneof('Type')}); only ML programs are linted")
        try:
            return milproto_load(model_spec=spec, specification_version=spec.specificationVersion,
                                 file_weights_dir=model.weights_dir)
        except Exception as exc:  # noqa: BLE001 - the loader's errors are as varied as the files it reads
            raise BadInputError(path, f"its ML program cannot be loaded ({type(exc).__name__}: {exc})") from None


def _dtype_name(var: Any) -> str:
    from coremltools.converters.mil.mil import types

    try:
        return str(types.builtin_to_string(var.dtype))
    except (KeyError, AttributeError, TypeError):
        return "?"


def compute_dtype(op: Any) -> str | None:
    """'fp16' / 'fp32' for an op whose float outputs are that type, else None."""
    names = {_dtype_name(v) for v in op.outputs}
    for name in ("fp16", "fp32"):
        if name in names:
            return name
    return None


def _io_findings(path: Path) -> list[LintFinding]:
    spec = read_spec(path)
    out: list[LintFinding] = []
    for tensor in spec.inputs:
        for axis in range(tensor.rank):
            lo, hi = tensor.bounds(axis)
            default = tensor.shape[axis] if axis < len(tensor.shape) else -1
            if hi == -1 or hi > NE_DIM_LIMIT:
                bound = "unbounded" if hi == -1 else str(hi)
                out.append(LintFinding("warning", "dim-over-16384",
                                       f"input {tensor.name} axis {axis} goes up to {bound}: over the Neural "
                                       f"Engine's {NE_DIM_LIMIT} per-dimension limit", input=tensor.name))
            if lo != hi and default == 1:
                out.append(LintFinding("warning", "flexible-default-1",
                                       f"input {tensor.name} is flexible on axis {axis} ({lo}..{hi}) but its "
                                       f"default shape is {list(tensor.shape)}: Core ML specialises for the "
                                       "default at load", input=tensor.name))
            if lo != hi and lo == 1:
                out.append(LintFinding("warning", "flexible-lower-bound-1",
                                       f"input {tensor.name} axis {axis} accepts length 1 ({lo}..{hi}): one step "
                                       "(or zero frames after subsampling) is a valid shape to the runtime",
                                       input=tensor.name))
    return out


def _const_findings(op: Any, module: str, fp16_consumers: set[int]) -> list[LintFinding]:
    import numpy as np

    value = op.outputs[0].val
    if value is None or (not hasattr(value, "dtype") and not isinstance(value, float)):
        return []
    array = np.asarray(value)
    out = []
    if array.dtype == np.float16 and array.size and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        out.append(LintFinding("error", "fp16-constant", f"fp16 constant {op.name} holds {bad} inf/NaN value(s) "
                               "(a value fp16 cannot hold, e.g. a -1e9 mask, became -inf)", op.name, "const",
                               module))
    elif array.dtype == np.float32 and array.size and id(op.outputs[0]) in fp16_consumers:
        finite = np.abs(array[np.isfinite(array)])
        if finite.size and float(finite.max()) > FP16_MAX:
            out.append(LintFinding("error", "fp16-constant", f"fp32 constant {op.name} (max |x| "
                                   f"{float(finite.max()):.3g}) feeds an fp16 cast: it becomes inf", op.name,
                                   "const", module))
    for shape_dim in array.shape:
        if shape_dim > NE_DIM_LIMIT:
            out.append(LintFinding("warning", "dim-over-16384", f"constant {op.name} has shape {list(array.shape)}: "
                                   f"a dimension over {NE_DIM_LIMIT}", op.name, "const", module))
            break
    return out


def lint_package(path: Path | str) -> LintReport:
    """Lint one package; a package that cannot be read gives a report with `error` set (never raises for it)."""
    path = Path(path).expanduser()
    try:
        prog = load_program(path)
        findings = _io_findings(path)
    except BadInputError as exc:
        return LintReport(path=path, error=str(exc))
    spec_meta = read_spec(path).metadata
    mapping = op_modules.decode(spec_meta.get(META_PREFIX + op_modules.METADATA_KEY))
    dtypes: Counter[str] = Counter()
    ops = 0
    info_types: Counter[str] = Counter()
    for function in prog.functions.values():
        fp16_casts = {id(_inputs(op)[0]) for op in walk(function) if op.op_type == "cast"
                      and compute_dtype(op) == "fp16" and _inputs(op)}
        hazards = classify(function)
        for op in walk(function):
            module = op_modules.module_of(mapping, op.name)
            if op.op_type == "const":
                findings += _const_findings(op, module, fp16_casts)
                continue
            ops += 1
            dtype = compute_dtype(op)
            if dtype:
                dtypes[dtype] += 1
            hit = hazards.get(op.name)
            if hit is not None and dtype == "fp16":
                check = "fp16-index-arithmetic" if hit.reason == INDEX_ARITHMETIC else "fp16-flexible-statistic"
                why = ("integers above 2048 are inexact in fp16" if hit.reason == INDEX_ARITHMETIC
                       else "a sum over the flexible time axis can pass 65504")
                findings.append(LintFinding("error", check, f"{hit.reason} computed in fp16 ({why})", op.name,
                                            op.op_type, module))
            if op.op_type in NOT_ON_NE_TYPES:
                info_types[op.op_type] += 1
                findings.append(LintFinding("info", "not-on-neural-engine",
                                            f"informational (no compute plan here): {op.op_type} is reported not "
                                            "to run on the Neural Engine", op.name, op.op_type, module))
    if dtypes.get("fp32") and dtypes.get("fp16"):
        findings.append(LintFinding("info", "not-on-neural-engine",
                                    f"informational (no compute plan here): {dtypes['fp32']} ops compute in fp32; "
                                    "the Neural Engine computes fp16 only, so they run on the CPU or GPU"))
    planned = plan_findings(path)
    if planned is not None:  # on a Mac with compute plans: where Core ML places ops, not what reports say
        findings = [f for f in findings if f.check != "not-on-neural-engine"] + planned
    findings = _expected(findings, spec_meta.get(META_PREFIX + "lint_expected"))
    return LintReport(path=path, findings=tuple(_dedupe(findings)), ops=ops, compute_dtypes=dict(dtypes),
                      intended_units=spec_meta.get(META_PREFIX + "intended_compute_units"),
                      intended_why=spec_meta.get(META_PREFIX + "intended_why"))


def _expected(findings: list[LintFinding], declared: str | None) -> list[LintFinding]:
    """Findings the package's metadata declares expected (check + input, "*" for any) become `info`, with the
    package's reason; everything else is unchanged."""
    from dataclasses import replace

    try:
        expected = json.loads(declared) if declared else []
    except ValueError:
        return findings
    out = []
    for f in findings:
        why = next((e.get("why", "") for e in expected if e.get("check") == f.check and f.input is not None
                    and e.get("input") in ("*", f.input)), None)
        out.append(f if why is None else replace(f, severity="info", message=f"expected ({why}): {f.message}"))
    return out


def plan_findings(path: Path, units: str = "ALL") -> list[LintFinding] | None:
    """On a Mac with compute plans (macOS 14.4+): Core ML's own placement of the package's ops on `units`, as
    `not-on-neural-engine` findings (the ops it keeps on the CPU or GPU although the units include the Neural
    Engine, by op type). None where there is no compute plan (the informational findings stay); a plan Core ML
    refuses is one finding saying so."""
    from rnnt_tui.core.coreml.platform import core_ml_problem

    if path.suffix not in (".mlpackage", ".mlmodel") or core_ml_problem((14, 4), "Core ML compute plans"):
        return None
    from rnnt_tui.core.coreml.load import CoreMLLoader
    from rnnt_tui.core.coreml.plan import compute_plan

    loader = CoreMLLoader()
    try:
        opened = loader.load(path, units)
        plan = compute_plan(opened.compiled_path, path.stem, units)
    except Exception as exc:  # noqa: BLE001 - Core ML refusing the plan is a finding, not a lint failure
        return [LintFinding("warning", "not-on-neural-engine", f"Core ML gave no compute plan on {units}: {exc}")]
    finally:
        loader.close()
    off_ne = Counter(p.op_type for p in plan.placements if p.op_type != "const" and p.preferred in ("CPU", "GPU"))
    shares = ", ".join(f"{d} {100 * plan.op_share.get(d, 0.0):.0f}%" for d in ("CPU", "GPU", "NE"))
    out = [LintFinding("info", "not-on-neural-engine", f"Core ML's compute plan on {units}: {shares} of {plan.ops} "
                                                       "ops")]
    out += [LintFinding("info", "not-on-neural-engine", f"Core ML's compute plan on {units} keeps {n} {op_type} "
                                                        "op(s) off the Neural Engine", op_type=op_type)
            for op_type, n in off_ne.most_common()]
    return out


def _dedupe(findings: list[LintFinding]) -> list[LintFinding]:
    seen: set[tuple[Any, ...]] = set()
    out = []
    for f in sorted(findings, key=lambda f: SEVERITIES.index(f.severity)):
        key = (f.check, f.op, f.message)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def package_paths(target: Path | str) -> list[Path]:
    """The package itself, or the packages in a folder (sorted); BadInputError when there are none."""
    path = Path(target).expanduser()
    if not path.exists():
        raise BadInputError(path, "no such package or folder")
    if path.suffix in PACKAGE_SUFFIXES:
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix in PACKAGE_SUFFIXES)
        if found:
            return found
    raise BadInputError(path, "not a Core ML package (.mlpackage, .mlmodel, .mlmodelc) nor a folder holding one")


def lint(target: Path | str) -> list[LintReport]:
    """`rnnt-tui lint PACKAGE_OR_DIR`: one report per package; unreadable packages report their error and the
    others are still linted."""
    return [lint_package(p) for p in package_paths(target)]


def reports_json(reports: list[LintReport]) -> str:
    return json.dumps({"packages": [r.to_json() for r in reports]}, indent=1)
