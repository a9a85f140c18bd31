"""Build a stateful decoder package for the tests: the prediction net of a restored NeMo transducer, its h and c
held in Core ML states (`ct.StateType`, iOS18 / macOS 15 programs) instead of being fed and returned.

The layout follows the common Parakeet decoder export (domain facts: `targets` [1,1] int32 and `target_length` [1]
in, `decoder` [1,H,1] out) with its `h_in` / `c_in` / `h_out` / `c_out` replaced by two states, `h_state` and
`c_state` [L,1,H]. coremltools 9.0 accepts float16 states only, so the states round h and c to fp16 between steps
while the program computes in fp32 (as a stateful export of an fp32 model does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

CLIP = Path(__file__).parent.parent / "assets" / "demo" / "core-ml-on-a-mac.wav"


def write_stateful_decoder(loaded: Any, path: Path) -> Path:
    """Trace and convert `loaded`'s prediction net as a stateful decoder package at `path`."""
    import torch

    from rnnt_tui.core.coreml.spec import load_coremltools
    from rnnt_tui.core.coreml.wrappers import DecoderStepWrapper, state_shape
    from rnnt_tui.core.quiet import quiet

    class StatefulDecoder(torch.nn.Module):
        def __init__(self, decoder: Any) -> None:
            super().__init__()
            self.step = DecoderStepWrapper(decoder)
            shape = state_shape(decoder)
            self.register_buffer("h_state", torch.zeros(*shape))
            self.register_buffer("c_state", torch.zeros(*shape))

        def forward(self, targets: torch.Tensor, target_length: torch.Tensor) -> torch.Tensor:
            g, h, c = self.step(targets, self.h_state, self.c_state)
            self.h_state[:] = h  # an in-place write: coremltools turns it into coreml_update_state
            self.c_state[:] = c
            return g

    ct, _ = load_coremltools()
    model = loaded.eval()
    shape = state_shape(model.decoder)
    wrapper = StatefulDecoder(model.decoder).eval()
    example = (torch.zeros(1, 1, dtype=torch.int32), torch.ones(1, dtype=torch.int32))
    with quiet(), torch.no_grad():
        traced = torch.jit.trace(wrapper, example, check_trace=False)
        mlmodel = ct.convert(
            traced, convert_to="mlprogram", minimum_deployment_target=ct.target.macOS15,
            compute_precision=ct.precision.FLOAT32, skip_model_load=True,
            inputs=[ct.TensorType(name="targets", shape=(1, 1), dtype=np.int32),
                    ct.TensorType(name="target_length", shape=(1,), dtype=np.int32)],
            outputs=[ct.TensorType(name="decoder")],
            states=[ct.StateType(wrapped_type=ct.TensorType(shape=shape, dtype=np.float16), name=name)
                    for name in ("h_state", "c_state")])
        mlmodel.save(str(path))
    return path


def open_stateful(loaded: Any, folder: Path, runtime: str) -> Any:
    """A session of the demo clip against `runtime` ("mil" or "coreml") with `folder` as its packages."""
    from rnnt_tui.core.pipeline.pipeline import open_session
    from rnnt_tui.core.pipeline.request import Request, Settings
    from rnnt_tui.core.runtimes.base import RuntimeOptions

    request = Request(loaded.path, CLIP, runtime, RuntimeOptions(packages_dir=str(folder)), Settings(runs=1, warmup=0))
    return open_session(request, loaded=loaded)


def check_carried_state(session: Any) -> None:
    """What any engine must do with the stateful decoder folder (`stateful_packages`) in one session: the decoder
    compared along the reference path (h/c written into and read back from the states), and a greedy decode that
    makes one state, never rolls it back, and equals NeMo's."""
    from rnnt_tui.core.pipeline.driver import run_steps
    from rnnt_tui.core.pipeline.greedy import greedy_decode

    assert session.candidate_unavailable is None
    run_steps(session)
    decoder = session.results["decoder"]
    assert decoder.status == "done", (decoder.error, decoder.notes)
    assert any("stateful" in note for note in decoder.notes), decoder.notes
    worst = {c.name: c.stats.max_abs for c in decoder.comparisons if c.stats is not None}
    # h and c pass through float16 states between steps: rounded (so never exact), and close
    assert set(worst) >= {"decoder_output", "h", "c"} and 0 < max(worst.values()) < 2e-2, worst
    decode = session.decode_comparison
    assert decode is not None and decode.nemo_tokens, session.results["decode"].error
    assert session.results["decode"].status == "done", session.results["decode"].error
    assert decode.candidate_tokens == decode.nemo_tokens, session.results["decode"].error
    assert decode.candidate_text == "core ml on a mac", decode.candidate_text
    runtime = session.candidate
    encoded, length = session.ctx.upstream.encoded_frames
    made = runtime.states_made
    first = greedy_decode(runtime, encoded, length, loaded_blank(session))
    assert runtime.states_made == made + 1  # one state per decode
    again = greedy_decode(runtime, encoded, length, loaded_blank(session))
    assert runtime.states_made == made + 2 and again.tokens == first.tokens == decode.nemo_tokens


def loaded_blank(session: Any) -> int:
    return int(session.ctx.facts.summary.blank_id)


def check_rollback(runtime: Any, loaded: Any) -> None:
    """A step from a state the engine no longer holds (what NeMo's loop does after a blank) writes that state back
    first: the same step twice gives the same output, and the chain after it is the chain of a fresh decode."""
    blank = int(loaded.summary.blank_id)
    s0 = runtime.initial_state()
    carrier = s0.carrier
    g1, s1 = runtime.decoder_step(blank, s0)
    g1_again, s1_again = runtime.decoder_step(blank, s0)  # the joint said blank: step from s0 again
    assert carrier.rollbacks == 1
    np.testing.assert_array_equal(np.asarray(g1_again), np.asarray(g1))
    np.testing.assert_array_equal(s1_again.h, s1.h)
    g2, _ = runtime.decoder_step(3, s1)  # s1 is not what the engine holds now (s1_again is): rolled back again
    assert carrier.rollbacks == 2
    fresh = runtime.initial_state()
    _, f1 = runtime.decoder_step(blank, fresh)
    f2, _ = runtime.decoder_step(3, f1)
    assert fresh.carrier.rollbacks == 0
    np.testing.assert_array_equal(np.asarray(g2), np.asarray(f2))
    h, c = s1  # unpacks like the stateless (h, c)
    assert h.shape == c.shape == tuple(loaded.model.decoder.pred_rnn_layers for _ in (0,)) + h.shape[1:]
