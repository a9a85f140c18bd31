"""`--packages DIR` for Core AI: which function of which `.aimodel` asset runs which component, with every asset
and function accounted for (mapped, or skipped with the reason).

A function is recognised by its input names (rnnt-tui's contract names, or the common exporter's: `mel`,
`audio_length`, `h_in`, …): audio_signal + length → preprocessor, features + features_length → encoder, targets
+ h + c → decoder, encoded + decoder_output → joint; its outputs must then carry that component's outputs. Each
function's contract-to-asset name maps travel with it, so outputs are always read by name. An asset that says
what it is (rnnt-tui's `rnnt_tui.component` metadata, or a file named `<component>.aimodel`) but has no function
that fits is refused - one `BadInputError` naming the file and the signature - and so is a bad asset (see
`assets.read_asset`), a folder of Core ML packages, or a folder with no asset. Several functions of one asset that
fit one component are static-shape entrypoints (one per length bucket): all are kept and the runtime calls the
smallest that holds the clip. Nothing is written into the folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnt_tui.core.components import COMPONENTS, DECODER, ENCODER, JOINT, PREPROCESSOR
from rnnt_tui.core.coreai.assets import SUFFIX, AssetInfo, FunctionSpec, read_asset
from rnnt_tui.core.errors import BadInputError

#: contract input and output names per component (outputs as the asset names them: h_out / c_out)
CONTRACT = {PREPROCESSOR: (("audio_signal", "length"), ("features", "features_length")),
            ENCODER: (("features", "features_length"), ("encoded", "encoded_length")),
            DECODER: (("targets", "h", "c"), ("decoder_output", "h_out", "c_out")),
            JOINT: (("encoded", "decoder_output"), ("logits",))}
#: names other exporters use, per contract name
ALIASES = {"length": ("audio_length",), "features": ("mel", "audio_features"),
           "features_length": ("mel_length", "feature_length"), "encoded": ("encoder", "encoder_output"),
           "encoded_length": ("encoder_length",), "h": ("h_in",), "c": ("c_in",), "h_out": ("h",),
           "c_out": ("c",), "decoder_output": ("decoder",), "targets": ("target",)}
_CORE_ML = (".mlpackage", ".mlmodelc", ".mlmodel")


@dataclass(frozen=True)
class FunctionMap:
    """One function bound to a component: contract name → the asset's name, for inputs and outputs."""

    asset: AssetInfo
    function: FunctionSpec
    component: str
    inputs: dict[str, str]
    outputs: dict[str, str]

    @property
    def label(self) -> str:
        return f"{self.asset.path.name}:{self.function.name}"


@dataclass(frozen=True)
class AssetEntry:
    """One asset function (or other file) of the folder: what it runs (None: skipped) and why."""

    path: str
    function: str | None
    mapped_to: str | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "function": self.function, "mapped_to": self.mapped_to, "reason": self.reason}

    def line(self) -> str:
        where = f"{Path(self.path).name}{':' + self.function if self.function else ''}"
        return f"{where} → {self.mapped_to}: {self.reason}" if self.mapped_to else f"{where} skipped: {self.reason}"


@dataclass
class Matched:
    used: dict[str, list[FunctionMap]] = field(default_factory=dict)
    entries: list[AssetEntry] = field(default_factory=list)


def _find(names: set[str], wanted: str) -> str | None:
    for candidate in (wanted, *ALIASES.get(wanted, ())):
        if candidate in names:
            return candidate
    return None


def fit(asset: AssetInfo, function: FunctionSpec, component: str) -> FunctionMap | str:
    """The function's name maps for `component`, or why it does not fit."""
    wanted_in, wanted_out = CONTRACT[component]
    have_in = {t.name for t in function.inputs}
    have_out = {t.name for t in function.outputs}
    inputs = {w: _find(have_in, w) for w in wanted_in}
    outputs = {w: _find(have_out, w) for w in wanted_out}
    missing = [w for w, n in inputs.items() if n is None] + [w for w, n in outputs.items() if n is None]
    if missing:
        return (f"{function.signature()} does not fit the {component} (needs inputs {', '.join(wanted_in)} and "
                f"outputs {', '.join(wanted_out)}; missing {', '.join(missing)})")
    extra = have_in - {n for n in inputs.values() if n}
    if extra:
        return f"{function.signature()} has inputs the {component} does not feed: {', '.join(sorted(extra))}"
    return FunctionMap(asset, function, component, {k: v for k, v in inputs.items() if v},
                       {k: v for k, v in outputs.items() if v})


def _role(function: FunctionSpec) -> str | None:
    names = {t.name for t in function.inputs}
    for component in (DECODER, JOINT, ENCODER, PREPROCESSOR):
        if all(_find(names, w) for w in CONTRACT[component][0]):
            return component
    return None


def _claimed(asset: AssetInfo) -> str | None:
    if asset.component in COMPONENTS:
        return asset.component
    stem = asset.path.stem.lower()
    return stem if stem in COMPONENTS else None


def match_assets(folder: Path | str) -> Matched:
    """Map the assets in `folder` (or the one asset `folder` is) to components; BadInputError on a bad one."""
    root = Path(folder).expanduser()
    if not root.exists():
        raise BadInputError(root, "no such folder of Core AI assets")
    if root.suffix in _CORE_ML:
        raise BadInputError(root, "this is a Core ML package, not a Core AI asset (.aimodel); use --against coreml "
                                  "or mil for Core ML packages")
    paths = [root] if root.suffix == SUFFIX else sorted(root.iterdir())
    assets = [p for p in paths if p.suffix == SUFFIX]
    if not assets:
        core_ml = [p.name for p in paths if p.suffix in _CORE_ML]
        if core_ml:
            raise BadInputError(root, f"holds Core ML packages ({', '.join(core_ml)}), not Core AI assets (.aimodel); "
                                      "use --against coreml or mil for them")
        raise BadInputError(root, "holds no Core AI assets (*.aimodel)")
    matched = Matched()
    for path in paths:
        if path.suffix != SUFFIX:
            why = ("a Core ML package: Core AI does not run it (use --against coreml or mil)"
                   if path.suffix in _CORE_ML else "not a Core AI asset")
            matched.entries.append(AssetEntry(str(path), None, None, why))
            continue
        asset = read_asset(path)
        claimed = _claimed(asset)
        fitted = False
        problems: list[str] = []
        for function in asset.functions.values():
            role = claimed or _role(function)
            if role is None:
                matched.entries.append(AssetEntry(str(path), function.name, None,
                                                  f"{function.signature()} matches no component"))
                continue
            result = fit(asset, function, role)
            if isinstance(result, str):
                problems.append(result)
                matched.entries.append(AssetEntry(str(path), function.name, None, result))
                continue
            fitted = True
            taken = matched.used.setdefault(role, [])
            if taken and taken[0].asset.path != path:
                matched.entries.append(AssetEntry(str(path), function.name, None,
                                                  f"a second {role}: {taken[0].label} is used"))
                continue
            taken.append(result)
            how = "static-shape entrypoint" if len(taken) > 1 else f"{asset.producer or 'Core AI'} asset"
            matched.entries.append(AssetEntry(str(path), function.name, role, how))
        if claimed is not None and not fitted:
            raise BadInputError(path, f"it is a {claimed} asset but no function fits: {problems[0]}")
    return matched
