"""Any torch module to a Core AI `.aimodel` asset: `torch.export`, decompositions, `coreai_torch.TorchConverter`.

Reusable on purpose (the components here, the streaming encoder steps): `convert_module(module, args, out,
input_names=, output_names=, dynamic_shapes=)` (`convert_entrypoints` for an asset of several functions) exports,
decomposes with coreai-torch's table plus `DECOMPOSITIONS`, converts with outputs named by role (Core AI would
otherwise call them `view_4`, `permute_46`, … in no promised order) and saves the asset; what the libraries print or
warn is captured and returned as notes. Memory: the exported program is dropped once converted (its weights are the
model's own), and the converted program is dropped once its bytecode is written, before the file is hashed
(`save_released`; coreai-core's `save_asset` reads the whole file back while the program is alive), so at most two
copies of the weights (PyTorch's and the program's) are held.

Why extra decompositions: NeMo's preprocessor calls `torch.stft`, which torch.export decomposes into
`aten.unfold` + `aten._fft_r2c`, and its per-feature normalisation calls `aten.isnan`; coreai-torch 0.4.3 lowers
none of them. They are decomposed here into aten ops it does lower, in PyTorch, where they are checked against
torch's own ops (tests): `unfold` as an index gather (frame starts x step + offsets), the one-sided real DFT as
two matmuls with a cos / -sin basis (what Core ML exporters do too; the phase t*k is reduced mod n in integers
first, so the basis is accurate in fp32), and `isnan(x)` as `x != x`. The exported graph is still NeMo's own code.
"""

from __future__ import annotations

import gc
import hashlib
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnt_tui.core.coreai.assets import META_PREFIX
from rnnt_tui.core.quiet import quiet


def _unfold(x: Any, dimension: int, size: int, step: int) -> Any:
    import torch

    dim = dimension % x.dim()
    frames = (x.shape[dim] - size) // step + 1
    index = (torch.arange(frames, device=x.device) * step).unsqueeze(1) + torch.arange(size, device=x.device)
    out = x.movedim(dim, -1)[..., index]  # [..., frames, size]
    return out if dim == x.dim() - 1 else out.movedim(-2, dim)


def _fft_r2c(x: Any, dim: Sequence[int], normalization: int, onesided: bool) -> Any:
    import math

    import torch

    if list(dim) != [x.dim() - 1] or not onesided or normalization != 0:
        raise NotImplementedError("only the one-sided, unnormalised DFT over the last axis is decomposed "
                                  f"(got dim={list(dim)}, normalization={normalization}, onesided={onesided})")
    n = int(x.shape[-1])
    # the phase t*k is reduced mod n in integers, so cos / sin only ever see angles in [0, 2*pi)
    product = torch.arange(n, device=x.device).unsqueeze(1) * torch.arange(n // 2 + 1, device=x.device)
    phase = product - torch.div(product, n, rounding_mode="floor") * n  # mod n (aten.remainder has no lowering)
    angle = phase.to(x.dtype) * (2 * math.pi / n)
    return torch.complex(x @ torch.cos(angle), x @ -torch.sin(angle))


def _isnan(x: Any) -> Any:
    return x != x


def load_coreai_torch() -> Any:
    """coreai_torch, imported without its torch-version warning on screen (it warns even for its own upper bound)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import coreai_torch
    return coreai_torch


def decompositions() -> dict[Any, Any]:
    """coreai-torch's decomposition table plus the three decompositions above."""
    import torch

    coreai_torch = load_coreai_torch()

    aten = torch.ops.aten
    table: dict[Any, Any] = dict(coreai_torch.get_decomp_table())
    table.update({aten.unfold.default: _unfold, aten._fft_r2c.default: _fft_r2c, aten.isnan.default: _isnan})
    return table


def export_program(module: Any, args: tuple[Any, ...], dynamic_shapes: Any = None) -> Any:
    """`torch.export` of `module` (eval mode, no grad) decomposed for coreai-torch."""
    import torch

    with torch.no_grad():
        exported = torch.export.export(module.eval(), args, dynamic_shapes=dynamic_shapes)
        return exported.run_decompositions(decompositions())


def save_released(holder: list[Any], out: Path) -> Any:
    """`AIProgram.save_asset(out)` with the program released before the bytecode is hashed.

    coreai-core's `save_asset` writes the bytecode, then `read_bytes()` the whole file to hash it while the program
    is still alive: a third copy of every weight at the conversion's peak (beside PyTorch's and the program's). The
    same steps here (its own `_AIModelAsset._create`, `_save_bytecode`, producer stamp, `main.hash`) pop the
    program from `holder` (the caller keeps no other reference), drop it once written and hash the file in chunks.
    Where those private names are missing (another coreai-core), `save_asset` itself is used."""
    from shutil import rmtree

    from coreai.authoring import asset as asset_module

    program = holder.pop()
    raw_type = getattr(asset_module, "_AIModelAsset", None)
    producer = getattr(asset_module, "_COREAI_PRODUCER", None)
    if raw_type is None or producer is None or not hasattr(program, "_save_bytecode"):
        return program.save_asset(out)
    if out.exists():
        rmtree(out)
    out.mkdir(parents=True)
    raw = raw_type._create(path=str(out), metadata=None)
    try:
        bytecode = Path(raw._program_bytecode_path)
        program._save_bytecode(bytecode)
        del program
        gc.collect()

        def stamp(meta: Any) -> None:
            meta.creation_date = time.time()
            meta._producer = producer

        raw.update_metadata(updates=stamp)
        digest = hashlib.sha256()
        with bytecode.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 24), b""):
                digest.update(chunk)
        Path(raw._program_hash_path).write_bytes(digest.digest())
    except Exception:
        rmtree(out, ignore_errors=True)
        raise
    return asset_module.AIModelAsset._wrap(raw)


