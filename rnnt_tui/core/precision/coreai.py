"""`rnnt-tui precision … --against coreai`: certify the tool's Core AI fp16 conversion the way the Core ML one is
certified, on Apple's Core AI runtime, with Apple's own debugging pieces.

Per component converted to fp16 (encoder, decoder, joint; the preprocessor stays fp32, and the report says so):
the component's fp32 wrapper and its `.half()` copy are exported the same way (`core.coreai.export`: the same
torch.export graph, node for node, so nodes match by name), the fp16 program is converted with debug info and run
by the runtime on NeMo's inputs for the clip (`runs.reference_feeds`), and every op Core AI maps back to a
torch.export node is read out (`coreai_torch.debugging`: `TorchFXInspector` on the fp32 program for PyTorch's exact
values, `CoreAIInspector` on the fp16 program, `get_torch_to_coreai_output_mapping`, `compare_intermediates` -
the same pieces `core.coreai.drift` uses). Each op is checked like the MIL analysis (`hazards`): NaN/Inf that fp32
does not have, fp32 values past fp16's 65504, integer values above 2048 held in fp16, values collapsing below
fp16's normal range, the first op past `threshold` of its fp32 magnitude; weights fp16 cannot hold are `constant`
hazards. Each hazard names the torch.export node and aten op, its NeMo module (`nn_module_stack`) and the PyTorch
source line from Core AI's debug locations.

Ranking (Core AI cannot replace an op's output inside its runtime): the effect of a group of flagged ops (one
per NeMo module and kind) is measured by running the fp16 exported program in PyTorch with that group's outputs
given their fp32 values (an op fed a mix of fp32 and fp16 computes in fp32 and rounds its output to fp16, as the
MIL interpreter does) - the output's max |Δ| to fp32 before minus after. The figure is PyTorch's fp16, the report
says so; the max |Δ| per component is the Core AI runtime's.

Decode: `coreai_decode.decode_check`.
"""

from __future__ import annotations

import asyncio
import copy
import threading
from pathlib import Path
from typing import Any

import numpy as np

from rnnt_tui.core.checkpoint import LoadedModel
from rnnt_tui.core.components import DECODER, ENCODER, JOINT
from rnnt_tui.core.errors import CancelledError, RnntTuiError
from rnnt_tui.core.precision.coreai_decode import halved, padded_feeds
from rnnt_tui.core.precision.hazards import (
    DEFAULT_THRESHOLD,
    EXACT_INTEGERS,
    FP16_MAX,
    FP16_TINY,
    KINDS,
    MAIN_OUTPUT,
    MAX_RANKED_GROUPS,
    UNDERFLOW_SHARE,
    ComponentHazards,
    Hazard,
)
from rnnt_tui.core.precision.runs import Feeds, max_diff, value_range
from rnnt_tui.core.progress import Progress, no_progress

FP16_COMPONENTS = (ENCODER, DECODER, JOINT)
EFFECT_NOTE = ("effect: the output's max |Δ| removed when the group's ops get their fp32 values, measured in "
               "PyTorch's fp16 execution of the same exported program (Core AI's runtime cannot substitute an op)")
PREPROCESSOR_NOTE = ("preprocessor: stays fp32 in Core AI's fp16 conversion (log-mel and normalisation are "
                     "range-sensitive); not certified here")


def _label() -> str:
    from rnnt_tui.core.coreai.platform import label_text

    return label_text()


def _integer_valued(values: np.ndarray) -> bool:
    finite = values[np.isfinite(values)]
    return bool(finite.size) and bool(np.all(finite == np.round(finite)))


def _checks(ref: np.ndarray, cand: np.ndarray, where: tuple[str, str, str, str | None, str]) -> list[Hazard]:
    """The range hazards of one op: its fp32 PyTorch value `ref` and its fp16 value `cand` (seen in the Core AI
    runtime, or in PyTorch's fp16 execution where the runtime fused the op away: `where[4]` says which)."""
    node, target, module, source, seen = where
    found = []
    ref64, cand64 = ref.astype(np.float64), cand.astype(np.float64)
    bad = int((~np.isfinite(cand64)).sum())
    if bad and np.isfinite(ref64).all():
        found.append(Hazard("nonfinite", node, target, module, f"{int(np.isnan(cand64).sum())} NaN, "
                            f"{int(np.isinf(cand64).sum())} Inf [{seen}]", float(bad), source=source))
    if cand.dtype != np.float16:
        return found
    finite = ref64[np.isfinite(ref64)]
    peak = float(np.abs(finite).max()) if finite.size else 0.0
    if peak > FP16_MAX:
        found.append(Hazard("overflow", node, target, module, f"fp32 value reaches {peak:.4g} > 65504 [{seen}]", peak,
                            source=source))
    if peak > EXACT_INTEGERS and _integer_valued(ref64):
        found.append(Hazard("inexact-integer", node, target, module,
                            f"integer values up to {peak:.0f} held in fp16 (exact only up to 2048) [{seen}]", peak,
                            source=source))
    nonzero = np.abs(finite[finite != 0])
    share = float((nonzero < FP16_TINY).mean()) if nonzero.size else 0.0
    if share >= UNDERFLOW_SHARE:
        found.append(Hazard("underflow", node, target, module,
                            f"{share:.0%} of the nonzero fp32 values are below fp16's normal range [{seen}]", share,
                            source=source))
    return found


