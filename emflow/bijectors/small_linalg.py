"""QR, LU and Cholesky of small square matrices in plain jax.numpy, without LAPACK.

The invertible linear layers draw a random rotation and take its LU factors at init.
``jnp.linalg.qr`` and ``jax.scipy.linalg.lu`` lower, on the CPU, to jaxlib's LAPACK
custom calls. Batched under ``vmap`` (26 classes x 4 components x 6 steps of the
classifier's init), those run through jaxlib's ``ParallelBatchMap``, which deadlocked
its own thread pool in this project (every thread idle for good). The same happened
with two QR calls running concurrently under ``lax.map``. The functions here use only
matrix-vector products and elementwise ops inside a ``lax.fori_loop`` over the ``n``
columns. They batch under ``vmap`` like any other op, and for the C <= 64 matrices
of a flow they cost microseconds.

- ``orthonormal_columns(a)``: Gram–Schmidt, run twice per column ("twice is enough",
  Giraud et al. 2005). It returns the Q of ``a = QR`` with ``diag(R) > 0``, the unique
  QR with that sign, equal to ``q * sign(diag(r))`` of ``jnp.linalg.qr`` to rounding.
- ``lu(a)``: Doolittle with partial pivoting (the largest ``|a_ik|``, first on ties, as
  LAPACK's ``getrf``). It returns ``(p, l, u)`` with ``a = p @ l @ u``, the convention of
  ``jax.scipy.linalg.lu``, and equals it to rounding.
- ``cholesky(a)``: the column-by-column (left-looking) Cholesky ``a = l l^T`` of a
  symmetric positive-definite matrix, for the whitening layer's init (``bijectors.whiten``),
  which is batched over classes and components as the rotations are.
- ``solve_lower(l, b)``: forward substitution, ``x`` with ``x l^T = b`` for a batch of rows
  ``b: (B, n)``, i.e. ``l x_i = b_i`` for every row; used for the inverse of a lower
  triangular layer and to invert a Cholesky factor.

All are tested against LAPACK's routines (numpy / scipy in float64).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from emflow.bijectors.base import Array

FULL = jax.lax.Precision.HIGHEST


def orthonormal_columns(a: Array) -> Array:
    """``(n, n) -> (n, n)`` Q of ``a = QR`` with a positive diagonal of R (a must be invertible)."""
    n = a.shape[-1]
    index = jnp.arange(n)

    def column(j, q):
        v = a[:, j]
        earlier = index < j
        for _ in range(2):  # a second pass restores orthogonality lost to rounding in the first
            v = v - jnp.dot(q, jnp.where(earlier, jnp.dot(q.T, v, precision=FULL), 0.0), precision=FULL)
        return q.at[:, j].set(v / jnp.sqrt(jnp.sum(v * v)))

    return jax.lax.fori_loop(0, n, column, jnp.zeros_like(a))


def lu(a: Array) -> tuple[Array, Array, Array]:
    """``a: (n, n) -> (p, l, u)``: ``a = p @ l @ u``, ``p`` a permutation, ``l`` unit lower, ``u`` upper triangular."""
    n = a.shape[-1]
    index = jnp.arange(n)

    def eliminate(k, carry):
        m, order = carry
        pivot = jnp.argmax(jnp.where(index >= k, jnp.abs(m[:, k]), -1.0))
        swap = jnp.where(index == k, pivot, jnp.where(index == pivot, k, index))
        m, order = m[swap], order[swap]
        below = index > k
        factors = jnp.where(below, m[:, k] / m[k, k], 0.0)
        m = m - jnp.outer(factors, jnp.where(below, m[k], 0.0))   # rows below k, columns right of k
        m = m.at[:, k].set(jnp.where(below, factors, m[:, k]))     # store the multipliers in L's place
        return m, order

    m, order = jax.lax.fori_loop(0, n, eliminate, (a, index))
    lower = jnp.tril(m, -1) + jnp.eye(n, dtype=a.dtype)
    upper = jnp.triu(m)
    p = jnp.eye(n, dtype=a.dtype)[order].T   # a[order] = l @ u, so a = p @ l @ u
    return p, lower, upper


def cholesky(a: Array) -> Array:
    """``(n, n)`` symmetric positive definite ``a -> (n, n)`` lower triangular ``l``, ``a = l @ l.T``, ``diag(l) > 0``.

    Column ``j`` is ``(a[:, j] - l[:, :j] @ l[j, :j]) / l[j, j]`` below the diagonal; the
    columns right of ``j`` are still zero when column ``j`` is formed, so one matrix-vector
    product with the whole ``l`` computes the sum. A matrix that is not positive definite
    gives NaN (the square root of a non-positive pivot), not a silently wrong factor.
    """
    n = a.shape[-1]
    index = jnp.arange(n)

    def column(j, l):
        v = a[:, j] - jnp.dot(l, l[j], precision=FULL)
        pivot = jnp.sqrt(v[j])
        return l.at[:, j].set(jnp.where(index >= j, v / pivot, 0.0))

    return jax.lax.fori_loop(0, n, column, jnp.zeros_like(a))


def solve_lower(l: Array, b: Array) -> Array:
    """``l: (n, n)`` lower triangular (non-zero diagonal), ``b: (B, n) -> x: (B, n)`` with ``x @ l.T = b``.

    Forward substitution over the ``n`` columns of ``x``: ``x_i = (b_i - sum_{j<i} l_ij x_j) / l_ii``
    (the columns ``>= i`` of ``x`` are still zero when column ``i`` is formed).
    """
    n = l.shape[-1]

    def column(i, x):
        return x.at[:, i].set((b[:, i] - jnp.dot(x, l[i], precision=FULL)) / l[i, i])

    return jax.lax.fori_loop(0, n, column, jnp.zeros_like(b))
