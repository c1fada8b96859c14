"""Fitting one flow (K = 1) is a plain maximum-likelihood fit: no partition, no warm start, no E-step pass."""
import jax
import numpy as np

import emflow
from emflow import train
from emflow.em import e_steps
from emflow.mixtures.mixture import resolve_component_axis

CONFIG = train.TrainConfig(epochs=3, batch_size=50, em_every=1, warmup_steps=10, partition_size=600,
                           init_batch_size=100, e_step="cached", num_samples=0)


def _data():
    return np.random.default_rng(0).normal(size=(600, 4)).astype(np.float32)


def _fit(model, **kwargs):
    logs = []
    result = train.fit(model, CONFIG, None, _data(), _data()[:100], progress=False, log=logs.append, **kwargs)
    return result, logs


def test_one_generator_trains_without_partition_warm_start_or_e_step():
    model = emflow.GenMM(emflow.VectorFlow(4, num_steps=2, hidden=8), 1)
    plain, logs = _fit(model)
    assert [r["e_step"] for r in plain.history] == ["one component"] * 3 and plain.partition is None
    assert not any("k-means" in line for line in logs)
    # No likelihood under Phi_old was computed (the cached exact E-step makes one pass per round for it).
    assert all(r["train_nll_old_nats_per_dim"] is None for r in plain.history)
    # The same run with the exact E-step in every round: its responsibilities are all 1, so the same M-steps.
    exact, _ = _fit(model, e_step_of_round=lambda em_round: e_steps.cached(e_steps.exact()))
    assert [r["e_step"] for r in exact.history] == ["beta 1 (joint)"] * 3
    assert all(r["train_nll_old_nats_per_dim"] is not None for r in exact.history)
    for a, b in zip(jax.tree.leaves(plain.state.params), jax.tree.leaves(exact.state.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_one_latent_gaussian_is_placed_on_the_init_batch_only():
    model = emflow.LatMM(emflow.VectorFlow(4, num_steps=2, hidden=8), 1)
    result, logs = _fit(model)
    assert not any("latent Gaussians placed" in line for line in logs) and result.partition is None
    assert [r["e_step"] for r in result.history] == ["one component"] * 3
    assert np.isfinite(result.history[-1]["test_nll_nats_per_dim"])


def test_the_one_component_e_step_computes_nothing():
    step = e_steps.one_component()
    gamma, log_px = step.update(step.init(None), None, None, np.zeros((5, 3)), None)
    np.testing.assert_array_equal(gamma, np.ones((5, 1)))
    assert log_px.shape == (5,) and np.all(np.isnan(log_px))


def test_generators_map_by_the_flow_s_default_on_a_cpu():
    glow = emflow.Glow((4, 4, 1), num_levels=1, num_steps=1, hidden_channels=4)
    if jax.default_backend() == "cpu":
        assert resolve_component_axis(None, glow) == "unrolled"
        assert resolve_component_axis(None, emflow.Prefixed(emflow.Logit((4, 4, 1), 1e-6), glow)) == "unrolled"
        assert resolve_component_axis(None, emflow.VectorFlow(4)) == "vmap"
    assert resolve_component_axis("scan", emflow.VectorFlow(4)) == "scan"
