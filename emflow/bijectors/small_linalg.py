"""QR and LU of small square matrices in plain jax.numpy, without LAPACK.

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

Both are tested against those LAPACK routines.
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
