"""A model's summary, read from its config alone: what it is, its dimensions, and the joint's fuse mode.

Reading a summary imports neither torch nor NeMo: it parses `model_config.yaml` with a safe YAML loader,
resolves plain `${a.b}` interpolations, and refuses models that are not transducers.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rnnt_tui.core.archive import read_archive
from rnnt_tui.core.errors import BadInputError

SUPPORTED = "RNNT, TDT and hybrid RNNT-CTC transducer models (EncDecRNNTModel, EncDecRNNTBPEModel, " \
            "EncDecHybridRNNTCTCModel and their BPE/TDT variants)"

_INTERP = re.compile(r"\$\{([A-Za-z0-9_.]+)\}")


@dataclass(frozen=True)
class EncoderSummary:
    type: str
    feat_in: int | None
    d_model: int | None
    n_layers: int | None
    n_heads: int | None
    subsampling: str | None
    subsampling_factor: int | None


@dataclass(frozen=True)
class DecoderSummary:
    type: str
    pred_hidden: int | None
    pred_rnn_layers: int | None
    blank_as_pad: bool | None


@dataclass(frozen=True)
class JointSummary:
    type: str
    joint_hidden: int | None
    activation: str | None
    fuse_loss_wer: bool
    fused_batch_size: int | None
    log_softmax: bool | None
    num_classes_with_blank: int
    num_extra_outputs: int


@dataclass(frozen=True)
class ModelSummary:
    """Everything the tool shows about a checkpoint before restoring it."""

    path: str
    model_class: str
    kind: str
    sample_rate: int | None
    n_mels: int | None
    window_stride: float | None
    tokenizer: str
    vocab_size: int
    blank_id: int
    durations: list[int] | None
    encoder: EncoderSummary
    decoder: DecoderSummary
    joint: JointSummary
    nemo_version: str | None
    size_bytes: int
    members: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("members")
        return data


def _resolve(node: Any, root: dict[str, Any], depth: int = 0, memo: dict[int, Any] | None = None) -> Any:
    """`node` with `${a.b}` interpolations replaced. A YAML alias is one object reached twice: it is resolved
    once and shared (memo by id), so an alias "bomb" stays small and a self-referencing alias terminates."""
    memo = {} if memo is None else memo
    if isinstance(node, (dict, list)):
        if id(node) in memo:
            return memo[id(node)]
        if isinstance(node, dict):
            mapping: dict[Any, Any] = {}
            memo[id(node)] = mapping
            mapping.update((k, _resolve(v, root, depth, memo)) for k, v in node.items())
            return mapping
        items: list[Any] = []
        memo[id(node)] = items
        items.extend(_resolve(v, root, depth, memo) for v in node)
        return items
    if isinstance(node, str) and depth < 8:
        whole = _INTERP.fullmatch(node)
        if whole:
            return _resolve(_lookup(root, whole.group(1), node), root, depth + 1, memo)
    return node


def _lookup(root: dict[str, Any], dotted: str, default: Any) -> Any:
    node: Any = root
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _short(target: Any) -> str:
    return str(target).rsplit(".", 1)[-1] if target else "unknown"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_config(text: str, path: Path) -> dict[str, Any]:
    """Parse config YAML safely (no Python tags) and resolve simple interpolations."""
    try:
        data = yaml.safe_load(text)
        if not isinstance(data, dict):
            raise BadInputError(path, "model_config.yaml does not hold a mapping")
        resolved: dict[str, Any] = _resolve(data, data)
    except yaml.YAMLError as exc:
        raise BadInputError(path, f"model_config.yaml is not valid YAML: {exc}") from exc
    except RecursionError as exc:
        raise BadInputError(path, "model_config.yaml is nested too deeply to be a model config") from exc
    return resolved


def _durations(cfg: dict[str, Any]) -> list[int] | None:
    for dotted in ("model_defaults.tdt_durations", "decoding.durations", "loss.tdt_kwargs.durations"):
        value = _lookup(cfg, dotted, None)
        if isinstance(value, list) and value:
            return [int(v) for v in value]
    return None


def _kind(cfg: dict[str, Any], model_class: str, path: Path) -> str:
    decoder = cfg.get("decoder") or {}
    joint = cfg.get("joint")
    is_transducer = isinstance(joint, dict) and "RNNT" in str(decoder.get("_target_", "RNNTDecoder"))
    if not is_transducer:
        what = "a CTC model" if "CTC" in model_class or "ConvASRDecoder" in str(decoder.get("_target_")) \
            else "not a transducer model"
        if not cfg.get("preprocessor") or not cfg.get("encoder"):
            what = "not an ASR model"
        raise BadInputError(path, f"{what} ({model_class}); rnnt-tui supports {SUPPORTED}")
    loss_name = str(_lookup(cfg, "loss.loss_name", ""))
    tdt = loss_name == "tdt" or _lookup(cfg, "decoding.model_type", "") == "tdt"
    base = "tdt" if tdt else "rnnt"
    return f"hybrid-{base}-ctc" if "aux_ctc" in cfg else base


def _vocab_size(cfg: dict[str, Any]) -> int:
    decoder = cfg.get("decoder") or {}
    joint = cfg.get("joint") or {}
    for value in (decoder.get("vocab_size"), joint.get("num_classes")):
        number = _int(value)
        if number is not None and number > 0:
            return number
    labels = cfg.get("labels") or joint.get("vocabulary")
    return len(labels) if isinstance(labels, list) else 0


def summarize_config(cfg: dict[str, Any], path: Path, size_bytes: int = 0,
                     members: dict[str, int] | None = None) -> ModelSummary:
    """Build a ModelSummary from a parsed config; refuse non-transducers with what the model is."""
    model_class = _short(cfg.get("target"))
    kind = _kind(cfg, model_class, path)
    pre = cfg.get("preprocessor") or {}
    enc = cfg.get("encoder") or {}
    dec = cfg.get("decoder") or {}
    joint = cfg.get("joint") or {}
    jointnet = joint.get("jointnet") or {}
    prednet = dec.get("prednet") or {}
    vocab = _vocab_size(cfg)
    durations = _durations(cfg) if kind in ("tdt", "hybrid-tdt-ctc") else None
    extra = _int(joint.get("num_extra_outputs")) or (len(durations) if durations else 0)
    tokenizer = str(_lookup(cfg, "tokenizer.type", "?")) if isinstance(cfg.get("tokenizer"), dict) else "char"
    fuse = bool(joint.get("fuse_loss_wer") or joint.get("experimental_fuse_loss_wer") or False)
    log_softmax = joint.get("log_softmax")
    return ModelSummary(
        path=str(path),
        model_class=model_class,
        kind=kind,
        sample_rate=_int(pre.get("sample_rate")) or _int(cfg.get("sample_rate")),
        n_mels=_int(pre.get("features")) or _int(pre.get("nfilt")),
        window_stride=pre.get("window_stride") if isinstance(pre.get("window_stride"), float) else None,
        tokenizer=tokenizer,
        vocab_size=vocab,
        blank_id=vocab,
        durations=durations,
        encoder=EncoderSummary(
            type=_short(enc.get("_target_")),
            feat_in=_int(enc.get("feat_in")),
            d_model=_int(enc.get("d_model")),
            n_layers=_int(enc.get("n_layers")),
            n_heads=_int(enc.get("n_heads")),
            subsampling=enc.get("subsampling") if isinstance(enc.get("subsampling"), str) else None,
            subsampling_factor=_int(enc.get("subsampling_factor")),
        ),
        decoder=DecoderSummary(
            type=_short(dec.get("_target_")),
            pred_hidden=_int(prednet.get("pred_hidden")),
            pred_rnn_layers=_int(prednet.get("pred_rnn_layers")),
            blank_as_pad=dec.get("blank_as_pad") if isinstance(dec.get("blank_as_pad"), bool) else None,
        ),
        joint=JointSummary(
            type=_short(joint.get("_target_")),
            joint_hidden=_int(jointnet.get("joint_hidden")),
            activation=jointnet.get("activation") if isinstance(jointnet.get("activation"), str) else None,
            fuse_loss_wer=fuse,
            fused_batch_size=_int(joint.get("fused_batch_size")),
            log_softmax=log_softmax if isinstance(log_softmax, bool) else None,
            num_classes_with_blank=vocab + 1 + extra,
            num_extra_outputs=extra,
        ),
        nemo_version=str(cfg["nemo_version"]) if cfg.get("nemo_version") else None,
        size_bytes=size_bytes,
        members=dict(members or {}),
    )


def read_summary(path: Path | str) -> ModelSummary:
    """Read a checkpoint's summary from its archive's config, without executing anything from it."""
    path = Path(path).expanduser()
    contents = read_archive(path)
    cfg = parse_config(contents.config_text, path)
    try:
        return summarize_config(cfg, path, path.stat().st_size, contents.members)
    except BadInputError:
        raise
    except (AttributeError, TypeError, ValueError, KeyError, OverflowError) as exc:  # a section of the wrong type
        raise BadInputError(path, f"model_config.yaml has an unexpected layout ({type(exc).__name__}: {exc})") \
            from exc
