"""Precision as the program declares it (fp16 packages, compressed weights) and the op trace: bounded, complete,
and able to name the op where two runs part."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tdt_packages(loaded_model: Callable[[str], Any]) -> dict[str, dict[str, Path]]:
    """precision -> component -> package of the tdt model's encoder and joint (fp32 is a cache hit when
    test_mil_program ran first)."""
    from rnnt_tui.core.coreml.convert import convert_components

    return {precision: {p.component: p.path for p in convert_components(
        loaded_model("tdt"), precision=precision, max_frames=200, components=("encoder", "joint"))}
        for precision in ("fp32", "fp16")}


@pytest.fixture(scope="session")
def features() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {"features": rng.standard_normal((1, 80, 120)).astype(np.float32),
            "features_length": np.array([120], np.int32)}


def test_fp16_program_rounds_to_fp16_and_stays_close(tdt_packages: dict[str, dict[str, Path]],
                                                    features: dict[str, np.ndarray]) -> None:
    from rnnt_tui.core.mil import MilProgram

    fp16, fp32 = MilProgram.load(tdt_packages["fp16"]["encoder"]), MilProgram.load(tdt_packages["fp32"]["encoder"])
    assert fp16.precision == "fp16" and fp32.precision == "fp32"
    assert fp16.input_dtype("features") == np.float32  # fp16 compute behind fp32 I/O
    half, full = fp16.run(features)["encoded"], fp32.run(features)["encoded"]
    assert half.dtype == np.float16 and np.isfinite(half).all()
    np.testing.assert_array_equal(half, half.astype(np.float32).astype(np.float16))
    diff = float(np.abs(half.astype(np.float32) - full).max())
    assert 0 < diff < 0.05 * float(np.abs(full).max())  # fp16 rounding shows, and only that


def test_trace_is_complete_and_bounded(tdt_packages: dict[str, dict[str, Path]],
                                       features: dict[str, np.ndarray]) -> None:
    from rnnt_tui.core.mil import MilProgram, TraceOptions

    program = MilProgram.load(tdt_packages["fp32"]["encoder"])
    plain = program.run(features)
    assert program.last_trace is None
    budget = 200_000
    traced = program.run(features, trace=TraceOptions(keep=lambda name, op_type: op_type == "linear",
                                                      max_bytes=budget, sample=256))
    np.testing.assert_array_equal(plain["encoded"], traced["encoded"])
    trace = program.last_trace
    assert trace is not None
    assert len(trace.records) == len(program._plan.steps)
    assert 0 < trace.kept_bytes <= budget and trace.dropped  # kept some linears, refused the rest
    assert all(set(r.tensors) <= set(r.outputs) and (not r.tensors or r.type == "linear") for r in trace.records)
    assert all(s.size <= 256 for r in trace.records for s in r.samples)
    last = trace.by_output()["encoded"][0]
    assert last.max_abs[0] == pytest.approx(float(np.abs(plain["encoded"]).max()))
    assert trace.first_nonfinite() is None
    assert {"conv", "layer_norm", "softmax"} <= {r.type for r in trace.records}


def test_compare_traces_finds_the_perturbed_op(tdt_packages: dict[str, dict[str, Path]]) -> None:
    from rnnt_tui.core.mil import MilProgram, TraceOptions, compare_traces

    program = MilProgram.load(tdt_packages["fp32"]["joint"])
    rng = np.random.default_rng(2)
    feeds = {"encoded": rng.standard_normal((1, 64, 6)).astype(np.float32),
             "decoder_output": rng.standard_normal((1, 64, 2)).astype(np.float32)}
    everything = TraceOptions(keep=lambda name, op_type: True)
    program.run(feeds, trace=everything)
    reference = program.last_trace
    linears = [s for s in program._plan.steps if s.meta.type == "linear"]
    target = linears[-1]  # the output projection: perturb one weight row by 0.1 %
    weight = target.const_args["weight"]
    original = weight.copy()
    weight[3] *= 1.001
    try:
        program.run(feeds, trace=everything)
    finally:
        weight[...] = original
    perturbed = program.last_trace
    assert reference is not None and perturbed is not None
    same = compare_traces(reference, reference, threshold=0.0)
    assert same.first is None and len(same.rows) == len(reference.records)
    found = compare_traces(reference, perturbed, threshold=1e-7)
    assert found.first is not None and found.first.op_b == target.meta.name
    assert all(not r.over for r in found.rows[: found.rows.index(found.first)])


def test_compare_fp32_and_fp16_traces_matches_ops_through_casts(tdt_packages: dict[str, dict[str, Path]],
                                                                features: dict[str, np.ndarray]) -> None:
    from rnnt_tui.core.mil import MilProgram, TraceOptions, compare_traces

    runs: dict[str, Any] = {}
    for precision in ("fp32", "fp16"):
        program = MilProgram.load(tdt_packages[precision]["encoder"])
        program.run(features, trace=TraceOptions(sample=512))
        assert program.last_trace is not None
        runs[precision] = program.last_trace
    table = compare_traces(runs["fp32"], runs["fp16"], threshold=1e-4, relative=True)
    float_ops = [r for r in runs["fp32"].records if r.type in ("linear", "conv", "layer_norm", "softmax", "matmul")]
    matched = {r.op_a for r in table.rows}
    assert all(r.name in matched for r in float_ops)
    # the first drift is where the fp16 program rounds its input: the first op consuming the cast features
    assert table.first is not None and table.first.sampled and table.first.relative > 1e-4
    assert table.first.shape == (1, 120, 80)
    assert max(r.relative for r in table.rows if r.type != "cast") < 0.05
    assert not any(r.over for r in table.rows if r.type in ("shape", "range_1d"))


def test_compressed_weights_match_their_decompressed_program(tdt_packages: dict[str, dict[str, Path]],
                                                             tmp_path: Path) -> None:
    import coremltools as ct
    import coremltools.optimize.coreml as cto

    from rnnt_tui.core.mil import MilProgram

    base = ct.models.MLModel(str(tdt_packages["fp32"]["joint"]), skip_model_load=True)
    rng = np.random.default_rng(3)
    feeds = {"encoded": rng.standard_normal((1, 64, 7)).astype(np.float32),
             "decoder_output": rng.standard_normal((1, 64, 3)).astype(np.float32)}
    reference = MilProgram.load(tdt_packages["fp32"]["joint"]).run(feeds)["logits"]
    configs = {
        "linear": cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric",
                                                                                  weight_threshold=512)),
        "palette": cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(nbits=4, mode="kmeans",
                                                                              weight_threshold=512)),
    }
    for name, config in configs.items():
        compress = cto.linear_quantize_weights if name == "linear" else cto.palettize_weights
        compressed = compress(base, config)
        path = tmp_path / f"{name}.mlpackage"
        compressed.save(str(path))
        dense_path = tmp_path / f"{name}-dense.mlpackage"
        ct.optimize.coreml.decompress_weights(compressed).save(str(dense_path))
        program = MilProgram.load(path)
        assert program.weight_compression and all(t.startswith("constexpr_") for t in program.weight_compression)
        got = program.run(feeds)["logits"]
        dense = MilProgram.load(dense_path).run(feeds)["logits"]
        np.testing.assert_allclose(got, dense, rtol=0, atol=1e-5)
        assert 0 < float(np.abs(got - reference).max()) < 0.1 * float(np.abs(reference).max())


def test_run_plan_with_replaced_values(tdt_packages: dict[str, dict[str, Path]]) -> None:
    """`values` stands in for an op's output: zeroing the joint's ReLU leaves only the output bias."""
    from rnnt_tui.core.mil import MilProgram

    program = MilProgram.load(tdt_packages["fp32"]["joint"])
    rng = np.random.default_rng(5)
    feeds = {"encoded": rng.standard_normal((1, 64, 4)).astype(np.float32),
             "decoder_output": rng.standard_normal((1, 64, 2)).astype(np.float32)}
    plain = program.run(feeds)["logits"]
    relu = next(s for s in program.plan.steps if s.meta.type == "relu")
    zeros = np.zeros((1, 4, 2, 64), np.float32)  # [1, T, U, joint hidden]
    got = program.run_plan(program.plan, feeds, values={relu.outputs[0]: zeros})["logits"]
    assert np.ptp(got[0, :, :, 0]) == 0 and np.abs(plain - got).max() > 0
    np.testing.assert_array_equal(program.run(feeds)["logits"], plain)  # the plan itself is unchanged
