"""Checks shared by the bijector and flow tests (independent of the code under test)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from emflow.flows.latent import Latent, flatten

CONSTANT_LEAVES = ("perm", "sign_s")  # never trained (an LU layer's fixed P and signs)
FLOAT32_EPS = float(np.finfo(np.float32).eps)  # 2^-23, one unit in the last place at 1


def perturb(params, key, scale=0.1):
    """Add N(0, scale^2) noise to every trainable leaf, so zero-initialised layers are not trivially identities."""
    leaves = jax.tree_util.tree_leaves_with_path(params)
    keys = iter(jax.random.split(key, max(len(leaves), 1)))

    def noisy(path, leaf):
        k = next(keys)
        if any(name in jax.tree_util.keystr(path) for name in CONSTANT_LEAVES):
            return leaf
        return leaf + scale * jax.random.normal(k, leaf.shape, leaf.dtype)

    return jax.tree_util.tree_map_with_path(noisy, params)


def as_vector(y) -> jax.Array:
    """A batch of outputs (array, ``Latent`` or (kept, split) pair) as ``(B, N)``."""
    if isinstance(y, Latent):
        return flatten(y)
    if isinstance(y, tuple):
        return jnp.concatenate([p.reshape(p.shape[0], -1) for p in y], axis=1)
    return y.reshape(y.shape[0], -1)


def brute_force_log_det(forward, params, x_one: jax.Array) -> float:
    """``log|det J|`` of ``forward(params, .)`` at one example, from the full ``jax.jacfwd`` Jacobian."""
    shape = x_one.shape

    def f(v):
        y, _ = forward(params, v.reshape(1, *shape))
        return as_vector(y)[0]

    jac = jax.jit(jax.jacfwd(f))(x_one.reshape(-1))
    assert jac.shape[0] == jac.shape[1], f"not square: {jac.shape}"
    sign, log_det = np.linalg.slogdet(np.asarray(jac, np.float64))
    assert sign != 0
    return float(log_det)


def assert_bijection(variant, bijector, params, x, *, rtol=1e-4, atol=1e-4, jacobian_examples=2):
    """Round trip, forward log-det = -inverse log-det, and log-det = slogdet(jacfwd) on a few examples."""
    forward, inverse = variant(bijector.forward), variant(bijector.inverse)
    y, log_det = forward(params, x)
    x_back, inv_log_det = inverse(params, y)
    assert log_det.shape == (x.shape[0],) and inv_log_det.shape == (x.shape[0],)
    np.testing.assert_allclose(x_back, x, rtol=rtol, atol=atol)
    np.testing.assert_allclose(log_det, -inv_log_det, rtol=rtol, atol=atol)
    for i in range(min(jacobian_examples, x.shape[0])):
        expected = brute_force_log_det(bijector.forward, params, x[i])
        np.testing.assert_allclose(float(log_det[i]), expected, rtol=1e-4, atol=1e-3)
    return y, log_det


def assert_vmap_and_grad(bijector, params_stack, x):
    """vmap over a leading axis of params (as across K generators) equals a loop, and grads are finite and match finite differences."""
    ys, lds = jax.vmap(bijector.forward, in_axes=(0, None))(params_stack, x)
    n = jax.tree.leaves(params_stack)[0].shape[0]
    for k in range(n):
        p_k = jax.tree.map(lambda a, k=k: a[k], params_stack)
        y_k, ld_k = bijector.forward(p_k, x)
        np.testing.assert_allclose(as_vector(jax.tree.map(lambda a, k=k: a[k], ys)), as_vector(y_k), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(lds[k], ld_k, rtol=1e-5, atol=1e-5)

    params = jax.tree.map(lambda a: a[0], params_stack)

    def loss(p, xx):
        y, ld = bijector.forward(p, xx)
        return jnp.mean(jnp.sum(as_vector(y) ** 2, axis=1) * 0.5 - ld)

    g_params, g_x = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, x)
    for leaf in jax.tree.leaves((g_params, g_x)):
        assert np.all(np.isfinite(leaf))
    # Directional derivative along a random direction vs central differences (float32: loose tolerance).
    direction = jax.tree.map(lambda a: jax.random.normal(jax.random.PRNGKey(7), a.shape), params)
    direction = jax.tree_util.tree_map_with_path(
        lambda path, d: 0.0 * d if any(c in jax.tree_util.keystr(path) for c in CONSTANT_LEAVES) else d, direction
    )
    # Central differences in float64 (an independent, non-autodiff computation).
    eps = 1e-5
    with jax.enable_x64(True):
        p64, d64, x64 = (jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), t) for t in (params, direction, x))
        shifted = lambda s: jax.tree.map(lambda a, d: a + s * eps * d, p64, d64)
        numeric = float((loss(shifted(1.0), x64) - loss(shifted(-1.0), x64)) / (2 * eps))
    analytic = float(sum(jnp.sum(g * d) for g, d in zip(jax.tree.leaves(g_params), jax.tree.leaves(direction))))
    # Parts of some layers stay float32 under x64, so both sides carry float32 rounding: measured up to
    # 1.2e-3 relative (VectorFlow, 2026-12-02, on a CPU where 1e-3 had passed before); a wrong
    # gradient is off by far more.
    np.testing.assert_allclose(analytic, numeric, rtol=5e-3, atol=1e-3)
