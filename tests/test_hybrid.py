"""HybridMM (the paper's section III-B): GenMM generators sharing LatMM's Gaussian-mixture latent.

Its density against an independent computation (every generator's Jacobian by ``jax.jacfwd``),
its normalisation on a 2-D grid, EM through ``fit`` recovering unequal weights, save/load, bad input.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import emflow
from emflow import GenMM, Glow, LatMM, VectorFlow, train
from emflow.flows import latent as latent_lib
from toy_em import np_perturb


def _model(flow, k, m):
    return emflow.HybridMM(GenMM(flow, k), LatMM(flow, m))


def _perturbed(model, x, seed=0, scale=0.3):
    params = model.init(jax.random.PRNGKey(seed), x)
    rng = np.random.default_rng(seed)
    params = {**params, "flows": np_perturb(params["flows"], seed, scale),
              "means": params["means"] + jnp.asarray(rng.normal(size=params["means"].shape), jnp.float32),
              "log_stds": params["log_stds"] + 0.2 * jnp.asarray(rng.normal(size=params["log_stds"].shape), jnp.float32)}
    logits = jnp.asarray(rng.normal(size=model.num_components), jnp.float32)
    return {**params, "log_pi": jax.nn.log_softmax(logits)}


@pytest.mark.parametrize("flow, shape", [(VectorFlow(2, num_steps=2, hidden=8), (2,)),
                                         (Glow((4, 4, 1), num_levels=2, num_steps=1, hidden_channels=4), (4, 4, 1))])
def test_each_pair_is_its_generator_jacobian_and_latent_gaussian(flow, shape):
    """``log pi_km + log N(f_k(x)_top; mu_m, sigma_m) + log N(splits) + log|det jacfwd(f_k)|``, pair by pair."""
    x = jnp.asarray(np.random.default_rng(1).normal(size=(16, *shape)), jnp.float32)
    model = _model(flow, 2, 3)
    params = _perturbed(model, x)
    got = np.asarray(model.component_log_prob(params, x[:4]), np.float64)
    assert got.shape == (4, 6)
    for c in range(6):
        k, m = model.pair(c)
        pk = jax.tree.map(lambda a, k=k: a[k], params["flows"])
        f = lambda xi, pk=pk: latent_lib.flatten(flow.forward(pk, xi[None])[0])[0]
        for i in range(4):
            latent, _ = flow.forward(pk, x[i:i + 1])
            top = np.asarray(latent.top.reshape(-1), np.float64)
            rest = np.asarray(latent_lib.flatten(latent)[0, top.size:], np.float64)
            jac = np.asarray(jax.jacfwd(f)(x[i]).reshape(x[i].size, x[i].size), np.float64)
            want = (float(params["log_pi"][c]) + np.linalg.slogdet(jac)[1]
                    + scipy.stats.norm.logpdf(top, np.asarray(params["means"][m]), np.exp(np.asarray(params["log_stds"][m]))).sum()
                    + scipy.stats.norm.logpdf(rest).sum())
            assert got[i, c] == pytest.approx(want, rel=2e-5, abs=2e-4), (c, i)


def test_the_density_integrates_to_one_on_a_grid():
    flow = VectorFlow(2, num_steps=2, hidden=8)
    x = jnp.asarray(np.random.default_rng(2).normal(size=(64, 2)), jnp.float32)
    model = _model(flow, 2, 2)
    params = _perturbed(model, x, seed=3, scale=0.2)
    grid = jnp.linspace(-14, 14, 561)
    xx, yy = jnp.meshgrid(grid, grid)
    points = jnp.stack([xx.ravel(), yy.ravel()], axis=1)
    density = jnp.exp(jax.jit(model.log_prob)(params, points))
    mass = float(jnp.sum(density) * (grid[1] - grid[0]) ** 2)
    assert mass == pytest.approx(1.0, abs=5e-3)


def test_em_through_fit_recovers_unequal_weights():
    """Four clusters of weights 0.1 / 0.2 / 0.3 / 0.4; K = 2 generators x M = 2 latent Gaussians: fit's EM
    puts each cluster on one pair and pi within 0.05 of the weights."""
    rng = np.random.default_rng(0)
    weights = np.array([0.1, 0.2, 0.3, 0.4])
    centres = np.array([[-4.0, -4.0], [-4.0, 4.0], [4.0, -4.0], [4.0, 4.0]])
    labels = rng.choice(4, size=2048, p=weights)
    x = (centres[labels] + 0.5 * rng.normal(size=(2048, 2))).astype(np.float32)
    model = _model(VectorFlow(2, num_steps=2, hidden=16), 2, 2)
    config = train.TrainConfig(epochs=12, batch_size=64, em_every=2, warmup_steps=20, learning_rate=3e-3,
                               num_samples=0, seed=0)
    result = train.fit(model, config, None, x, x[:512], progress=False, log=lambda s: None)
    pi = np.asarray(result.history[-1]["pi"])
    won = np.asarray(jnp.argmax(model.responsibilities(result.state.params, jnp.asarray(x)), axis=1))
    assignment = [np.bincount(won[labels == j], minlength=4).argmax() for j in range(4)]
    assert sorted(assignment) == [0, 1, 2, 3], assignment  # one pair per cluster
    np.testing.assert_allclose(pi[assignment], weights, atol=0.05)


def test_samples_shapes_and_save_load(tmp_path):
    flow = Glow((4, 4, 1), num_levels=2, num_steps=1, hidden_channels=4)
    model = _model(flow, 2, 3)
    x = jnp.asarray(np.random.default_rng(4).normal(size=(16, 4, 4, 1)), jnp.float32)
    params = model.init(jax.random.PRNGKey(0), x)
    assert model.sample(params, jax.random.PRNGKey(1), 5).shape == (5, 4, 4, 1)
    per = model.component_samples(params, jax.random.PRNGKey(1), 3)
    assert per.shape == (6, 3, 4, 4, 1)
    # component (k, m)'s samples are generator k decoding latent Gaussian m's draws
    k, m = model.pair(4)
    eps = latent_lib.sample(jax.random.PRNGKey(1), flow.latent_shapes, 3)
    top = params["means"][m] + jnp.exp(params["log_stds"][m]) * eps.top.reshape(3, -1)
    want, _ = flow.inverse(jax.tree.map(lambda a: a[k], params["flows"]),
                           latent_lib.Latent(top.reshape(eps.top.shape), eps.splits))
    np.testing.assert_allclose(per[4], want, rtol=1e-5, atol=1e-5)
    emflow.save(tmp_path / "hybrid", model, params)
    loaded, loaded_params = emflow.load(tmp_path / "hybrid")
    assert loaded == model
    np.testing.assert_array_equal(loaded.log_prob(loaded_params, x), model.log_prob(params, x))


def test_bad_combinations_are_refused():
    with pytest.raises(ValueError, match="must have the generators' latent shapes"):
        emflow.HybridMM(GenMM(VectorFlow(2), 2), LatMM(VectorFlow(3), 2))
    with pytest.raises(TypeError, match="expected a GenMM and a LatMM, got LatMM and LatMM"):
        emflow.HybridMM(LatMM(VectorFlow(2), 2), LatMM(VectorFlow(2), 2))
    assert math.prod((2, 3)) == emflow.HybridMM(GenMM(VectorFlow(2), 2), LatMM(VectorFlow(2), 3)).num_components
