"""ActNorm (Kingma & Dhariwal 2018): a per-channel affine map.

    y = (x + bias) * exp(log_scale)

The channel axis is the last one; every other event axis is a "position" that
shares the channel's parameters, so ``log|det| = P * sum(log_scale)`` with
``P`` the number of positions (``H * W`` for images, 1 for vectors).
"""
from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp

from emflow import checks
from emflow.bijectors.base import Array, check_batch


@dataclasses.dataclass(frozen=True)
class ActNorm:
    """Per-channel affine bijector with data-dependent initialisation.

    Attributes:
      event_shape: ``(*positions, C)``, e.g. ``(H, W, C)`` or ``(D,)``.

    Params: ``{"bias": (C,), "log_scale": (C,)}``.
    """

    event_shape: tuple[int, ...]

    def __post_init__(self):
        object.__setattr__(self, "event_shape", checks.event_shape("ActNorm", "event_shape", self.event_shape))

    @property
    def num_positions(self) -> int:
        return math.prod(self.event_shape[:-1])

    def init(self, key: Array, x: Array) -> dict:
        """Zero mean, unit standard deviation per channel on the batch ``x: (B, *event_shape)``.

        The statistics are those of ``x - x[0]`` (the shifted-data algorithm), so a channel
        of identical values has a spread of exactly 0 rather than the rounding error of its
        mean. A channel that is constant on the batch keeps scale 1 (there is nothing to
        normalise), rather than an epsilon-sized one. Constant means a spread within
        float rounding of the channel's values, ``std <= 8 eps max|x|`` (a few ulps:
        identical rows that passed through batched arithmetic can differ in the last
        bits). Without that, a batch of copies of one example, e.g. a mixture component
        started on a part of one example, gets a scale of ~1e7 per layer and overflows.
        """
        del key
        check_batch(x, self.event_shape, "ActNorm.init")
        axes = tuple(range(x.ndim - 1))
        shift = x[(0,) * (x.ndim - 1)]                     # (C,): one value of each channel
        centred = x - shift
        mean = shift + jnp.mean(centred, axis=axes)
        std = jnp.std(centred, axis=axes)
        resolution = 8 * jnp.finfo(x.dtype).eps * jnp.max(jnp.abs(x), axis=axes)
        constant = std <= resolution
        log_scale = jnp.where(constant, 0.0, -jnp.log(jnp.where(constant, 1.0, std)))
        return {"bias": -mean, "log_scale": log_scale}

    def _log_det(self, params: dict, batch: int) -> Array:
        return jnp.full((batch,), self.num_positions * jnp.sum(params["log_scale"]))

    def forward(self, params: dict, x: Array) -> tuple[Array, Array]:
        """``x: (B, *event_shape) -> (y: (B, *event_shape), log_det: (B,))``."""
        check_batch(x, self.event_shape, "ActNorm.forward")
        y = (x + params["bias"]) * jnp.exp(params["log_scale"])
        return y, self._log_det(params, x.shape[0])

    def inverse(self, params: dict, y: Array) -> tuple[Array, Array]:
        """``y: (B, *event_shape) -> (x: (B, *event_shape), log_det: (B,))``."""
        check_batch(y, self.event_shape, "ActNorm.inverse")
        x = y * jnp.exp(-params["log_scale"]) - params["bias"]
        return x, -self._log_det(params, y.shape[0])
