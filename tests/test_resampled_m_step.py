"""The resampled M-step: draws follow each column of gamma, the loss is the M-step objective, fit uses it."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import emflow
from emflow import em, resampled_m_step, train

from test_train import _toy

MODEL = emflow.GenMM(emflow.VectorFlow(2, num_steps=2, hidden=8), num_components=2)


def _params(model=MODEL, seed=0):
    x = jax.random.normal(jax.random.PRNGKey(seed + 1), (64, 2))
    params = model.init(jax.random.PRNGKey(seed), x)
    return em.with_log_pi(params, jnp.log(jnp.array([0.3, 0.7])))


def test_draws_follow_each_column_of_gamma():
    gamma = jnp.array([[0.5, 0.0, 0.0],
                       [0.1, 0.0, 0.25],
                       [0.2, 0.0, 0.0],
                       [0.0, 0.0, 0.75],
                       [0.2, 0.0, 0.0]])  # column 1: no mass (a dead component)
    steps, batch = 400, 50
    idx = resampled_m_step.draw_component_batches(jax.random.PRNGKey(0), gamma, steps, batch)
    assert idx.shape == (steps, 3, batch) and idx.dtype == jnp.int32
    draws = steps * batch
    counts = np.stack([np.bincount(np.asarray(idx[:, k]).ravel(), minlength=5) for k in range(3)], axis=1)
    g = np.asarray(gamma)
    total = g.sum(axis=0)
    expected = np.where(total > 0, g / np.where(total > 0, total, 1.0), 1 / 5)  # no mass: uniform (documented)
    sigma = np.sqrt(draws * expected * (1 - expected))
    np.testing.assert_array_less(np.abs(counts - draws * expected), 4 * sigma + 1e-9)
    assert counts[3, 0] == 0 and counts[[0, 2, 4], 2].sum() == 0  # zero-mass examples are never drawn
    np.testing.assert_allclose(resampled_m_step.component_weights(gamma), [0.2, 0.0, 0.2], atol=1e-7)


def test_a_batch_that_is_the_exact_distribution_gives_the_m_step_loss_and_gradient():
    """Columns of gamma that are multiples of 1/B: a batch holding example i ``B gamma_ik / N_k``
    times is the column's distribution itself, so the resampled loss equals em.m_step_loss."""
    params = _params()
    x = jax.random.normal(jax.random.PRNGKey(5), (4, 2)) * 2.0
    gamma = jnp.array([[1.0, 0.0], [0.5, 0.5], [0.5, 0.5], [0.0, 1.0]])  # N_k = 2, columns in quarters
    xs = jnp.stack([x[jnp.array([0, 0, 1, 2])], x[jnp.array([1, 2, 3, 3])]])  # (K, B=4, 2)
    weights = resampled_m_step.component_weights(gamma)
    loss_fn = lambda p: resampled_m_step.m_step_loss(MODEL, p, xs, weights)
    exact_fn = lambda p: em.m_step_loss(MODEL, p, x, gamma)
    np.testing.assert_allclose(float(loss_fn(params)), float(exact_fn(params)), rtol=1e-6)
    g, g_exact = jax.grad(loss_fn)(params), jax.grad(exact_fn)(params)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_exact)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_drawn_batches_estimate_the_m_step_loss_without_bias():
    params = _params()
    x = jax.random.normal(jax.random.PRNGKey(6), (40, 2)) * 2.0
    gamma = jax.nn.softmax(jax.random.normal(jax.random.PRNGKey(7), (40, 2)) * 2.0, axis=1)
    idx = resampled_m_step.draw_component_batches(jax.random.PRNGKey(8), gamma, 400, 16)
    weights = resampled_m_step.component_weights(gamma)
    losses = jax.vmap(lambda i: resampled_m_step.m_step_loss(MODEL, params, x[i], weights))(idx)
    exact = float(em.m_step_loss(MODEL, params, x, gamma))
    stderr = float(jnp.std(losses)) / np.sqrt(len(losses))
    assert abs(float(jnp.mean(losses)) - exact) < 4 * stderr, (float(jnp.mean(losses)), exact, stderr)


@pytest.mark.parametrize("axis", ["vmap", "unrolled"])
def test_each_generator_is_evaluated_on_its_own_batch(axis):
    model = emflow.GenMM(MODEL.flow, 2, component_axis=axis)
    params = _params(model)
    xs = jax.random.normal(jax.random.PRNGKey(9), (2, 5, 2))
    got = model.generator_log_prob_per_batch(params, xs)
    want = jnp.stack([model.generator_log_prob(params, xs[k])[:, k] for k in range(2)])
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-6)


def _fit(workdir=None, resume=False, **kw):
    config = train.TrainConfig(**{**dict(epochs=4, batch_size=32, em_every=1, warmup_steps=10, seed=3,
                                         learning_rate=1e-2, e_step="cached", resampled_m_step=True), **kw})
    return train.fit(MODEL, config, None, _toy(), _toy(128, seed=1), workdir=workdir, resume=resume,
                     progress=False, log=lambda s: None)


def test_fit_with_the_resampled_m_step_finds_the_weights_and_resumes_exactly(tmp_path):
    whole = _fit(tmp_path / "whole")
    pi = sorted(whole.history[-1]["pi"])
    share = np.mean(_toy()[:, 0] < 0)  # the toy's smaller cluster, counted
    np.testing.assert_allclose(pi, [share, 1 - share], atol=0.05)
    nll = [r["test_nll_nats_per_dim"] for r in whole.history]
    assert nll[-1] < nll[0], nll
    _fit(tmp_path / "killed", epochs=2)
    resumed = _fit(tmp_path / "killed", resume=True)
    for a, b in zip(jax.tree.leaves(whole.state), jax.tree.leaves(resumed.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_refusals():
    with pytest.raises(ValueError, match="resampled_m_step draws from every training example's responsibilities "
                                         "and needs e_step='cached', got e_step='per_batch'"):
        train.TrainConfig(resampled_m_step=True)
    latmm = emflow.LatMM(MODEL.flow, 2)
    config = train.TrainConfig(epochs=1, batch_size=32, e_step="cached", resampled_m_step=True)
    with pytest.raises(ValueError, match=r"resampled_m_step needs components with parameters of their own \(GenMM\), "
                                         r"got LatMM"):
        train.fit(latmm, config, None, _toy(), progress=False, log=lambda s: None)
    with pytest.raises(ValueError, match=r"xs must have shape \(K, B, \*event_shape\) = \(2, B, 2\), got \(3, 4, 2\)"):
        resampled_m_step.m_step_loss(MODEL, _params(), jnp.zeros((3, 4, 2)), jnp.ones(2))
    with pytest.raises(ValueError, match="num_steps and batch_size must be >= 1, got 0, 8"):
        resampled_m_step.draw_component_batches(jax.random.PRNGKey(0), jnp.ones((4, 2)), 0, 8)
    with pytest.raises(ValueError, match=r"leading axis of K = 2, got shape \(3, 4, 2\)"):
        MODEL.generator_log_prob_per_batch(_params(), jnp.zeros((3, 4, 2)))
