"""Latent interpolation: the ends decode the real pairs, the generator choices follow the paper's Fig. 7."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emflow import GenMM, LatMM, VectorFlow
from emflow.evaluation import interpolation

FLOW = VectorFlow(2, num_steps=2, hidden=8)


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(np.r_[rng.normal(-3, 0.5, (n // 2, 2)), rng.normal(3, 0.5, (n // 2, 2))], jnp.float32)


def test_genmm_ends_decode_the_pairs_and_the_switch_is_at_one_half():
    model = GenMM(FLOW, 3)
    params = model.init(jax.random.PRNGKey(0), _data())
    x1, x2 = _data(8, 1)[:4], _data(8, 2)[4:]
    ts = jnp.array([0.0, 0.25, 0.5, 1.0])
    images = interpolation.interpolate_genmm(model, params, x1, x2, ts)
    assert images.shape == (4, 4, 2)
    np.testing.assert_allclose(images[0], x1, atol=1e-4)   # t = 0: x1 through its own generator and back
    np.testing.assert_allclose(images[-1], x2, atol=1e-4)
    z1, k1 = interpolation.genmm_latents(model, params, x1)
    z2, k2 = interpolation.genmm_latents(model, params, x2)
    np.testing.assert_array_equal(k1, jnp.argmax(model.component_log_prob(params, x1), axis=1))
    # t = 0.25 is decoded by k1, t = 0.5 by k2, from the same mixed latent
    mid = jax.tree.map(lambda a, b: 0.75 * a + 0.25 * b, z1, z2)
    want = jnp.stack([model.flow.inverse(model.generator(params, int(k)), jax.tree.map(lambda a: a[i:i + 1], mid))[0][0]
                      for i, k in enumerate(k1)])
    np.testing.assert_allclose(images[1], want, atol=1e-5)


def test_genmm_prior_generators_follow_pi():
    model = GenMM(FLOW, 2)
    params = model.init(jax.random.PRNGKey(0), _data())
    params = {**params, "log_pi": jnp.log(jnp.array([1.0, 1e-30]))}  # generator 0 only
    x1, x2 = _data(8, 1)[:4], _data(8, 2)[4:]
    ts = jnp.array([0.3, 0.7])
    images = interpolation.interpolate_genmm(model, params, x1, x2, ts, jax.random.PRNGKey(1), generator="prior")
    z1, _ = interpolation.genmm_latents(model, params, x1)
    z2, _ = interpolation.genmm_latents(model, params, x2)
    mid = jax.tree.map(lambda a, b: 0.7 * a + 0.3 * b, z1, z2)
    np.testing.assert_allclose(images[0], model.flow.inverse(model.generator(params, 0), mid)[0], atol=1e-5)
    with pytest.raises(ValueError, match="needs a key"):
        interpolation.interpolate_genmm(model, params, x1, x2, ts, generator="prior")
    with pytest.raises(ValueError, match="'argmax' or 'prior'"):
        interpolation.interpolate_genmm(model, params, x1, x2, ts, generator="random")


def test_latmm_ends_and_bad_shapes():
    model = LatMM(FLOW, 2)
    params = model.init(jax.random.PRNGKey(0), _data())
    x1, x2 = _data(8, 1)[:4], _data(8, 2)[4:]
    images = interpolation.interpolate_latmm(model, params, x1, x2, jnp.array([0.0, 0.5, 1.0]))
    np.testing.assert_allclose(images[0], x1, atol=1e-4)
    np.testing.assert_allclose(images[-1], x2, atol=1e-4)
    z1, _ = model.flow.forward(params["flow"], x1)
    z2, _ = model.flow.forward(params["flow"], x2)
    mid = jax.tree.map(lambda a, b: 0.5 * (a + b), z1, z2)
    np.testing.assert_allclose(images[1], model.flow.inverse(params["flow"], mid)[0], atol=1e-5)
    with pytest.raises(ValueError, match=r"x1 and x2 must both have shape \(B, \*event_shape\) = \(4, 2\)"):
        interpolation.interpolate_latmm(model, params, x1, x2[:, :1], jnp.array([0.5]))
