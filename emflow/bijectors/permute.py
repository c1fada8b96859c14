"""Reverse: a fixed permutation that reverses the channel axis (RealNVP's alternation)."""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from emflow import checks
from emflow.bijectors.base import Array, check_batch


@dataclasses.dataclass(frozen=True)
class Reverse:
    """``y = x[..., ::-1]``; volume preserving, no params. Attributes: ``event_shape``."""

    event_shape: tuple[int, ...]

    def __post_init__(self):
        object.__setattr__(self, "event_shape", checks.event_shape("Reverse", "event_shape", self.event_shape))

    def init(self, key: Array, x: Array | None = None) -> dict:
        del key
        if x is not None:
            check_batch(x, self.event_shape, "Reverse.init")
        return {}

    def forward(self, params: dict, x: Array) -> tuple[Array, Array]:
        """``x: (B, *event_shape) -> (x[..., ::-1], zeros (B,))``."""
        del params
        check_batch(x, self.event_shape, "Reverse.forward")
        return x[..., ::-1], jnp.zeros(x.shape[:1], x.dtype)

    def inverse(self, params: dict, y: Array) -> tuple[Array, Array]:
        """``y: (B, *event_shape) -> (y[..., ::-1], zeros (B,))``."""
        return self.forward(params, y)
