"""Match a folder of Core ML packages to the transducer's components (works on any OS: only specs are read).

`match_packages` decides which package is which component: our own packages say so in their metadata
(`rnnt_tui.component`); others are recognised from their I/O, with our tensor names and the common parakeet-export
names (encoder `mel`/`audio_signal` + length → `encoder`/`encoder_length`; decoder `targets`, `target_length`,
`h_in`, `c_in` → `decoder`, `h_out`, `c_out`; per-step joint `encoder_step` [1,D,1] + `decoder_step` [1,H,1] →
`logits`). A stateful decoder (`ct.StateType`, macOS 15+: `targets` in, `decoder` out, h and c held in Core ML
states named like the inputs above or `h_state`/`c_state`) is a decoder too: `states` maps h/c to its states and the
runtime carries them between calls (`runtimes.package_state`). Three more kinds, the "heads", are recognised and
resolved too: joint-decision heads (encoder + decoder outputs in, `token_id` / `token_prob` / `duration` - a bin
index into the TDT durations - and optionally `top_k_ids` / `top_k_logits` out) over a full window
(`joint_decision`) or one step (`joint_decision_step`, an encoder input of one frame), and the fused mel+encoder
(`mel_encoder`: audio in, encoder output out). Anything else (a fused decoder+joint, unknown I/O, a second package
of one kind) is kept with the reason it is skipped. `read_folder_metadata` reads the `metadata.json` that exporter
writes beside its packages (declared compute precision, duration bins). A small JSON/YAML mapping file may
override everything:

    encoder: Encoder.mlmodelc            # component: file
    decoder:                             # or component: {file, inputs, outputs, per_step, layouts}
      file: Decoder.mlpackage
      inputs: {targets: token, h: h_in, c: c_in}          # contract name: package tensor name
      outputs: {decoder_output: decoder, h: h_out, c: c_out}
      # a stateful decoder: states: {h: h_state, c: c_state} instead of h/c inputs and outputs
    ignore: [JointDecision.mlpackage]
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rnnt_tui.core.components import COMPONENTS, DECODER, ENCODER, JOINT, PREPROCESSOR
from rnnt_tui.core.coreml.spec import PACKAGE_SUFFIXES, PackageSpec, read_spec
from rnnt_tui.core.errors import BadInputError

MEL_ENCODER = "mel_encoder"
JOINT_DECISION = "joint_decision"
JOINT_DECISION_STEP = "joint_decision_step"
#: package kinds beside the four components that a runtime can still run: decision heads and the fused front end
HEADS = (MEL_ENCODER, JOINT_DECISION, JOINT_DECISION_STEP)
_DECISION_ALIASES = {"token_id": ("token_id", "token_ids", "label", "labels"),
                     "token_prob": ("token_prob", "token_probs", "prob", "probability"),
                     "duration": ("duration", "durations", "duration_id", "duration_ids"),
                     "top_k_ids": ("top_k_ids", "topk_ids"), "top_k_logits": ("top_k_logits", "topk_logits")}

#: tensor-name aliases per (component, contract name); ours first, then common export conventions
ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    PREPROCESSOR: {"audio_signal": ("audio_signal", "audio", "input_signal", "waveform", "signal"),
                   "length": ("length", "audio_length", "input_length", "audio_signal_length", "lengths"),
                   "features": ("features", "mel", "processed_signal", "mel_spectrogram", "melspectrogram"),
                   "features_length": ("features_length", "mel_length", "processed_length",
                                       "processed_signal_length")},
    ENCODER: {"features": ("features", "mel", "audio_signal", "processed_signal", "input_features"),
              "features_length": ("features_length", "length", "mel_length", "lengths", "processed_signal_length"),
              "encoded": ("encoded", "encoder", "encoder_output", "encoder_outputs", "outputs"),
              "encoded_length": ("encoded_length", "encoder_length", "encoded_lengths", "encoder_lengths")},
    DECODER: {"targets": ("targets", "token", "tokens", "target", "y", "input_ids"),
              "h": ("h", "h_in", "hidden", "state_h", "input_states_1", "h_state", "hidden_state"),
              "c": ("c", "c_in", "cell", "state_c", "input_states_2", "c_state", "cell_state"),
              "decoder_output": ("decoder_output", "decoder", "decoder_out", "outputs", "decoder_outputs"),
              "h_out": ("h_out", "hidden_out", "state_h_out", "output_states_1"),
              "c_out": ("c_out", "cell_out", "state_c_out", "output_states_2")},
    JOINT: {"encoded": ("encoded", "encoder", "encoder_outputs", "encoder_output", "encoder_step", "f"),
            "decoder_output": ("decoder_output", "decoder", "decoder_outputs", "decoder_step", "g"),
            "logits": ("logits", "joint_output", "outputs", "output")},
}
ALIASES[MEL_ENCODER] = {**{k: ALIASES[PREPROCESSOR][k] for k in ("audio_signal", "length")},
                        **{k: ALIASES[ENCODER][k] for k in ("encoded", "encoded_length")}}
ALIASES[JOINT_DECISION] = ALIASES[JOINT_DECISION_STEP] = {
    **{k: ALIASES[JOINT][k] for k in ("encoded", "decoder_output")}, **_DECISION_ALIASES}
#: contract names, in order, that each component's package takes and gives (decoder states come back as h_out/c_out)
PACKAGE_INPUTS = {PREPROCESSOR: ("audio_signal", "length"), ENCODER: ("features", "features_length"),
                  DECODER: ("targets", "h", "c"), JOINT: ("encoded", "decoder_output"),
                  MEL_ENCODER: ("audio_signal", "length"), JOINT_DECISION: ("encoded", "decoder_output"),
                  JOINT_DECISION_STEP: ("encoded", "decoder_output")}
PACKAGE_OUTPUTS = {PREPROCESSOR: ("features", "features_length"), ENCODER: ("encoded", "encoded_length"),
                   DECODER: ("decoder_output", "h_out", "c_out"), JOINT: ("logits",),
                   MEL_ENCODER: ("encoded", "encoded_length"), JOINT_DECISION: ("token_id",),
                   JOINT_DECISION_STEP: ("token_id",)}
#: outputs a head may have; taken when present
OPTIONAL_OUTPUTS = {JOINT_DECISION: ("token_prob", "duration", "top_k_ids", "top_k_logits"),
                    JOINT_DECISION_STEP: ("token_prob", "duration", "top_k_ids", "top_k_logits")}
DECISION_OUTPUTS = frozenset(a for names in _DECISION_ALIASES.values() for a in names)
_LENGTH_FEEDS = ("target_length", "target_lengths")


@dataclass(frozen=True)
class PackageInfo:
    """A package matched to a component: which of its tensors plays which contract role, and how to call it.

    `inputs`/`outputs` map contract names (PACKAGE_INPUTS / PACKAGE_OUTPUTS) to the package's tensor names;
    `feeds` are extra inputs fed a constant (a decoder's `target_length` = 1); `layouts` marks [1,T,D] tensors
    ("BTD") among ones the contract keeps [1,D,T]; `per_step` joints take one frame and one step per call;
    `states` names the Core ML states of a stateful decoder's h and c (then neither is an input or output).
    """

    component: str
    spec: PackageSpec
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    feeds: dict[str, int] = field(default_factory=dict)
    layouts: dict[str, str] = field(default_factory=dict)
    per_step: bool = False
    states: dict[str, str] = field(default_factory=dict)  # stateful decoder: h/c -> the Core ML state holding it
    comparable: bool = True
    source: str = "names"
    reason: str = ""

    @property
    def path(self) -> Path:
        return self.spec.path


def _kind(spec: PackageSpec) -> tuple[str, str]:
    """(kind, why) from I/O names and ranks; kind is a component, a head, or a kind that is skipped."""
    ins = {t.name.lower(): t for t in spec.inputs}
    outs = {t.name.lower() for t in spec.outputs}
    has = lambda comp, key, pool: any(a in pool for a in ALIASES[comp][key])  # noqa: E731
    stateful = has(DECODER, "h", ins) and has(DECODER, "c", ins)
    joint_in = has(JOINT, "encoded", ins) and has(JOINT, "decoder_output", ins)
    decision = sorted(outs & DECISION_OUTPUTS)
    if spec.states:
        names = {n.lower() for n in spec.state_names}
        if has(DECODER, "h", names) and has(DECODER, "c", names) and has(DECODER, "targets", ins) \
                and has(DECODER, "decoder_output", outs) and not (joint_in or decision):
            return DECODER, (f"a stateful decoder: h and c live in Core ML states ({', '.join(spec.state_names)}; "
                             "macOS 15+), carried from step to step")
        return "stateful", (f"a stateful package (Core ML states {', '.join(spec.state_names)}, macOS 15+) whose "
                            "states are not a prediction net's h and c: listed, not compared")
    if stateful:
        if joint_in or "encoder_step" in ins or decision:
            return "decoder_joint", "fuses the prediction net and the joint: no per-component comparison"
        return DECODER, "takes h/c states"
    if decision and not has(JOINT, "logits", outs):
        if not joint_in:
            return "decision", "outputs token decisions (" + ", ".join(decision) + ") from inputs that are not " \
                "an encoder and a decoder output"
        encoded = next(ins[a] for a in ALIASES[JOINT]["encoded"] if a in ins)
        if encoded.rank == 3 and (1, 1) in (encoded.bounds(1), encoded.bounds(2)):
            return JOINT_DECISION_STEP, "joint decision for one step (" + ", ".join(decision) + ")"
        return JOINT_DECISION, "joint decision over a window of frames (" + ", ".join(decision) + ")"
    if joint_in and has(JOINT, "logits", outs):
        return JOINT, "takes encoder and decoder outputs, gives logits"
    audio = [t for t in spec.inputs if t.rank == 2 and t.dtype.startswith("float")]
    if audio and has(ENCODER, "encoded", outs) and not has(PREPROCESSOR, "features", outs):
        return MEL_ENCODER, "fuses preprocessor and encoder: takes a [1,S] waveform, gives encoder output"
    if audio:
        return PREPROCESSOR, "takes a [1,S] waveform"
    if any(t.rank == 3 for t in spec.inputs) and has(ENCODER, "encoded", outs):
        return ENCODER, "takes [1,F,T] features, gives encoder output"
    return "unknown", "its inputs and outputs match no component"


def _pick(names: dict[str, str], aliases: tuple[str, ...]) -> str | None:
    return next((names[a] for a in aliases if a in names), None)


def _resolve(kind: str, spec: PackageSpec, summary: Any, override: dict[str, Any]) -> PackageInfo:
    ins = {t.name.lower(): t.name for t in spec.inputs}
    outs = {t.name.lower(): t.name for t in spec.outputs}
    inputs = {k: _pick(ins, ALIASES[kind][k]) for k in PACKAGE_INPUTS[kind]}
    outputs = {k: _pick(outs, ALIASES[kind][k]) for k in PACKAGE_OUTPUTS[kind]}
    states: dict[str, str] = {}
    if kind == DECODER and spec.states:  # h/c are Core ML states, not inputs and outputs
        held = {n.lower(): n for n in spec.state_names}
        states = {k: v for k in ("h", "c") if (v := _pick(held, ALIASES[DECODER][k]))}
        states.update(override.get("states") or {})
        inputs = {k: v for k, v in inputs.items() if k not in ("h", "c")}
        outputs = {k: v for k, v in outputs.items() if k not in ("h_out", "c_out")}
        if len(states) < 2:
            inputs.update({k: None for k in ("h", "c") if k not in states})
    inputs.update(override.get("inputs") or {})
    outputs.update({f"{k}_out" if kind == DECODER and k in ("h", "c") else k: v
                    for k, v in (override.get("outputs") or {}).items()})  # decoder h/c come out as h_out/c_out
    for key in OPTIONAL_OUTPUTS.get(kind, ()):
        if outputs.get(key) is None and (found := _pick(outs, ALIASES[kind][key])):
            outputs[key] = found
    feeds = {ins[n]: 1 for n in _LENGTH_FEEDS if n in ins and kind == DECODER}
    missing = [k for k, v in (*inputs.items(), *outputs.items()) if not v]
    info = PackageInfo(component=kind, spec=spec, inputs={k: v for k, v in inputs.items() if v},
                       outputs={k: v for k, v in outputs.items() if v}, feeds=feeds, states=states,
                       layouts=dict(override.get("layouts") or {}))
    if missing:
        return replace(info, comparable=False, reason=f"no tensor found for {', '.join(missing)}")
    d_model = getattr(getattr(summary, "encoder", None), "d_model", None)
    layouts = dict(info.layouts)
    encoded_in = (JOINT, JOINT_DECISION, JOINT_DECISION_STEP)
    get, names = (spec.input, inputs) if kind in encoded_in else (spec.output, outputs)
    if kind in (*encoded_in, ENCODER, MEL_ENCODER) and "encoded" not in layouts and d_model:
        shape = get(str(names["encoded"])).shape
        if len(shape) == 3 and shape[2] == d_model and shape[1] != d_model:
            layouts["encoded"] = "BTD"
    per_step = bool(override.get("per_step", False))
    if kind in encoded_in and "per_step" not in override:
        enc, dec = spec.input(str(inputs["encoded"])), spec.input(str(inputs["decoder_output"]))
        axis = 1 if layouts.get("encoded") == "BTD" else 2
        per_step = enc.rank == 3 and enc.bounds(axis) == (1, 1) and dec.rank == 3 and 1 in dec.shape
    n_mels = getattr(summary, "n_mels", None)
    if kind == ENCODER and n_mels and (shape := spec.input(str(inputs["features"])).shape) and len(shape) == 3 \
            and n_mels not in shape[1:]:
        return replace(info, layouts=layouts, comparable=False,
                       reason=f"features input {list(shape)} has no axis of the model's {n_mels} mel bins")
    return replace(info, layouts=layouts, per_step=per_step)


def package_info(path: Path | str, summary: Any = None, component: str | None = None) -> PackageInfo:
    """One package's PackageInfo: `component` if given, else from its metadata, else from its I/O."""
    spec = read_spec(path)
    kind, why = (component, "as asked") if component else \
        (str(spec.ours("component")), "rnnt-tui package metadata") if spec.ours("component") in COMPONENTS \
        else _kind(spec)
    if kind not in (*COMPONENTS, *HEADS):
        return PackageInfo(component=kind, spec=spec, comparable=False, reason=why)
    info = _resolve(kind, spec, summary, {})
    return info if info.reason else replace(info, reason=why)


@dataclass(frozen=True)
class FolderMetadata:
    """What an exporter's `metadata.json` beside the packages declares (None where it says nothing)."""

    path: Path
    precision: str | None = None  # "fp32" / "fp16" from its declared compute precision
    declared: str | None = None  # the value as written
    duration_bins: tuple[int, ...] | None = None
    blank_id: int | None = None


def read_folder_metadata(folder: Path | str) -> FolderMetadata | None:
    """The folder's `metadata.json` (the common Parakeet exporter's), or None if there is none or it is not JSON."""
    path = Path(folder).expanduser() / "metadata.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    coreml: dict[str, Any] = data["coreml"] if isinstance(data.get("coreml"), dict) else {}
    declared = coreml.get("compute_precision", data.get("compute_precision"))
    precision = {"FLOAT32": "fp32", "FLOAT16": "fp16", "FP32": "fp32", "FP16": "fp16"}.get(str(declared).upper())
    bins = data.get("duration_bins")
    blank = data.get("blank_id")
    return FolderMetadata(path=path, precision=precision, declared=None if declared is None else str(declared),
                          duration_bins=tuple(int(b) for b in bins) if isinstance(bins, list) else None,
                          blank_id=int(blank) if isinstance(blank, int) else None)


def read_mapping(path: Path | str) -> dict[str, Any]:
    """Parse a JSON or YAML mapping file (see the module docstring)."""
    import yaml

    path = Path(path).expanduser()
    try:
        data = yaml.safe_load(path.read_text())  # JSON is YAML
    except (OSError, yaml.YAMLError) as exc:
        raise BadInputError(path, f"unreadable mapping file ({exc})") from exc
    if not isinstance(data, dict):
        raise BadInputError(path, "a mapping file holds a mapping of component to package")
    if isinstance(data.get("components"), dict):
        data = {**data["components"], "ignore": data.get("ignore") or []}
    kinds = (*COMPONENTS, *HEADS)
    unknown = [k for k in data if k not in (*kinds, "ignore")]
    if unknown:
        raise BadInputError(path, f"unknown component(s) {', '.join(map(str, unknown))}; use {', '.join(kinds)}")
    return {k: ({"file": v} if isinstance(v, str) else v) for k, v in data.items()}


def match_packages(folder: Path | str, summary: Any = None, mapping_file: Path | str | None = None,
                   known: Mapping[str, PackageSpec] | None = None) -> dict[str, PackageInfo]:
    """Match the Core ML packages in `folder` to components and heads (`known`: specs already read, by file name,
    used instead of reading those packages again).

    Returns component or head -> PackageInfo for every usable package found, plus `"<kind>:<file name>"` entries
    (comparable False, with the reason) for every other package: not usable, unrecognised, duplicates, ignored.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise BadInputError(folder, "not a folder of Core ML packages")
    mapping = read_mapping(mapping_file) if mapping_file else {}
    ignored = {str(n) for n in mapping.get("ignore") or []}
    assigned = {str(v["file"]): k for k, v in mapping.items() if k != "ignore" and isinstance(v, dict)}
    for name in assigned:
        if not (folder / name).exists():
            raise BadInputError(folder / name, "named in the mapping file but not in the folder")
    usable = (*COMPONENTS, *HEADS)
    result: dict[str, PackageInfo] = {}
    for path in sorted(p for p in folder.iterdir() if p.suffix in PACKAGE_SUFFIXES):
        spec = known[path.name] if known and path.name in known else read_spec(path)
        if path.name in ignored:
            result[f"ignored:{path.name}"] = PackageInfo(component="ignored", spec=spec, comparable=False,
                                                         source="mapping", reason="ignored by the mapping file")
            continue
        if path.name in assigned:
            kind, source, why = assigned[path.name], "mapping", "named in the mapping file"
        elif spec.ours("component") in COMPONENTS:
            kind, source, why = str(spec.ours("component")), "metadata", "rnnt-tui package metadata"
        else:
            kind, why = _kind(spec)
            source = "names"
        if kind not in usable:
            result[f"{kind}:{path.name}"] = PackageInfo(component=kind, spec=spec, comparable=False,
                                                        source=source, reason=why)
            continue
        info = replace(_resolve(kind, spec, summary, mapping.get(kind, {})), source=source)
        if not info.comparable:
            result[f"{kind}:{path.name}"] = info
        elif kind in result and result[kind].source != "mapping" and source == "mapping":
            old = result.pop(kind)
            result[f"{kind}:{old.path.name}"] = replace(old, comparable=False, reason="superseded by the mapping")
            result[kind] = replace(info, reason=why)
        elif kind in result:
            result[f"{kind}:{path.name}"] = replace(info, comparable=False,
                                                    reason=f"another {kind} package ({result[kind].path.name}) "
                                                           "was matched first; pick one with a mapping file")
        else:
            result[kind] = replace(info, reason=why)
    return result
