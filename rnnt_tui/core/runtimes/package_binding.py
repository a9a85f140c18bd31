"""A Core ML package's inputs and outputs in the component contract's terms: what `PackageRuntime.bind` does
around the engine's call, as functions of the package (`PackageInfo`) alone.

In: `package_feed` names each contract input as the package does, transposes [B,T,D] layouts, casts to the dtype
the engine is fed for the declared one, and fits the time axis to the package's bounds (`fit_time_axis`: zero-pads
up to a fixed window or the smallest enumerated shape, or refuses a clip longer than the package allows, naming the
bound and how to fix it) - all before the timed call. Out: `contract_outputs` maps outputs back to contract names,
undoes the layout and crops away what padding added (`output_crops`); `pad_notes` says what padding did. Joints and
decision heads are called in tiles their shapes accept (`joint_tiles`, `tile_feeds`, `tiled_outputs`): a per-step
package once per cell, a full-window U=1 package once per decoder step, a flexible one once.

Kept apart from the runtime so each rule is read (and tested) on its own. Must not: load or execute a program (the
runtime does, and passes in its feed dtypes and its own widening of outputs, `as_declared`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rnnt_tui.core.components import DECODER, ENCODER, JOINT, PREPROCESSOR
from rnnt_tui.core.coreml.matching import JOINT_DECISION, JOINT_DECISION_STEP, MEL_ENCODER, PackageInfo
from rnnt_tui.core.errors import BadInputError
from rnnt_tui.core.runtimes.base import FunctionCall
from rnnt_tui.core.runtimes.package_inventory import joint_bounds, tiles

#: the time axis of each input with one, in the contract's layout
TIME_AXES: dict[str, dict[str, int]] = {
    PREPROCESSOR: {"audio_signal": 1}, ENCODER: {"features": 2}, DECODER: {}, MEL_ENCODER: {"audio_signal": 1},
    **{k: {"encoded": 2, "decoder_output": 2} for k in (JOINT, JOINT_DECISION, JOINT_DECISION_STEP)}}
#: the components called in tiles of the T x U grid
TILED = (JOINT, JOINT_DECISION, JOINT_DECISION_STEP)
_RENAMED_OUTPUTS = {"h_out": "h", "c_out": "c"}
_UNITS = {"audio_signal": "samples", "features": "feature frames", "encoded": "encoder frames"}
#: tiled outputs that keep their last axis (the others are one value per cell)
_VECTOR_OUTPUTS = ("logits", "top_k_ids", "top_k_logits")

#: an engine's output as the package declares it (Core ML widens fp16 outputs; the runtime undoes that)
AsDeclared = Callable[[PackageInfo, str, np.ndarray], np.ndarray]
#: (start, stop, padded size) of one call along an axis (`package_inventory.tiles`)
Tile = tuple[int, int, int]


class PackageCall(FunctionCall):
    """A bound package call, with what binding did to the inputs (padding) in `notes`."""

    def __init__(self, call: Callable[[], Any], convert: Callable[[Any], dict[str, np.ndarray]],
                 notes: list[str]) -> None:
        super().__init__(call, convert)
        self.notes = notes


def package_feed(component: str, info: PackageInfo, inputs: dict[str, np.ndarray], feed_dtypes: dict[str, Any],
                 label: str) -> tuple[dict[str, Any], dict[str, tuple[int, int]]]:
    """Package-named inputs in the engine's dtypes (`feed_dtypes`: declared dtype -> numpy dtype), and (original,
    padded) time sizes of the padded inputs. `label` names the runtime in a refusal."""
    feed: dict[str, Any] = {name: np.full((1,), value, np.int32) for name, value in info.feeds.items()}
    padded: dict[str, tuple[int, int]] = {}
    for contract, tensor in info.inputs.items():
        spec = info.spec.input(tensor)
        value = np.asarray(inputs[contract])
        btd = info.layouts.get(contract) == "BTD"
        if btd:
            value = value.transpose(0, 2, 1)
        if contract in TIME_AXES[component]:
            axis = 1 if btd else TIME_AXES[component][contract]
            value, original = fit_time_axis(value, axis, spec.fit_bounds(axis, value.shape), info,
                                            f"the {label} {component}: its {contract}")
            if original is not None:
                padded[contract] = (original, value.shape[axis])
        feed[tensor] = np.ascontiguousarray(value, dtype=feed_dtypes.get(spec.dtype, np.float32))
    return feed, padded


def time_capacity(component: str, info: PackageInfo) -> tuple[int, bool] | None:
    """(the most its time input takes, whether that is its only size) for a package of `component`, from its declared
    shapes (ranges, enumerated shapes or a fixed size); None when it has no time input or takes any length."""
    axes = TIME_AXES.get(component, {})
    contract = next((c for c in axes if c in info.inputs and c not in ("decoder_output",)), None)
    if contract is None:
        return None
    spec = info.spec.input(info.inputs[contract])
    axis = 1 if info.layouts.get(contract) == "BTD" else axes[contract]
    if spec.enumerated:
        sizes = {s[axis] for s in spec.enumerated if len(s) > axis}
        return (max(sizes), len(sizes) == 1) if sizes else None
    low, high = spec.bounds(axis)
    return None if high == -1 else (high, low == high)


def fit_time_axis(value: np.ndarray, axis: int, bounds: tuple[int, int], info: PackageInfo,
                  what: str) -> tuple[np.ndarray, int | None]:
    """Check `value`'s time axis against the package's bounds and zero-pad up to the lower bound (a fixed window,
    or the smallest enumerated shape that holds the clip); returns (value, original size if padded). `what` names
    the input in a refusal ("the <runtime> <component>: its <input>")."""
    n, (low, high) = value.shape[axis], bounds
    if high != -1 and n > high:
        bound = info.spec.ours("max_frames")
        hint = f" (converted with max_frames={bound} encoder frames)" if bound else " (its fixed window)"
        fix = "convert with a larger max_frames" if bound else \
            "re-export it with a longer window, or compare it in windows of its length (`rnnt-tui stream --packages`)"
        raise BadInputError(None, f"the clip is too long for {what} has {n} steps on the time axis but "
                                  f"{info.path.name} accepts at most {high}{hint}; use a shorter clip or {fix}")
    if n < low:
        pad = [(0, 0)] * value.ndim
        pad[axis] = (0, low - n)
        return np.pad(value, pad), n
    return value, None


def output_crops(loaded: Any, component: str, padded: dict[str, tuple[int, int]]) -> dict[str, dict[int, int]]:
    """Output contract name -> {axis: size} that undoes the padding of fixed-shape inputs."""
    from rnnt_tui.core.coreml.convert import expected_frames

    if component in (PREPROCESSOR, MEL_ENCODER) and "audio_signal" in padded:
        frames = expected_frames(loaded, PREPROCESSOR, padded["audio_signal"][0])
        if component == PREPROCESSOR:
            return {"features": {2: frames}}
        return {"encoded": {2: expected_frames(loaded, ENCODER, frames)}}
    if component == ENCODER and "features" in padded:
        return {"encoded": {2: expected_frames(loaded, ENCODER, padded["features"][0])}}
    return {}


def contract_outputs(info: PackageInfo, raw: dict[str, Any], crops: dict[str, dict[int, int]],
                     as_declared: AsDeclared) -> dict[str, Any]:
    """The engine's outputs under the contract's names, in its layout, cropped by `crops` (`output_crops`)."""
    out: dict[str, np.ndarray] = {}
    for contract, tensor in info.outputs.items():
        value = as_declared(info, tensor, np.asarray(raw[tensor]))
        if info.layouts.get(contract) == "BTD":
            value = value.transpose(0, 2, 1)
        for axis, size in crops.get(contract, {}).items():
            value = value[tuple(slice(0, size) if a == axis else slice(None) for a in range(value.ndim))]
        if contract == "decoder_output" and value.ndim == 3 and value.shape[1] == 1 and value.shape[2] > 1:
            value = value.reshape(1, -1, 1)  # a [1,1,H] step output in the contract's [1,H,1]
        out[_RENAMED_OUTPUTS.get(contract, contract)] = value
    return out


def pad_notes(info: PackageInfo, padded: dict[str, tuple[int, int]]) -> list[str]:
    """What zero-padding a fixed window did, one line per padded input."""
    return [f"{contract} padded from {n:,} to {size:,} {_UNITS.get(contract, 'steps')} with zeros to fill "
            f"{info.path.name}'s fixed window (outside the timed call, which computes the whole window); "
            "outputs cropped to the clip" for contract, (n, size) in padded.items()]


def joint_tiles(info: PackageInfo, frames: int, steps: int) -> tuple[list[Tile], list[Tile]]:
    """The calls along T (encoder frames) and U (decoder steps) a joint or decision head's shapes accept."""
    enc, dec = joint_bounds(info)
    return tiles(frames, enc), tiles(steps, dec)


