"""A trainable whitening layer: an affine map with a lower triangular matrix, initialised to whiten a batch.

    y = T (x - shift),    T = tril(lower, -1) + diag(exp(log_diag)),    log|det dy/dx| = sum(log_diag)

on the flattened event (``N = prod(event_shape)`` values). ``init`` fits it to a batch:
``shift`` is the batch mean and ``T = L^{-1}`` for the Cholesky factor ``L`` of the batch
covariance plus ``reg * I``, so the batch comes out with mean 0 and covariance
``I - reg * T T^T`` (exactly ``I`` for ``reg = 0``). Put in front of a flow whose other
layers start as the identity (zero-initialised couplings) or as rotations, the flow
starts as the Gaussian ``N(x; mean, cov + reg * I)``: a flow classifier then starts at
the Gaussian Bayes classifier (``emflow.classify.gaussian_classifier``), and each generator of a
partition-initialised ``GenMM`` at its part's Gaussian.

The Cholesky factor and the inverse's forward substitution are plain jax.numpy
(``bijectors.small_linalg``), so ``init`` batches under ``vmap`` without LAPACK calls.
"""
from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp

from emflow import checks
from emflow.bijectors import small_linalg
from emflow.bijectors.base import Array, check_batch


@dataclasses.dataclass(frozen=True)
class Whiten:
    """Lower triangular affine bijector with a whitening, data-dependent init.

    Attributes:
      event_shape: any; the layer acts on the ``N = prod(event_shape)`` flattened values (meant
        for small N: vectors, or small images; its matrix has N^2 entries).
      reg: added to the diagonal of the batch covariance at init (in the input's squared units),
        so that a batch with fewer than N + 1 distinct examples, or a constant feature, still
        gives a finite, invertible map. Must be > 0 unless every batch has a full-rank covariance.

    Params: ``{"shift": (N,), "log_diag": (N,), "lower": (N, N)}`` (only the strictly lower
    triangle of ``lower`` is used).
    """

    event_shape: tuple[int, ...]
    reg: float = 1e-3

    def __post_init__(self):
        object.__setattr__(self, "event_shape", checks.event_shape("Whiten", "event_shape", self.event_shape))
        if not (math.isfinite(self.reg) and self.reg >= 0):
            raise ValueError(f"Whiten: reg must be a finite number >= 0, got {self.reg}")

    @property
    def num_values(self) -> int:
        return math.prod(self.event_shape)

    @staticmethod
    def matrix(params: dict) -> Array:
        """``T: (N, N)``, lower triangular with a positive diagonal."""
        return jnp.tril(params["lower"], -1) + jnp.diag(jnp.exp(params["log_diag"]))

    def init(self, key: Array, x: Array) -> dict:
        """Whitens ``x: (B, *event_shape)``: mean and Cholesky factor of its covariance (+ ``reg * I``)."""
        del key
        check_batch(x, self.event_shape, "Whiten.init")
        flat = x.reshape(x.shape[0], -1)
        mean = jnp.mean(flat, axis=0)
        centred = flat - mean
        cov = jnp.dot(centred.T, centred, precision=small_linalg.FULL) / flat.shape[0]
        chol = small_linalg.cholesky(cov + self.reg * jnp.eye(self.num_values, dtype=flat.dtype))
        inverse = small_linalg.solve_lower(chol, jnp.eye(self.num_values, dtype=flat.dtype)).T  # L^{-1}
        return {"shift": mean, "log_diag": -jnp.log(jnp.diag(chol)), "lower": jnp.tril(inverse, -1)}

    def forward(self, params: dict, x: Array) -> tuple[Array, Array]:
        """``x: (B, *event_shape) -> (y, log_det: (B,))``."""
        check_batch(x, self.event_shape, "Whiten.forward")
        flat = x.reshape(x.shape[0], -1) - params["shift"]
        y = jnp.dot(flat, self.matrix(params).T, precision=small_linalg.FULL)
        log_det = jnp.full(x.shape[:1], jnp.sum(params["log_diag"]), x.dtype)
        return y.reshape(x.shape), log_det

    def inverse(self, params: dict, y: Array) -> tuple[Array, Array]:
        """``y: (B, *event_shape) -> (x, log|det dx/dy|: (B,))`` by forward substitution."""
        check_batch(y, self.event_shape, "Whiten.inverse")
        flat = small_linalg.solve_lower(self.matrix(params), y.reshape(y.shape[0], -1)) + params["shift"]
        log_det = jnp.full(y.shape[:1], -jnp.sum(params["log_diag"]), y.dtype)
        return flat.reshape(y.shape), log_det
