"""Which NeMo module each op of a converted program came from: recorded at conversion, read back from metadata.

How: `torch.jit.trace` records, for every node, the chain of module calls it ran under (attribute name and class
of each called module, e.g. `1(ConformerLayer).self_attn(RelPositionMultiHeadAttention)`), and coremltools 9's
TorchScript frontend keeps that chain on every MIL op it makes (`op.scopes[TORCHSCRIPT_MODULE_NAME / _TYPE]`),
including the ops graph passes derive from them. The chain names only modules whose `forward` ran, relative to the
module that called them (a `ModuleList` is skipped: `layers.1` appears as `1`), so each link is resolved against
the component's real module tree: the shallowest descendant with that attribute name *and* class. A link with no
such descendant, or two equally shallow ones, makes the op's module "unknown" rather than a guess. Ops outside
any submodule belong to the component itself (its own forward or the export wrapper) and say "(top level)".

The map is stored in the package's metadata (`rnnt_tui.op_modules`, zlib + base64 JSON {module: [op names]}),
so it travels with the package. Packages converted elsewhere carry no such map: their ops read "unknown".
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

METADATA_KEY = "op_modules"
UNKNOWN = "unknown"


def walk(block: Any) -> Iterator[Any]:
    """Every op of a MIL block, nested blocks first (program order)."""
    for op in list(block.operations):
        for inner in op.blocks:
            yield from walk(inner)
        yield op


def sanitized(name: str) -> str:
    """An op name as coremltools writes it into the saved program (invalid characters → '_', 'op_' before a
    leading non-letter)."""
    clean = re.sub("[^a-zA-Z0-9_]", "_", name)
    return f"op_{clean}" if re.match("[^a-zA-Z_]", clean) else clean


class ModuleResolver:
    """Resolves traced scope chains against one NeMo component (`prefix` is its attribute on the model)."""

    def __init__(self, root: Any, prefix: str) -> None:
        self.prefix = prefix
        self.modules = {name: type(module).__name__ for name, module in root.named_modules() if name}
        self._memo: dict[tuple[tuple[str, str], ...], str] = {}

    def resolve(self, chain: tuple[tuple[str, str], ...]) -> str:
        if chain in self._memo:
            return self._memo[chain]
        path = ""
        for name, kind in chain:
            candidates = [q for q, t in self.modules.items() if t == kind and q.rsplit(".", 1)[-1] == name
                          and (not path or q.startswith(path + "."))]
            if not candidates:
                path = UNKNOWN
                break
            depth = min(q.count(".") for q in candidates)
            best = [q for q in candidates if q.count(".") == depth]
            if len(best) != 1:
                path = UNKNOWN
                break
            path = best[0]
        found = UNKNOWN if path == UNKNOWN else (f"{self.prefix}.{path}" if path else f"{self.prefix} (top level)")
        self._memo[chain] = found
        return found


def scope_chain(op: Any) -> tuple[tuple[str, str], ...] | None:
    """(attribute, class) of the modules an op ran under, or None when the op carries no TorchScript scope."""
    from coremltools.converters.mil.mil.scope import ScopeSource  # coremltools: only at conversion

    names = op.scopes.get(ScopeSource.TORCHSCRIPT_MODULE_NAME)
    types = op.scopes.get(ScopeSource.TORCHSCRIPT_MODULE_TYPE)
    if not names or not types or len(names) != len(types):
        return None
    return tuple(zip(names[:-1], types[:-1], strict=True))


def record(prog: Any, resolver: ModuleResolver) -> dict[str, str]:
    """Op name -> NeMo module for every non-const op of a converted program (`MLModel._mil_program`)."""
    out: dict[str, str] = {}
    for function in prog.functions.values():
        for op in walk(function):
            if op.op_type == "const":
                continue
            chain = scope_chain(op)
            out[op.name] = UNKNOWN if chain is None else resolver.resolve(chain)
    return out


def encode(mapping: dict[str, str]) -> str:
    grouped: dict[str, list[str]] = defaultdict(list)
    for op, module in mapping.items():
        grouped[module].append(op)
    blob = json.dumps(grouped, separators=(",", ":"), sort_keys=True).encode()
    return base64.b64encode(zlib.compress(blob, 9)).decode()


def decode(text: str | None) -> dict[str, str]:
    """The op → module map from a metadata value; {} when absent or unreadable."""
    if not text:
        return {}
    try:
        grouped = json.loads(zlib.decompress(base64.b64decode(text)))
        return {op: module for module, ops in grouped.items() for op in ops}
    except (ValueError, zlib.error, TypeError, AttributeError):
        return {}


def module_of(mapping: dict[str, str], op_name: str) -> str:
    return mapping.get(op_name) or mapping.get(sanitized(op_name)) or UNKNOWN