def _constants(module: Any, component: str) -> list[Hazard]:
    """Weights and buffers the fp16 copy cannot hold (|x| > 65504): they become inf in the asset."""
    found = []
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        if tensor.is_floating_point() and tensor.numel():
            peak = float(tensor.detach().abs().max())
            if peak > FP16_MAX:
                owner = name.rpartition(".")[0]
                found.append(Hazard("constant", name, "weight", f"{component}.{owner.split('.', 1)[-1]}",
                                    f"|x| up to {peak:.4g}: not representable in fp16", peak))
    return found


def _emulate(program: Any, args: tuple[Any, ...], values: dict[str, Any]) -> tuple[Any, ...]:
    """Run the fp16 exported `program` in PyTorch with the nodes in `values` replaced by those (fp32) tensors; an fp16
    op fed an fp32 value computes in fp32 and rounds its float outputs to fp16 (fp32 does not spread downstream)."""
    import torch

    class Substituting(torch.fx.Interpreter):
        def run_node(self, n: torch.fx.Node) -> Any:
            if n.name in values:
                return values[n.name]
            if n.op != "call_function":
                return super().run_node(n)
            args_, kwargs = self.fetch_args_kwargs_from_env(n)
            flat = [a for a in torch.utils._pytree.tree_leaves((args_, kwargs)) if isinstance(a, torch.Tensor)]
            want = getattr(n.meta.get("val"), "dtype", None)
            if want != torch.float16 or not any(a.dtype == torch.float32 for a in flat):
                return getattr(self, n.op)(n.target, args_, kwargs)
            up = torch.utils._pytree.tree_map(
                lambda a: a.float() if isinstance(a, torch.Tensor) and a.dtype == torch.float16 else a,
                (args_, kwargs))
            out = n.target(*up[0], **up[1])  # type: ignore[operator]
            return torch.utils._pytree.tree_map(  # the graph's fp16 op: computed in fp32, its output rounded
                lambda a: a.half() if isinstance(a, torch.Tensor) and a.is_floating_point() else a, out)

    with torch.no_grad():
        out = Substituting(program.module()).run(*args)
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _rank(program16: Any, args16: tuple[Any, ...], ref_out: Feeds, names_out: tuple[str, ...],
          torch32: dict[str, Any], found: list[Hazard], cancel: threading.Event | None) -> list[Hazard]:
    """Group the hazards (NeMo module, kind) and measure each group's effect (see the module docstring)."""
    import torch

    def diff(values: dict[str, Any]) -> float:
        out = _emulate(program16, args16, values)
        return max_diff(ref_out, {n: o.float().numpy() for n, o in zip(names_out, out, strict=False)})

    keys = list(dict.fromkeys((h.module, h.kind) for h in found))
    group_of = {key: i for i, key in enumerate(keys)}
    effects: dict[int, float] = {}
    nodes = {n.name: n for n in program16.graph.nodes}
    base = diff({})
    order = sorted(keys, key=lambda k: KINDS.index(k[1]))
    for key in order[:MAX_RANKED_GROUPS]:
        if cancel is not None and cancel.is_set():
            raise CancelledError("cancelled while ranking hazards")
        values = {}
        for h in found:
            ref = (torch32.get(h.op) or [None])[0]
            if (h.module, h.kind) == key and h.op in nodes and ref is not None:
                values[h.op] = torch.from_numpy(np.asarray(ref, np.float32))
        if values:
            try:
                effects[group_of[key]] = base - diff(values) if np.isfinite(base) else (
                    float("inf") if np.isfinite(diff(values)) else 0.0)
            except (RuntimeError, ValueError, TypeError):
                continue  # this group alone cannot be substituted consistently: no effect measured
    ranked = [Hazard(h.kind, h.op, h.op_type, h.module, h.detail, h.value, group_of[(h.module, h.kind)],
                     effects.get(group_of[(h.module, h.kind)]), h.source) for h in found]
    return sorted(ranked, key=lambda h: (-(h.effect if h.effect is not None else -1.0), KINDS.index(h.kind)))


