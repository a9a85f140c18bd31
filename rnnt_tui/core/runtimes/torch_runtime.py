"""The reference runtime: the restored NeMo model's own modules on PyTorch (CPU, eval mode, inference mode).

The joint is called as `joint(encoder_outputs=, decoder_outputs=)`, exactly as NeMo behaves in the joint's
current fuse mode (see `core.fuse`): in the mode a checkpoint was saved with, that may raise or return
log-probabilities, and the comparison shows it. Greedy steps use `decoder.predict` and `joint.joint`, the calls
NeMo's own greedy decoder makes.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import numpy as np

from rnnt_tui.core.components import DECODER, ENCODER, JOINT, PREPROCESSOR
from rnnt_tui.core.names import RUNTIME_LABELS
from rnnt_tui.core.runtimes.base import (
    Availability,
    BoundCall,
    FunctionCall,
    PrepareReport,
    Progress,
    Runtime,
    no_progress,
)


def _np(tensor: Any) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().cpu().numpy())


class TorchRuntime(Runtime):
    name: ClassVar[str] = "pytorch"
    label: ClassVar[str] = RUNTIME_LABELS["pytorch"]
    components: ClassVar[tuple[str, ...]] = (PREPROCESSOR, ENCODER, DECODER, JOINT)

    @classmethod
    def availability(cls) -> Availability:
        return Availability(ok=True)

    def describe(self) -> dict[str, Any]:
        import torch

        from rnnt_tui.versions import package_version

        return {"name": self.name, "label": self.label, "torch": torch.__version__,
                "nemo": package_version("nemo_toolkit"), "device": "cpu", "threads": torch.get_num_threads()}

    @property
    def model(self) -> Any:
        return self.loaded.model

    def prepare(self, progress: Progress = no_progress,
                cancel: threading.Event | None = None) -> list[PrepareReport]:
        self.loaded.eval()
        self.reports = {c: PrepareReport(component=c, action="eager (no export)", prepare_ms=0.0, load_ms=0.0)
                        for c in self.components}
        return list(self.reports.values())

    def bind(self, component: str, inputs: dict[str, np.ndarray]) -> BoundCall:
        import torch  # heavy: runtimes are only built off the UI thread

        model = self.loaded.eval()
        t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()}

        def guarded(fn: Any) -> Any:
            def call() -> Any:
                with torch.inference_mode():
                    return fn()
            return call

        if component == PREPROCESSOR:
            sig, length = t["audio_signal"].float(), t["length"].long()
            return FunctionCall(guarded(lambda: model.preprocessor(input_signal=sig, length=length)),
                                lambda r: {"features": _np(r[0]), "features_length": _np(r[1])})
        if component == ENCODER:
            feats, length = t["features"].float(), t["features_length"].long()
            return FunctionCall(guarded(lambda: model.encoder(audio_signal=feats, length=length)),
                                lambda r: {"encoded": _np(r[0]), "encoded_length": _np(r[1])})
        if component == DECODER:
            token = int(inputs["targets"].reshape(-1)[0])
            y = None if token == self.blank_id else t["targets"].long()
            state = [t["h"].float(), t["c"].float()]
            return FunctionCall(
                guarded(lambda: model.decoder.predict(y, state=state, add_sos=False, batch_size=1)),
                lambda r: {"decoder_output": _np(r[0].transpose(1, 2)), "h": _np(r[1][0]), "c": _np(r[1][1])})
        if component == JOINT:
            enc, dec = t["encoded"].float(), t["decoder_output"].float()
            return FunctionCall(guarded(lambda: model.joint(encoder_outputs=enc, decoder_outputs=dec)),
                                lambda r: {"logits": _np(r)})
        raise ValueError(f"unknown component {component!r}")

    @property
    def blank_id(self) -> int:
        return int(self.loaded.model.decoder.blank_idx)

    def initial_state(self) -> Any:
        import torch

        decoder = self.loaded.model.decoder
        probe = torch.zeros(1, 1, decoder.pred_hidden)
        return [s.detach() for s in decoder.initialize_state(probe)]

    def state_arrays(self, state: Any) -> dict[str, np.ndarray]:
        return {"h": _np(state[0]), "c": _np(state[1])}

    def decoder_step(self, token: int, state: Any) -> tuple[Any, Any]:
        import torch

        decoder = self.loaded.model.decoder
        with torch.inference_mode():
            y = None if token == self.blank_id else torch.tensor([[token]], dtype=torch.long)
            g, new_state = decoder.predict(y, state=state, add_sos=False, batch_size=1)
        return g, new_state

    def joint_step(self, frame: np.ndarray, decoder_output: Any) -> np.ndarray:
        import torch

        with torch.inference_mode():
            f = torch.from_numpy(np.ascontiguousarray(frame)).float().transpose(1, 2)
            logits = self.loaded.model.joint.joint(f, decoder_output)
        return _np(logits.reshape(-1))
