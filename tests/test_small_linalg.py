"""QR and LU without LAPACK, against LAPACK's own (jnp.linalg.qr, jax.scipy.linalg.lu) and the definitions."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from emflow.bijectors import random_rotation, small_linalg


@pytest.mark.parametrize("n", [1, 2, 6, 16, 48])
def test_orthonormal_columns_is_lapacks_q_with_positive_r(n):
    a = jax.random.normal(jax.random.PRNGKey(n), (n, n))
    q = small_linalg.orthonormal_columns(a)
    q_ref, r_ref = jnp.linalg.qr(a)
    np.testing.assert_allclose(q, q_ref * jnp.sign(jnp.diag(r_ref))[None, :], atol=2e-5)
    np.testing.assert_allclose(q.T @ q, np.eye(n), atol=2e-6)
    r = q.T @ a
    assert np.all(np.diag(r) > 0) and np.allclose(np.tril(r, -1), 0, atol=1e-4)


@pytest.mark.parametrize("n", [1, 2, 6, 16, 48])
def test_lu_is_lapacks_lu(n):
    a = np.asarray(jax.random.normal(jax.random.PRNGKey(100 + n), (n, n)))
    p, l, u = (np.asarray(m) for m in small_linalg.lu(jnp.asarray(a)))
    p_ref, l_ref, u_ref = scipy.linalg.lu(a.astype(np.float64))   # LAPACK getrf in float64
    np.testing.assert_array_equal(p, p_ref)                         # the same pivots
    np.testing.assert_allclose(l, l_ref, atol=1e-4)
    np.testing.assert_allclose(u, u_ref, atol=1e-4)
    np.testing.assert_allclose(p @ l @ u, a, atol=1e-5)
    assert np.allclose(np.diag(l), 1) and np.allclose(np.triu(l, 1), 0) and np.allclose(np.tril(u, -1), 0)


def test_lu_pivots_on_a_zero_leading_entry():
    a = jnp.array([[0.0, 1.0], [2.0, 3.0]])
    p, l, u = small_linalg.lu(a)
    np.testing.assert_allclose(p @ l @ u, a)
    np.testing.assert_array_equal(p, [[0.0, 1.0], [1.0, 0.0]])


def test_batched_compiled_rotations_have_no_lapack_call():
    keys = jax.random.split(jax.random.PRNGKey(0), 26 * 4 * 6)
    fn = jax.jit(jax.vmap(lambda k: small_linalg.lu(random_rotation(k, 16))))
    hlo = fn.lower(keys).as_text()
    assert "custom_call" not in hlo, [line for line in hlo.splitlines() if "custom_call" in line][:3]
    p, l, u = fn(keys)
    w = jnp.einsum("bij,bjk,bkl->bil", p, l, u)
    np.testing.assert_allclose(jnp.einsum("bji,bjk->bik", w, w), np.broadcast_to(np.eye(16), w.shape), atol=1e-5)


def _spd(n, seed):
    a = np.asarray(jax.random.normal(jax.random.PRNGKey(seed), (n + 3, n)), np.float64)
    return a.T @ a / (n + 3) + 0.1 * np.eye(n)


@pytest.mark.parametrize("n", [1, 2, 6, 16, 36])
def test_cholesky_is_lapacks_cholesky(n):
    a = _spd(n, 200 + n)
    l = np.asarray(small_linalg.cholesky(jnp.asarray(a, jnp.float32)))
    l_ref = np.linalg.cholesky(a)                                   # LAPACK potrf in float64
    np.testing.assert_allclose(l, l_ref, atol=2e-5 * np.abs(l_ref).max())
    assert np.allclose(np.triu(l, 1), 0) and np.all(np.diag(l) > 0)


def test_cholesky_of_an_indefinite_matrix_is_nan_not_a_wrong_factor():
    l = small_linalg.cholesky(jnp.array([[1.0, 2.0], [2.0, 1.0]]))
    assert np.isnan(np.asarray(l)[1, 1])


@pytest.mark.parametrize("n", [1, 3, 16])
def test_solve_lower_is_scipys_triangular_solve(n):
    l = np.linalg.cholesky(_spd(n, 300 + n))
    b = np.asarray(jax.random.normal(jax.random.PRNGKey(n), (5, n)), np.float64)
    x = np.asarray(small_linalg.solve_lower(jnp.asarray(l, jnp.float32), jnp.asarray(b, jnp.float32)))
    x_ref = scipy.linalg.solve_triangular(l, b.T, lower=True).T     # LAPACK trtrs in float64
    np.testing.assert_allclose(x, x_ref, rtol=1e-4, atol=1e-5)


def test_batched_compiled_cholesky_has_no_lapack_call():
    mats = jnp.stack([jnp.asarray(_spd(16, s), jnp.float32) for s in range(8)])
    fn = jax.jit(jax.vmap(lambda a: small_linalg.solve_lower(small_linalg.cholesky(a), jnp.eye(16))))
    assert "custom_call" not in fn.lower(mats).as_text()
    inv_l = np.asarray(fn(mats)).transpose(0, 2, 1)                 # L^{-1}
    for a, t in zip(np.asarray(mats, np.float64), inv_l):
        np.testing.assert_allclose(t @ a @ t.T, np.eye(16), atol=5e-5)