def analyse_component(loaded: LoadedModel, component: str, feeds: Feeds, threshold: float = DEFAULT_THRESHOLD,
                      cancel: threading.Event | None = None) -> ComponentHazards:
    """Hazards of `component`'s Core AI fp16 program against PyTorch fp32 on `feeds` (contract-named, NeMo's)."""
    import torch

    from rnnt_tui.core.coreai.convert import IO, _example
    from rnnt_tui.core.coreai.drift import coreai_intermediates, module_path, source_line, torch_intermediates
    from rnnt_tui.core.coreai.execute import native_stderr_captured
    from rnnt_tui.core.coreai.export import export_program, load_coreai_torch
    from rnnt_tui.core.quiet import quiet

    coreai_torch = load_coreai_torch()  # before its debugging package, so its torch-version warning stays quiet
    from coreai_torch.debugging.intermediates import compare_intermediates

    names_in, names_out = IO[component]
    feeds32 = {n: np.ascontiguousarray(feeds[n]) for n in names_in}
    feeds16 = halved(feeds32)
    module32, example, dynamic, _ = _example(loaded, component, None, False)
    module16 = copy.deepcopy(module32).half()  # the user's model keeps its fp32 weights
    args32 = tuple(torch.from_numpy(v) for v in feeds32.values())
    args16 = tuple(torch.from_numpy(v) for v in feeds16.values())
    half = tuple(a.half() if a.is_floating_point() else a for a in example)
    with native_stderr_captured(), quiet():  # exported on the conversion's own example shapes, run on the clip's
        program32 = export_program(module32, example, dynamic)
        program16 = export_program(module16, half, dynamic)
        converter = coreai_torch.TorchConverter(mode=coreai_torch.TorchConverter.Mode.DEBUG)
        converter.add_exported_program(program16, input_names=list(names_in), output_names=list(names_out))
        ai_program = converter.to_coreai()
        loop = asyncio.new_event_loop()
        try:
            torch32 = loop.run_until_complete(torch_intermediates(program32, dict(zip(names_in, args32, strict=True))))
            torch16 = loop.run_until_complete(torch_intermediates(program16, dict(zip(names_in, args16, strict=True))))
            mappings, coreai16, outputs = loop.run_until_complete(coreai_intermediates(ai_program, feeds16))
        finally:
            loop.close()
        del ai_program, converter
    with torch.no_grad():
        ref = program32.module()(*args32)
    ref_out = {n: o.numpy() for n, o in zip(names_out, ref if isinstance(ref, tuple) else (ref,), strict=False)}
    cand_out = {n: np.asarray(outputs[n]) for n in names_out if n in outputs}
    from_runtime = {}
    for name, mapping in mappings.items():
        got = coreai16.get(mapping.target_op_id)
        if got and len(got) == 1 and got[0] is not None and len(torch32.get(name) or []) == 1:
            from_runtime[name] = got[0]  # multi-output ops: the runtime's order is not stable (Apple's note)
    apple = compare_intermediates(torch32, coreai16, mappings, atol=0.0, rtol=threshold)
    found: list[Hazard] = []
    first_drift: Hazard | None = None
    first_nonfinite: Hazard | None = None
    checked = 0
    for node in program16.graph.nodes:
        ref_v, cand_v = torch32.get(node.name), from_runtime.get(node.name)
        seen = "Core AI"
        if cand_v is None:
            cand_v, seen = (torch16.get(node.name) or [None, None])[0] if len(torch16.get(node.name) or []) == 1 \
                else None, "PyTorch fp16"
        if node.op != "call_function" or not ref_v or len(ref_v) != 1 or ref_v[0] is None or cand_v is None:
            continue
        ref_a, cand_a = np.squeeze(np.asarray(ref_v[0])), np.squeeze(np.asarray(cand_v))
        if ref_a.dtype.kind != "f" or ref_a.shape != cand_a.shape or not ref_a.size:
            continue
        checked += 1
        where = (node.name, str(node.target), module_path(node, component) or f"{component} (the wrapper)",
                 source_line(node), seen)
        op_found = _checks(ref_a, cand_a, where)
        found += op_found
        if first_nonfinite is None:
            first_nonfinite = next((h for h in op_found if h.kind == "nonfinite"), None)
        finite = np.isfinite(ref_a) & np.isfinite(cand_a.astype(np.float64))
        peak = float(np.abs(ref_a[finite]).max()) if finite.any() else 0.0
        diff = float(np.abs(ref_a[finite].astype(np.float64) - cand_a[finite]).max()) if finite.any() else 0.0
        if first_drift is None and peak > 0 and diff > threshold * peak:
            first_drift = Hazard("drift", node.name, str(node.target), where[2],
                                 f"max |Δ| {diff:.4g} = {diff / peak:.2%} of max |x| {peak:.4g} [{seen}]",
                                 diff / peak, source=where[3])
            found.append(first_drift)
    found += _constants(module32, component)
    ranked = _rank(program16, args16, ref_out, names_out, torch32, found, cancel) if found else []
    output = MAIN_OUTPUT[component]
    return ComponentHazards(component=component, package=f"{component} (Core AI fp16, converted in memory)",
                            reference_package=f"{component} (PyTorch fp32, NeMo's modules)", output=output,
                            max_diff=max_diff(ref_out, cand_out), output_range=value_range(ref_out, output),
                            finite=all(np.isfinite(np.asarray(v, np.float64)).all() for v in cand_out.values()
                                       if np.asarray(v).dtype.kind == "f"),
                            first_nonfinite=first_nonfinite, first_drift=first_drift, hazards=tuple(ranked),
                            ops=checked, label=_label(),
                            observed=f"{len(from_runtime)} of {checked} ops' values read from the Core AI runtime "
                                     f"(Apple's comparison: {dict(apple.summary())}); the ops it fuses away are "
                                     "read from PyTorch's fp16 execution of the same exported program")


