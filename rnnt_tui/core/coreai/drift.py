"""Where a Core AI conversion drifts from PyTorch, found with Apple's own tool: `coreai_torch.debugging`'s
`compare_program_intermediates` (the decomposed torch.export program and the Core AI program converted from it,
run on the same inputs, every mapped op's output compared).

`find_drift` re-exports the component (the exported program is not kept with a cached asset), converts it in
memory with the same decompositions, runs Apple's comparison and names the first failing op in graph order: its
torch.export node and aten target, the largest difference, its PyTorch source line (from the node's stack trace)
and its NeMo module (from `nn_module_stack`, as `joint.joint_net.2 (Linear)`). `perturb` (tests) converts a
changed copy of the component instead, so a known drift can be planted.

On Linux: Apple's one-call `compare_program_intermediates` asks for `SpecializationOptions`, which exist on macOS
only, so there the same steps are taken one by one with Apple's own pieces - `TorchFXInspector` for PyTorch's
intermediates, `get_torch_to_coreai_output_mapping` for the op mapping (from the asset's debug info),
`CoreAIInspector` on the program lowered with debug info (`AIModelAsset._write_odix(..., enable_debug_info=True)`,
what `executable()` itself does on Linux) and `compare_intermediates`. On macOS the one call is used. Nothing is
printed; the report is a frozen dataclass with `to_json`. The inputs of a component's first call in a session that
has run come from `core.pipeline.drift_inputs` (it reads a pipeline session; this module reads none).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rnnt_tui.core.errors import CancelledError
from rnnt_tui.core.progress import Progress, no_progress
from rnnt_tui.core.quiet import quiet

TOOL = "coreai_torch.debugging.compare_program_intermediates"
#: the same comparison taken step by step with Apple's pieces, where SpecializationOptions do not exist
TOOL_PIECES = "coreai_torch.debugging: TorchFXInspector + CoreAIInspector + compare_intermediates"


@dataclass(frozen=True)
class DriftOp:
    """One op whose Core AI output differs from PyTorch's."""

    node: str
    target: str
    max_diff: float | None
    source: str | None
    module: str | None

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "target": self.target, "max_diff": self.max_diff, "source": self.source,
                "module": self.module}

    def line(self) -> str:
        diff = "non-finite" if self.max_diff is None else f"{self.max_diff:.3g}"
        where = f" at {self.source}" if self.source else ""
        return f"{self.node} ({self.target}) in {self.module or 'the wrapper'}{where}: max |d| {diff}"


@dataclass(frozen=True)
class DriftReport:
    """What Apple's comparison found for one component."""

    component: str
    first: DriftOp | None
    failing: tuple[DriftOp, ...] = ()
    compared: int = 0
    summary: dict[str, int] = field(default_factory=dict)
    atol: float = 1e-4
    rtol: float = 1e-4
    elapsed_ms: float = 0.0
    tool: str = TOOL

    def to_json(self) -> dict[str, Any]:
        return {"component": self.component, "tool": self.tool, "first": self.first.to_json() if self.first else None,
                "failing": [f.to_json() for f in self.failing], "compared": self.compared,
                "summary": dict(self.summary), "atol": self.atol, "rtol": self.rtol,
                "elapsed_ms": round(self.elapsed_ms, 3)}


def source_line(node: Any) -> str | None:
    """The innermost frame of the node's stack trace that is not torch's own code: `file:line in function`."""
    trace = node.meta.get("stack_trace") or ""
    frames = [line.strip() for line in trace.splitlines() if line.strip().startswith("File ")]
    for frame in reversed(frames):
        if "/torch/" not in frame:
            parts = frame.split(",")
            path = parts[0].removeprefix("File ").strip().strip('"')
            line = parts[1].strip().removeprefix("line ") if len(parts) > 1 else "?"
            func = parts[2].strip().removeprefix("in ") if len(parts) > 2 else ""
            short = "/".join(path.split("/")[-3:])
            return f"{short}:{line}" + (f" in {func}" if func else "")
    return None


