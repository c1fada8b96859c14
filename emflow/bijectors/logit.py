"""The logit map in front of an image flow (RealNVP's preprocessing).

    y = logit(s),    s = alpha + (1 - 2 alpha) x,    x in [0, 1]

    log|det dy/dx| = sum_i [ log(1 - 2 alpha) - log s_i - log(1 - s_i) ]

Dequantized 8-bit data ``x = (k + u) / 256`` lie in ``[0, 1)``; the logit
spreads them over the real line, where a Glow with an N(0, I) latent fits them
far better (RealNVP, MAF, FFJORD and Residual Flows all model MNIST this way;
FFJORD and Residual Flows with ``alpha = 1e-6``). The log-det is counted, so
``log p(x)`` stays a density on ``[0, 1]^N`` and the dequantizer's ``-N log 256``
turns it into a likelihood of the 8-bit data as before.

Inputs outside ``[0, 1]`` are outside the domain: their ``y`` is NaN (the
logarithm of a negative number), never a silently clipped value.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from emflow import checks
from emflow.bijectors.base import Array, check_batch, sum_except_batch

DEFAULT_ALPHA = 1e-6


@dataclasses.dataclass(frozen=True)
class Logit:
    """``x in [0, 1] -> logit(alpha + (1 - 2 alpha) x)``, elementwise, with its exact log-det.

    Attributes:
      event_shape: the shape of one example, e.g. ``(28, 28, 1)``.
      alpha: the margin that keeps ``x = 0`` and ``x = 1`` finite, in ``(0, 0.5)``.

    Params: ``{}`` (nothing is learned).
    """

    event_shape: tuple[int, ...]
    alpha: float = DEFAULT_ALPHA

    def __post_init__(self):
        object.__setattr__(self, "event_shape", checks.event_shape("Logit", "event_shape", self.event_shape))
        if not 0.0 < self.alpha < 0.5:
            raise ValueError(f"Logit: alpha must lie in (0, 0.5), got {self.alpha!r}")

    def init(self, key: Array, x: Array) -> dict:
        del key
        check_batch(x, self.event_shape, "Logit.init")
        return {}

    def forward(self, params: dict, x: Array) -> tuple[Array, Array]:
        """``x: (B, *event_shape)`` in ``[0, 1]`` -> ``(y, log|det dy/dx|: (B,))``."""
        del params
        check_batch(x, self.event_shape, "Logit.forward")
        s = self.alpha + (1.0 - 2.0 * self.alpha) * x
        log_s, log_1ms = jnp.log(s), jnp.log1p(-s)
        y = log_s - log_1ms
        log_det = sum_except_batch(-log_s - log_1ms) + math.prod(self.event_shape) * math.log1p(-2.0 * self.alpha)
        return y, log_det

    def inverse(self, params: dict, y: Array) -> tuple[Array, Array]:
        """``y: (B, *event_shape) -> (x = (sigmoid(y) - alpha) / (1 - 2 alpha), log|det dx/dy|: (B,))``."""
        del params
        check_batch(y, self.event_shape, "Logit.inverse")
        x = (jax.nn.sigmoid(y) - self.alpha) / (1.0 - 2.0 * self.alpha)
        # log sigmoid(y) + log sigmoid(-y) = -softplus(-y) - softplus(y)
        log_det = (sum_except_batch(-jax.nn.softplus(-y) - jax.nn.softplus(y))
                   - math.prod(self.event_shape) * math.log1p(-2.0 * self.alpha))
        return x, log_det
