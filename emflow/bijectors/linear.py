"""Invertible linear map over the channel axis: Glow's invertible 1x1 convolution.

    y[..., :] = W @ x[..., :]     at every position,   log|det| = P * log|det W|

Two parametrisations of ``W`` (C x C):

- ``"plain"``: ``W`` itself; ``log|det W|`` by ``slogdet`` (O(C^3)).
- ``"lu"``: ``W = P L (U + diag(sign_s * exp(log_s)))`` with a fixed
  permutation ``P``, unit-lower-triangular ``L``, strictly upper ``U``, fixed
  signs ``sign_s`` and learned ``log_s``; ``log|det W| = sum(log_s)`` (O(C)).

Both start from a random rotation drawn from the layer's own key. For vector
data (``event_shape = (D,)``) this is an invertible dense layer.

Its matrix products run at full float32 precision (``Precision.HIGHEST``) on every
backend. XLA's default for float32 is TF32 on recent NVIDIA GPUs and one bfloat16 pass
on TPUs: the layer would then round ``x`` and ``W`` before multiplying, so ``y`` would no
longer be ``W x`` while the log-det still says ``log|det W|``. In a GenMM of three 3-level
Glows trained on MNIST, that rounding (emulated on the CPU) moved log p(x) of test images
by 13 nats on average with bf16 and 0.6 nats with TF32, and changed the most responsible
generator of 3.7% and 0.15% of them (``python -m benchmarks.matmul_precision``). The
matrices are C x C with C <= 16 in the paper's Glow, so full precision is cheap. The
coupling networks keep the backend's default: whatever function a conditioner computes,
the coupling stays an exact bijection with an exact log-det.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Literal

import jax
import jax.numpy as jnp
import jax.scipy.linalg

from emflow import checks
from emflow.bijectors import small_linalg
from emflow.bijectors.base import Array, check_batch

Parametrization = Literal["plain", "lu"]
FULL = jax.lax.Precision.HIGHEST
# The LU parametrisation's constants, stored with its parameters: the permutation and the signs of diag(U).
CONSTANT_LEAVES = ("perm", "sign_s")


def is_constant_leaf(path) -> bool:
    """Whether the parameter-tree leaf at ``path`` (a ``jax.tree_util`` key path) is one of ``CONSTANT_LEAVES``."""
    return any(isinstance(key, jax.tree_util.DictKey) and key.key in CONSTANT_LEAVES for key in path)


def mix_channels(x: Array, w: Array) -> Array:
    """``y[..., d] = sum_c w[d, c] x[..., c]`` at full float32 precision: ``x: (..., C)``, ``w: (C, C)``."""
    return jnp.einsum("...c,dc->...d", x, w, precision=FULL)


def random_rotation(key: Array, n: int) -> Array:
    """A random orthogonal ``(n, n)`` matrix (Haar measure: the Q, with positive diag(R), of a Gaussian matrix).

    Computed without LAPACK (``small_linalg``), so that a batched, compiled init cannot reach
    jaxlib's CPU LAPACK thread pool; equal to rounding to ``q * sign(diag(r))`` of ``jnp.linalg.qr``.
    """
    n = checks.integer("random_rotation", "n", n, 1)
    return small_linalg.orthonormal_columns(jax.random.normal(checks.key("random_rotation", key), (n, n)))


@dataclasses.dataclass(frozen=True)
class InvertibleLinear:
    """Invertible channel-mixing bijector (1x1 convolution / dense layer).

    Attributes:
      event_shape: ``(*positions, C)``.
      parametrization: ``"plain"`` or ``"lu"``.

    Params: plain ``{"kernel": (C, C)}``; lu ``{"perm", "lower", "upper": (C, C),
    "sign_s", "log_s": (C,)}``. ``perm`` and ``sign_s`` are constants (``CONSTANT_LEAVES``): the
    forward pass stops their gradients, and ``emflow.train``'s optimizers hold them (an update not
    made of gradients, such as weight decay, would otherwise move them and break ``log|det W|``).
    """

    event_shape: tuple[int, ...]
    parametrization: Parametrization = "lu"

    def __post_init__(self):
        object.__setattr__(self, "event_shape", checks.event_shape("InvertibleLinear", "event_shape", self.event_shape))
        if self.parametrization not in ("plain", "lu"):
            raise ValueError(
                f"InvertibleLinear: parametrization must be 'plain' or 'lu', got {self.parametrization!r}"
            )

    @property
    def num_channels(self) -> int:
        return self.event_shape[-1]

    @property
    def num_positions(self) -> int:
        return math.prod(self.event_shape[:-1])

    def init(self, key: Array, x: Array | None = None) -> dict:
        """A random rotation from ``key``; ``x`` is only shape-checked."""
        if x is not None:
            check_batch(x, self.event_shape, "InvertibleLinear.init")
        w = random_rotation(key, self.num_channels)
        if self.parametrization == "plain":
            return {"kernel": w}
        return self.lu_params_from_matrix(w)

    @staticmethod
    def lu_params_from_matrix(w: Array) -> dict:
        """LU parameters of a given invertible matrix ``w: (C, C)``."""
        p, l, u = small_linalg.lu(w)  # no LAPACK: see random_rotation
        s = jnp.diag(u)
        return {
            "perm": p,
            "lower": l,
            "upper": jnp.triu(u, k=1),
            "sign_s": jnp.sign(s),
            "log_s": jnp.log(jnp.abs(s)),
        }

    def matrix(self, params: dict) -> Array:
        """The ``(C, C)`` matrix ``W``."""
        if self.parametrization == "plain":
            return params["kernel"]
        c = self.num_channels
        lower = jnp.tril(params["lower"], k=-1) + jnp.eye(c)
        upper = jnp.triu(params["upper"], k=1) + jnp.diag(
            jax.lax.stop_gradient(params["sign_s"]) * jnp.exp(params["log_s"])
        )
        return jnp.linalg.multi_dot([jax.lax.stop_gradient(params["perm"]), lower, upper], precision=FULL)

    def log_abs_det_matrix(self, params: dict) -> Array:
        """``log|det W|`` (scalar)."""
        if self.parametrization == "plain":
            return jnp.linalg.slogdet(params["kernel"])[1]
        return jnp.sum(params["log_s"])

    def _inverse_matrix(self, params: dict) -> Array:
        if self.parametrization == "plain":
            return jnp.linalg.inv(params["kernel"])
        c = self.num_channels
        eye = jnp.eye(c)
        lower = jnp.tril(params["lower"], k=-1) + eye
        upper = jnp.triu(params["upper"], k=1) + jnp.diag(params["sign_s"] * jnp.exp(params["log_s"]))
        # W^-1 = U^-1 L^-1 P^T, by two triangular solves.
        l_inv_pt = jax.scipy.linalg.solve_triangular(lower, params["perm"].T, lower=True, unit_diagonal=True)
        return jax.scipy.linalg.solve_triangular(upper, l_inv_pt, lower=False)

    def forward(self, params: dict, x: Array) -> tuple[Array, Array]:
        """``x: (B, *event_shape) -> (y, log_det: (B,))``."""
        check_batch(x, self.event_shape, "InvertibleLinear.forward")
        y = mix_channels(x, self.matrix(params))
        log_det = self.num_positions * self.log_abs_det_matrix(params)
        return y, jnp.full((x.shape[0],), log_det)

    def inverse(self, params: dict, y: Array) -> tuple[Array, Array]:
        """``y: (B, *event_shape) -> (x, log_det: (B,))``."""
        check_batch(y, self.event_shape, "InvertibleLinear.inverse")
        x = mix_channels(y, self._inverse_matrix(params))
        log_det = -self.num_positions * self.log_abs_det_matrix(params)
        return x, jnp.full((y.shape[0],), log_det)
