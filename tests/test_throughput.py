"""The benchmarks' own arithmetic (FLOPs from the architecture, the roofline, XLA's memory figure) and their compile helpers."""
import jax
import numpy as np
import pytest

import emflow
from benchmarks.throughput import (compile_em_step_for, em_step, em_step_flops, em_step_hidden_bytes,
                                   glow_forward_flops, roofline_fraction, variant_for_compiling, xla_cost)


def test_forward_flops_match_xla_cost_analysis():
    # With conv_impl="matmul" every 3x3 convolution is a dense matrix product over the zero-padded
    # patches, so XLA's own FLOP count covers the same multiply-adds as the architecture's count
    # (plus the element-wise work, which the architecture's count leaves out).
    flow = emflow.Glow((16, 16, 1), num_levels=2, num_steps=2, hidden_channels=128, conv_impl="matmul")
    x = jax.random.uniform(jax.random.PRNGKey(0), (8, 16, 16, 1))
    params = flow.init(jax.random.PRNGKey(1), x)
    xla_flops = xla_cost(jax.jit(flow.log_prob).lower(params, x).compile())["xla_gflop"] * 1e9
    assert xla_flops / (8 * glow_forward_flops(flow)) == pytest.approx(1.0, abs=0.03)
    assert em_step_flops(flow, 3, 8) == 4 * 3 * 8 * glow_forward_flops(flow)


def test_hidden_bytes_by_hand():
    # 2 levels x 3 steps on 8x8: 3 * (4*4 + 2*2) = 60 hidden pixels per image, 16 channels, 18 passes.
    for dtype, itemsize in (("float32", 4), ("bfloat16", 2)):
        flow = emflow.Glow((8, 8, 1), num_levels=2, num_steps=3, hidden_channels=16, compute_dtype=dtype)
        assert em_step_hidden_bytes(flow, 2, 5) == 18 * 2 * 5 * 60 * 16 * itemsize


def test_roofline_fraction():
    # 1 TFLOP on a 100 TFLOP/s chip is 10 ms; 10 GB at 2 TB/s is 5 ms (compute bound), 40 GB is 20 ms.
    np.testing.assert_allclose(roofline_fraction(1e12, 10e9, 100.0, 2.0), 1.0)
    np.testing.assert_allclose(roofline_fraction(1e12, 40e9, 100.0, 2.0), 0.5)


def test_device_memory_counts_a_donated_argument_once():
    # y = 2x on a million float32 (4 MB): argument and result, or one buffer when x is donated.
    x = jax.numpy.ones((1_000_000,), jax.numpy.float32)
    for donate, megabytes in ((False, 8.0), (True, 4.0)):
        compiled = jax.jit(lambda a: 2 * a, donate_argnums=(0,) if donate else ()).lower(x).compile()
        assert xla_cost(compiled)["device_gbytes"] * 1e3 == pytest.approx(megabytes, rel=1e-3)


def test_a_variant_compiles_for_a_device_from_abstract_arguments():
    # What gpu_plan and tpu_plan do for a described accelerator, here for this CPU.
    flow, model, params = variant_for_compiling("unrolled/matmul/bfloat16", 2, levels=1, steps=1, hidden=8, size=8)
    assert (model.num_components, model.component_axis, flow.conv_impl, flow.compute_dtype) == (
        2, "unrolled", "matmul", "bfloat16")
    x = jax.numpy.zeros((4, 8, 8, 1))
    reference = model.init(jax.random.PRNGKey(0), x)
    assert jax.tree.structure(params) == jax.tree.structure(reference)
    assert all(a.shape == b.shape for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(reference)))
    compiled = compile_em_step_for(jax.devices()[0], model, params, x)
    # Compiled from shapes alone, it is the step em_step jits: the same loss on the same state and batch.
    x = jax.random.uniform(jax.random.PRNGKey(1), x.shape)
    state, step = em_step(model, reference)
    expected = float(step(state, x)[1]["loss"])
    state, _ = em_step(model, reference)  # the step donated the first state, not the caller's parameters
    assert float(compiled(state, x)[1]["loss"]) == pytest.approx(expected, rel=1e-6)