def _clean(text: str) -> list[str]:
    lines: list[str] = []
    for raw in text.replace("\r", "\n").splitlines():
        line = raw.strip()
        if line and not re.search(r"converting \d+ program", line) and line not in lines:
            lines.append(line)
    return lines


@dataclass(frozen=True)
class Entrypoint:
    """One function of an asset to convert: `module` exported on `args`, its inputs, outputs and states named (states:
    the module's registered buffers it updates in place, in order; None: coreai-torch's FX placeholder names)."""

    name: str
    module: Any
    args: tuple[Any, ...]
    input_names: Sequence[str]
    output_names: Sequence[str]
    state_names: Sequence[str] | None = None
    dynamic_shapes: Any = None


def convert_module(module: Any, args: tuple[Any, ...], out: Path, *, input_names: Sequence[str],
                   output_names: Sequence[str], dynamic_shapes: Any = None,
                   metadata: dict[str, Any] | None = None, debug: bool = True,
                   transform: Callable[[Any], Any] | None = None) -> list[str]:
    """Export, convert and save `module` as the `.aimodel` folder `out` (one function, "main"); returns notes.

    `metadata` goes into the asset's custom metadata under `rnnt_tui.<key>`. `debug` keeps PyTorch stack traces in
    the asset (what Apple's comparator uses to name a drifting op's source line). `transform` rewrites the converted
    program before it is saved (weight compression, `core.coreai.weights`)."""
    entry = Entrypoint("main", module, args, input_names, output_names, dynamic_shapes=dynamic_shapes)
    return convert_entrypoints([entry], out, metadata=metadata, debug=debug, transform=transform)


def convert_entrypoints(entries: Sequence[Entrypoint], out: Path, *, metadata: dict[str, Any] | None = None,
                        debug: bool = True, transform: Callable[[Any], Any] | None = None) -> list[str]:
    """`convert_module` for one asset of several functions (`TorchConverter`'s entrypoints: e.g. a streaming step's
    first-chunk and next-chunk functions, whose shared weights coreai-torch stores once); returns notes."""
    coreai_torch = load_coreai_torch()

    if out.suffix != ".aimodel":
        raise ValueError(f"a Core AI asset's folder name ends in .aimodel, got {out.name}")
    with quiet() as q, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mode = coreai_torch.TorchConverter.Mode.DEBUG if debug else coreai_torch.TorchConverter.Mode.RELEASE
        converter = coreai_torch.TorchConverter(mode=mode)
        for entry in entries:
            program = export_program(entry.module, entry.args, entry.dynamic_shapes)
            states = {} if entry.state_names is None else {"state_names": list(entry.state_names)}
            converter.add_exported_program(program, input_names=list(entry.input_names),
                                           output_names=list(entry.output_names), entrypoint_name=entry.name,
                                           **states)
            del program
        ai_program = converter.to_coreai()
        del converter
        gc.collect()
        if transform is not None:
            ai_program = transform(ai_program)
        out.parent.mkdir(parents=True, exist_ok=True)
        holder = [ai_program]
        del ai_program
        asset = save_released(holder, out)  # the program is gone before the bytecode is hashed
        if metadata:
            items = {META_PREFIX + k: v for k, v in metadata.items()}

            def stamp(meta: Any) -> None:
                for key, value in items.items():
                    meta.set_custom(key, value)

            asset.update_metadata(stamp)
    gc.collect()
    notes = _clean(q.text)
    notes += [f"{c.category.__name__}: {c.message}" for c in caught
              if not issubclass(c.category, (DeprecationWarning, FutureWarning, UserWarning, ResourceWarning))]
    return list(dict.fromkeys(notes))