def module_path(node: Any, prefix: str) -> str | None:
    """The innermost module that made the node, as a NeMo path (`joint.joint_net.0 (ReLU)`)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return None
    path, kind = list(stack.values())[-1]
    name = getattr(kind, "__name__", str(kind).rsplit(".", 1)[-1].strip("'>"))
    path = str(path).removeprefix("L['self'].").replace("L__self___", "")
    inner = path.split(".", 1)[1] if "." in path else ""  # the wrapper's own attribute is the component
    return f"{prefix}{'.' + inner if inner else ''} ({name})"


async def torch_intermediates(program: Any, inputs: dict[str, Any]) -> dict[Any, Any]:
    """Every call_function node's outputs of the exported `program` on `inputs` (Apple's `TorchFXInspector`)."""
    from coreai_torch.debugging.inspector import TorchFXInspector

    ops = [n.name for n in program.graph.nodes if n.op == "call_function"]
    values: dict[Any, Any] = await TorchFXInspector(program).get_intermediates_for_ops(ops, tuple(inputs.values()))
    return values


async def coreai_intermediates(ai_program: Any, inputs: dict[str, np.ndarray]
                               ) -> tuple[dict[str, Any], dict[Any, Any], dict[str, np.ndarray]]:
    """(torch node → Core AI output mapping, Core AI values by op id, the program's final outputs) of `ai_program`
    on `inputs`, run by the runtime on the program lowered with debug info (Apple's `CoreAIInspector`)."""
    import tempfile
    from pathlib import Path

    from coreai.runtime import AIModel
    from coreai_torch.debugging.inspector import CoreAIInspector
    from coreai_torch.debugging.torch_utils import get_torch_to_coreai_output_mapping

    mappings = get_torch_to_coreai_output_mapping(ai_program)
    with tempfile.TemporaryDirectory(prefix="rnnt-tui-drift-") as tmp:
        asset = ai_program.save_asset(Path(tmp) / "drift.aimodel")
        lowered = Path(tmp) / "drift.aimodelx"
        lowered.mkdir()
        asset._write_odix(lowered, enable_debug_info=True)
        model = await AIModel.load(lowered)
        inspector = CoreAIInspector(model, "main")
        values = await inspector.get_intermediates_for_ops([m.target_op_id for m in mappings.values()], inputs)
        outputs = dict(inspector.last_outputs or {})
        del model, inspector
    return mappings, values, outputs


async def _compare(program: Any, ai_program: Any, inputs: dict[str, Any], atol: float, rtol: float) -> Any:
    """Apple's intermediate comparison (its one call on macOS; the same pieces one by one elsewhere)."""
    import sys

    from coreai_torch.debugging.intermediates import compare_intermediates, compare_program_intermediates

    if sys.platform == "darwin":
        return await compare_program_intermediates(program, ai_program, inputs, atol=atol, rtol=rtol)
    torch_values = await torch_intermediates(program, inputs)
    mappings, coreai_values, _ = await coreai_intermediates(ai_program, {k: v.numpy() for k, v in inputs.items()})
    return compare_intermediates(torch_values, coreai_values, mappings, atol=atol, rtol=rtol)


def find_drift(loaded: Any, component: str, inputs: dict[str, np.ndarray], *, atol: float = 1e-4,
               rtol: float = 1e-4, perturb: Callable[[Any], None] | None = None,
               precision: str = "fp32", progress: Progress = no_progress,
               cancel: threading.Event | None = None) -> DriftReport:
    """Run Apple's intermediate comparison on `component` fed `inputs` (the contract-named arrays of one call).
    `cancel` is polled between the stages (export, conversion, comparison: each is one call into torch or
    coreai and cannot be interrupted inside); `progress` says which stage runs."""
    import copy

    import torch

    from rnnt_tui.core.coreai.convert import IO, _example
    from rnnt_tui.core.coreai.execute import native_stderr_captured
    from rnnt_tui.core.coreai.export import export_program, load_coreai_torch

    coreai_torch = load_coreai_torch()
    start = time.perf_counter()
    module, _, dynamic, _ = _example(loaded, component, None, precision == "fp16")
    if precision == "fp16":
        module = copy.deepcopy(module).half()
    names_in, names_out = IO[component]
    floating = torch.float16 if precision == "fp16" else torch.float32
    args = tuple(torch.from_numpy(np.ascontiguousarray(inputs[n])).to(
        floating if np.issubdtype(np.asarray(inputs[n]).dtype, np.floating) else torch.int32) for n in names_in)

    def stage(text: str, fraction: float) -> None:
        if cancel is not None and cancel.is_set():
            raise CancelledError(f"the Core AI drift search of the {component} was cancelled")
        progress(f"Core AI drift ({component}): {text}", fraction)

    with native_stderr_captured(), quiet():
        stage("exporting with torch.export", 0.0)
        program = export_program(module, args, dynamic)
        converted = program
        if perturb is not None:
            changed = copy.deepcopy(module)
            perturb(changed)
            converted = export_program(changed, args, dynamic)
        stage("converting with coreai-torch", 0.2)
        converter = coreai_torch.TorchConverter()
        converter.add_exported_program(converted, input_names=list(names_in), output_names=list(names_out))
        ai_program = converter.to_coreai()
        stage("comparing op by op (coreai_torch.debugging)", 0.5)
        report = asyncio.run(_compare(program, ai_program, dict(zip(names_in, args, strict=True)), atol, rtol))
        stage("naming the first drifting op", 0.95)
    nodes = {n.name: n for n in program.graph.nodes}
    order = {name: i for i, name in enumerate(nodes)}
    failing = sorted(report.failures, key=lambda c: order.get(c.torch_node_name, 1 << 30))
    ops = tuple(DriftOp(node=c.torch_node_name, target=str(getattr(nodes.get(c.torch_node_name), "target", "?")),
                        max_diff=c.max_diff, source=source_line(nodes[c.torch_node_name]) if c.torch_node_name in nodes
                        else None, module=module_path(nodes[c.torch_node_name], component)
                        if c.torch_node_name in nodes else None) for c in failing)
    import sys

    return DriftReport(component=component, first=ops[0] if ops else None, failing=ops, compared=len(report.compared),
                       summary=dict(report.summary()), atol=atol, rtol=rtol,
                       elapsed_ms=(time.perf_counter() - start) * 1000,
                       tool=TOOL if sys.platform == "darwin" else TOOL_PIECES)