def analyse(loaded: LoadedModel, feeds: dict[str, Feeds], components: tuple[str, ...] = FP16_COMPONENTS,
            threshold: float = DEFAULT_THRESHOLD, progress: Progress = no_progress,
            cancel: threading.Event | None = None) -> list[ComponentHazards]:
    """Every fp16 component in `components`; one that fails reports its error and the others go on."""
    out = []
    wanted = [c for c in FP16_COMPONENTS if c in components]
    for i, component in enumerate(wanted):
        if cancel is not None and cancel.is_set():
            raise CancelledError("cancelled during the hazard analysis")
        progress(f"Hazards: {component} ({_label()})", i / max(1, len(wanted)))
        try:
            out.append(analyse_component(loaded, component, padded_feeds(loaded, component, feeds[component]),
                                         threshold, cancel))
        except CancelledError:
            raise
        except (RnntTuiError, ValueError, RuntimeError, MemoryError) as exc:
            out.append(ComponentHazards(component=component, package=f"{component} (Core AI fp16)",
                                        reference_package="PyTorch fp32", error=f"{type(exc).__name__}: {exc}",
                                        label=_label()))
    progress("Hazards: done", 1.0)
    return out


def certify_coreai(loaded: LoadedModel, clip: Path | str, components: tuple[str, ...] = FP16_COMPONENTS,
                   threshold: float = DEFAULT_THRESHOLD, progress: Progress = no_progress,
                   cancel: threading.Event | None = None) -> Any:
    """The precision report of the Core AI fp16 conversion of `loaded` on `clip` (a `certify.PrecisionReport`)."""
    from rnnt_tui.core.audio import encoder_frame_seconds, load_audio
    from rnnt_tui.core.precision.certify import PrecisionReport
    from rnnt_tui.core.precision.coreai_decode import decode_check
    from rnnt_tui.core.precision.runs import reference_feeds

    clip = Path(clip).expanduser()
    summary = loaded.summary
    audio = load_audio(clip, summary.sample_rate or 16000,
                       min_seconds=encoder_frame_seconds(summary.window_stride, summary.encoder.subsampling_factor))
    feeds = reference_feeds(loaded, audio.samples)
    hazards = analyse(loaded, feeds, components, threshold,
                      lambda m, f: progress(m, None if f is None else 0.8 * f), cancel)
    errors: list[str] = []
    decode, fed_by = None, ""
    if DECODER in components and JOINT in components:
        progress("Decode through the Core AI fp16 assets", 0.8)
        try:
            decode, fed_by = decode_check(loaded, feeds, ENCODER in components, cancel)
        except CancelledError:
            raise
        except (RnntTuiError, ValueError, RuntimeError) as exc:
            errors.append(f"decode through the Core AI fp16 assets failed: {exc}")
    notes = [PREPROCESSOR_NOTE, EFFECT_NOTE]
    if decode is not None:
        notes.append(f"decode: the fp16 decoder and joint assets fed by {fed_by}, against NeMo's fp32 modules")
    return PrecisionReport(checkpoint=str(loaded.path), clip=str(clip), candidate="Core AI fp16",
                           hazards=tuple(hazards), decode=decode, errors=tuple(errors), label=_label(),
                           notes=tuple(notes))
