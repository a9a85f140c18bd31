"""ONNX Runtime candidate: NeMo's own ONNX export of the model, run on onnxruntime (CPU).

What: `model.export("model.onnx")` writes the two graphs NeMo's own ONNX inference uses,
`encoder-model.onnx` (audio_signal f32, length i64 -> outputs, encoded_lengths i64) and
`decoder_joint-model.onnx` (encoder_outputs f32, targets i32, target_length i32, input_states_1/2 f32 ->
outputs [B,T,U,C], prednet_lengths, output_states_1/2). Names and dtypes are read from the sessions, and inputs
are cast in `bind`, before the timed call. There is no preprocessor: NeMo exports none, so the comparison feeds
the reference features to the encoder. Options: `use_cache` False exports into a private temp cache that
close() removes; the export is fp32 on CPUExecutionProvider with onnxruntime's default threads, and the other
options do not apply. A cached graph onnxruntime cannot load (corruption the cache manifest misses) is rebuilt
once.

Why a deepcopy: export mutates what it exports (measured on NeMo 3.0: `decoder._rnnt_export` on, joint
`_fuse_loss_wer` off and `log_softmax` False, `requires_grad` off on every parameter, eval mode; it may also
replace Apex-style submodules), so it runs on a copy and the loaded model keeps every flag it had. The copy takes
a few percent of the export's time but holds a second set of weights while the export runs. During the export
NeMo also swaps the exported module class's `forward` and turns type checks off process-wide, so nothing else
should call the model's modules meanwhile.

The components on this runtime: the decoder_joint graph contains the prediction net but does not expose its
output g, so the decoder step returns only the next state (h, c) - "decoder_output" is omitted - and the joint
takes the prediction-net inputs (`targets`: blank first, then tokens) instead of `decoder_output`, with zero
initial states. In export mode NeMo's decoder does not prepend a start token; `target_length` is only passed
through. A greedy decoder handle is (token, state); each joint step runs decoder_joint on one frame.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rnnt_tui.core.cache import ArtifactCache, CacheEntry, make_key
from rnnt_tui.core.checkpoint import LoadedModel, copy_model
from rnnt_tui.core.components import DECODER, ENCODER, JOINT
from rnnt_tui.core.errors import CancelledError, RuntimeUnavailableError, StepFailedError
from rnnt_tui.core.names import RUNTIME_LABELS
from rnnt_tui.core.quiet import quiet
from rnnt_tui.core.runtimes.base import (
    Availability,
    BoundCall,
    FunctionCall,
    PrepareReport,
    Progress,
    Runtime,
    RuntimeOptions,
    no_progress,
)
from rnnt_tui.versions import package_version

ENCODER_FILE = "encoder-model.onnx"
DECODER_JOINT_FILE = "decoder_joint-model.onnx"
OPSET = 17  # NeMo's default for export(); part of the cache key
PROVIDERS = ("CPUExecutionProvider",)
ENCODER_IO = (("audio_signal", "length"), ("outputs", "encoded_lengths"))
DECODER_JOINT_IO = (("encoder_outputs", "targets", "target_length", "input_states_1", "input_states_2"),
                    ("outputs", "prednet_lengths", "output_states_1", "output_states_2"))
_NP_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
             "tensor(int32)": np.int32, "tensor(int64)": np.int64}


def _check_cancel(cancel: threading.Event | None, stage: str) -> None:
    if cancel is not None and cancel.is_set():
        raise CancelledError(f"cancelled {stage}")


def _graph_io(path: Path) -> dict[str, Any]:
    """Input/output names, dtypes and shapes and the opset of an exported graph, read with onnx (no weights)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)

    def tensors(values: Any) -> list[dict[str, Any]]:
        return [{"name": v.name, "dtype": onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type).lower(),
                 "shape": [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]} for v in values]

    return {"inputs": tensors(model.graph.input), "outputs": tensors(model.graph.output),
            "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None)}


class _Graph:
    """One session, with its I/O names resolved to NeMo's (by name, else by position) and input dtypes."""

    def __init__(self, session: Any, expected: tuple[tuple[str, ...], tuple[str, ...]], label: str) -> None:
        self.session = session
        ins, outs = session.get_inputs(), session.get_outputs()
        self.inputs = self._resolve([i.name for i in ins], expected[0], label, "inputs")
        self.outputs = self._resolve([o.name for o in outs], expected[1], label, "outputs")
        self.dtypes = {i.name: _NP_TYPES.get(i.type, np.float32) for i in ins}
        self.output_names = [self.outputs[name] for name in expected[1]]

    @staticmethod
    def _resolve(actual: list[str], expected: tuple[str, ...], label: str, kind: str) -> dict[str, str]:
        if set(expected) <= set(actual):
            return {name: name for name in expected}
        if len(actual) == len(expected):  # renamed but same arity: NeMo's own ONNX decoding goes by position
            return dict(zip(expected, actual, strict=True))
        raise StepFailedError(f"{label} graph has {kind} {actual}, expected {list(expected)}")

    def feeds(self, **arrays: np.ndarray) -> dict[str, np.ndarray]:
        """Graph-named feeds, each cast to the dtype the graph declares."""
        out = {}
        for name, value in arrays.items():
            real = self.inputs[name]
            out[real] = np.ascontiguousarray(value, dtype=self.dtypes[real])
        return out

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        result: list[np.ndarray] = self.session.run(self.output_names, feeds)
        return result


class OnnxRuntime(Runtime):
    name: ClassVar[str] = "onnx"
    label: ClassVar[str] = RUNTIME_LABELS["onnx"]
    components: ClassVar[tuple[str, ...]] = (ENCODER, DECODER, JOINT)

    def __init__(self, loaded: LoadedModel, options: RuntimeOptions | None = None) -> None:
        super().__init__(loaded, options)
        self._encoder: _Graph | None = None
        self._decoder_joint: _Graph | None = None
        self._entry: CacheEntry | None = None
        self._tmp_root: Path | None = None
        decoder, joint = self.loaded.model.decoder, self.loaded.model.joint
        self.layers = int(decoder.pred_rnn_layers)
        self.hidden = int(decoder.pred_hidden)
        self.enc_hidden = int(joint.encoder_hidden)
        self.blank_id = int(decoder.blank_idx)

    @classmethod
    def availability(cls) -> Availability:
        if importlib.util.find_spec("onnxruntime") is None:
            return Availability(ok=False, reason="ONNX Runtime is not installed: pip install 'rnnt-tui[onnx]'")
        return Availability(ok=True)

    def describe(self) -> dict[str, Any]:
        meta = self._entry.meta if self._entry is not None else {}
        providers = list(self._encoder.session.get_providers()) if self._encoder is not None else list(PROVIDERS)
        return {"name": self.name, "label": self.label, "onnxruntime": package_version("onnxruntime"),
                "providers": providers, "opset": meta.get("opset", OPSET), "exporter": "NeMo model.export",
                "artifact": str(self._entry.path) if self._entry is not None else None}

    # -- prepare -----------------------------------------------------------------------------------
    def cache_key(self) -> str:
        versions = {lib: package_version(lib) for lib in ("nemo_toolkit", "torch", "onnx", "onnxruntime")}
        return make_key(sha256=self.loaded.sha256, runtime=self.name, component="encoder+decoder_joint",
                        options={"opset": OPSET, "exporter": "nemo-model.export"}, versions=versions)

    def _cache(self) -> ArtifactCache:
        if self.options.use_cache:
            return ArtifactCache()
        self._tmp_root = self._tmp_root or Path(tempfile.mkdtemp(prefix="rnnt-tui-onnx-"))
        return ArtifactCache(self._tmp_root)

    def _export(self, out: Path) -> dict[str, Any]:
        """Build step for the cache: NeMo's model.export() on a deepcopy of the loaded model."""
        model = self.loaded.model
        start = time.perf_counter()
        with quiet():
            clone = copy_model(model)
            copy_ms = (time.perf_counter() - start) * 1000
            if getattr(clone, "cur_decoder", "rnnt") != "rnnt":  # a hybrid switched to CTC would export CTC
                clone.change_decoding_strategy(decoder_type="rnnt", verbose=False)
            clone.eval()
            clone.export(str(out / "model.onnx"), onnx_opset_version=OPSET)
        del clone
        for name in (ENCODER_FILE, DECODER_JOINT_FILE):
            if not (out / name).is_file():
                raise StepFailedError(f"NeMo's export wrote {sorted(p.name for p in out.iterdir())}, not {name}")
        meta: dict[str, Any] = {"runtime": "onnx", "checkpoint": str(self.loaded.path),
                                "component": "encoder+decoder_joint", "sha256": self.loaded.sha256,
                                "export_ms": (time.perf_counter() - start) * 1000, "deepcopy_ms": copy_ms}
        if importlib.util.find_spec("onnx") is not None:
            graphs = {name: _graph_io(out / name) for name in (ENCODER_FILE, DECODER_JOINT_FILE)}
            meta["graphs"] = graphs
            meta["opset"] = graphs[ENCODER_FILE]["opset"]
        return meta

    def _sessions(self, entry: CacheEntry) -> tuple[_Graph, _Graph, float, float]:
        import onnxruntime as ort

        from rnnt_tui.core import threads

        def session(path: Path) -> tuple[Any, float]:
            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            opts.intra_op_num_threads = threads.onnxruntime_threads()  # 0: ONNX Runtime's default
            opts.inter_op_num_threads = 1
            start = time.perf_counter()
            sess = ort.InferenceSession(str(path), sess_options=opts, providers=list(PROVIDERS))
            return sess, (time.perf_counter() - start) * 1000

        enc, enc_ms = session(entry.path / ENCODER_FILE)
        dj, dj_ms = session(entry.path / DECODER_JOINT_FILE)
        return _Graph(enc, ENCODER_IO, "encoder"), _Graph(dj, DECODER_JOINT_IO, "decoder_joint"), enc_ms, dj_ms

    def prepare(self, progress: Progress = no_progress,
                cancel: threading.Event | None = None) -> list[PrepareReport]:
        available = self.availability()
        if not available.ok:
            raise RuntimeUnavailableError(available.reason)
        if not getattr(self.loaded.model.decoder, "blank_as_pad", True):
            raise RuntimeUnavailableError("NeMo's ONNX decoder_joint cannot take the blank start token when the "
                                          "decoder has blank_as_pad=False")
        _check_cancel(cancel, "before the ONNX export")
        cache, key = self._cache(), self.cache_key()
        progress("ONNX: looking up the export cache", 0.0)
        start = time.perf_counter()
        if cache.lookup(key) is None:
            progress("ONNX: exporting with NeMo model.export (encoder, decoder_joint)", 0.05)
        entry, cached = cache.get_or_build(key, self._export, cancel)
        prepare_ms = (time.perf_counter() - start) * 1000
        _check_cancel(cancel, "after the ONNX export")
        progress("ONNX: creating inference sessions", 0.8)
        try:
            enc, dj, enc_ms, dj_ms = self._sessions(entry)
        except Exception:  # a cached graph onnxruntime cannot load (same-size corruption): rebuild it once
            if not cached:
                raise
            cache.invalidate(key)
            progress("ONNX: cached export unreadable; exporting again", 0.1)
            start = time.perf_counter()
            entry, cached = cache.get_or_build(key, self._export, cancel)
            prepare_ms = (time.perf_counter() - start) * 1000
            _check_cancel(cancel, "after the ONNX export")
            enc, dj, enc_ms, dj_ms = self._sessions(entry)
        _check_cancel(cancel, "after loading the ONNX sessions")
        self._encoder, self._decoder_joint, self._entry = enc, dj, entry
        action = "cache hit" if cached else "export (NeMo model.export)"
        notes = [] if cached else [f"one model.export() call wrote both graphs in {prepare_ms:.0f} ms "
                                   f"(deepcopy of the model {entry.meta.get('deepcopy_ms', 0):.0f} ms)"]
        if cache.note:
            notes.append(cache.note)
        files = {ENCODER: ENCODER_FILE, DECODER: DECODER_JOINT_FILE, JOINT: DECODER_JOINT_FILE}
        self.reports = {
            c: PrepareReport(component=c, action=action, prepare_ms=prepare_ms,
                             load_ms=enc_ms if c == ENCODER else dj_ms, cached=cached,
                             artifact=str(entry.path / files[c]),
                             notes=[*notes, *([] if c == ENCODER else ["decoder and joint share one session"])])
            for c in self.components}
        progress("ONNX: ready", 1.0)
        return list(self.reports.values())

    # -- bind ------------------------------------------------------------------------------------
    def _graphs(self) -> tuple[_Graph, _Graph]:
        if self._encoder is None or self._decoder_joint is None:
            raise StepFailedError("the ONNX runtime is not prepared (call prepare() first)")
        return self._encoder, self._decoder_joint

    def _zero_frame(self) -> np.ndarray:
        return np.zeros((1, self.enc_hidden, 1), dtype=np.float32)

    def bind(self, component: str, inputs: dict[str, np.ndarray]) -> BoundCall:
        enc, dj = self._graphs()
        if component == ENCODER:
            feeds = enc.feeds(audio_signal=inputs["features"], length=inputs["features_length"])
            return FunctionCall(lambda: enc.run(feeds), lambda r: {
                "encoded": np.asarray(r[0], dtype=np.float32), "encoded_length": np.asarray(r[1], dtype=np.int64)})
        if component == DECODER:
            feeds = dj.feeds(encoder_outputs=self._zero_frame(), targets=np.reshape(inputs["targets"], (1, 1)),
                             target_length=np.ones(1), input_states_1=inputs["h"], input_states_2=inputs["c"])
            return FunctionCall(lambda: dj.run(feeds), lambda r: {"h": r[2], "c": r[3]})
        if component == JOINT:
            if "targets" not in inputs:
                raise ValueError("the ONNX joint needs `targets` (the prediction-net inputs, blank first): "
                                 "NeMo's decoder_joint graph runs the prediction net itself")
            targets = np.reshape(inputs["targets"], (1, -1))
            state = np.zeros((self.layers, 1, self.hidden), dtype=np.float32)
            feeds = dj.feeds(encoder_outputs=inputs["encoded"], targets=targets,
                             target_length=np.array([targets.shape[1]]), input_states_1=state,
                             input_states_2=state)
            return FunctionCall(lambda: dj.run(feeds), lambda r: {"logits": r[0]})
        raise ValueError(f"unknown component {component!r} (the ONNX runtime runs {', '.join(self.components)})")

    # -- greedy steps ----------------------------------------------------------------------------
    def initial_state(self) -> tuple[np.ndarray, np.ndarray]:
        zeros = np.zeros((self.layers, 1, self.hidden), dtype=np.float32)
        return zeros, zeros.copy()

    def _step(self, frame: np.ndarray, token: int, state: tuple[np.ndarray, np.ndarray]) -> list[np.ndarray]:
        _, dj = self._graphs()
        return dj.run(dj.feeds(encoder_outputs=frame, targets=np.array([[token]]), target_length=np.ones(1),
                               input_states_1=state[0], input_states_2=state[1]))

    def decoder_step(self, token: int, state: Any) -> tuple[Any, Any]:
        out = self._step(self._zero_frame(), token, state)
        return (token, state), (out[2], out[3])

    def joint_step(self, frame: np.ndarray, decoder_output: Any) -> np.ndarray:
        token, state = decoder_output
        out = self._step(frame, int(token), state)
        return np.asarray(out[0], dtype=np.float32).reshape(-1)

    def close(self) -> None:
        self._encoder = self._decoder_joint = None
        if self._tmp_root is not None:
            shutil.rmtree(self._tmp_root, ignore_errors=True)
            self._tmp_root = None