def tile_inputs(inputs: dict[str, np.ndarray], t: Tile, u: Tile) -> dict[str, np.ndarray]:
    """One tile's slice of a joint's contract inputs (padding, if the tile needs it, is `package_feed`'s)."""
    return {"encoded": np.asarray(inputs["encoded"])[:, :, t[0]:t[1]],
            "decoder_output": np.asarray(inputs["decoder_output"])[:, :, u[0]:u[1]]}


def tiled_notes(info: PackageInfo, t_tiles: list[Tile], u_tiles: list[Tile], frames: int, steps: int) -> list[str]:
    """What tiling did: how many calls, and padding of a fixed window."""
    notes = []
    if len(t_tiles) * len(u_tiles) > 1:
        notes.append(f"{info.path.name} called {len(t_tiles) * len(u_tiles)} times: {len(t_tiles)} x {len(u_tiles)} "
                     f"tiles of T x U = {frames} x {steps}")
    if any(t[2] > t[1] - t[0] for t in t_tiles):
        notes.append(f"encoded padded to {t_tiles[0][2]} frames per call to fill {info.path.name}'s fixed "
                     "window (outside the timed call); outputs cropped")
    return notes


def tiled_outputs(info: PackageInfo, cells: list[tuple[Tile, Tile]], raw: list[dict[str, Any]], frames: int,
                  steps: int, as_declared: AsDeclared) -> dict[str, np.ndarray]:
    """The tiles' outputs (`raw`, one per cell of `cells`) put back together over the T x U grid: logits-like
    outputs [1,T,U,K], per-cell ones (token id, probability, duration) [1,T,U]."""
    out: dict[str, np.ndarray] = {}
    for ((t0, t1, tp), (u0, u1, up)), result in zip(cells, raw, strict=True):
        for contract, tensor in info.outputs.items():
            value = as_declared(info, tensor, np.asarray(result[tensor])).reshape(tp, up, -1)
            if contract not in out:
                out[contract] = np.zeros((frames, steps, value.shape[-1]), dtype=value.dtype)
            out[contract][t0:t1, u0:u1] = value[: t1 - t0, : u1 - u0]
    return {k: v[None] if k in _VECTOR_OUTPUTS else v[None, ..., 0] for k, v in out.items()}
