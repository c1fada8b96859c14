"""Squeeze: 2x2 space-to-depth, ``(B, H, W, C) -> (B, H/2, W/2, 4C)``; volume preserving.

Output channel ``4c + 2i + j`` holds input pixel ``(2h + i, 2w + j)`` of
channel ``c`` (the same order as Glow's reference code).
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from emflow.bijectors.base import Array, check_batch


@dataclasses.dataclass(frozen=True)
class Squeeze:
    """Space-to-depth by a factor 2. Attributes: ``event_shape = (H, W, C)``, H and W even."""

    event_shape: tuple[int, int, int]

    def __post_init__(self):
        if len(self.event_shape) != 3:
            raise ValueError(f"Squeeze: event_shape must be (H, W, C), got {self.event_shape}")
        h, w, _ = self.event_shape
        if h % 2 or w % 2:
            raise ValueError(
                f"Squeeze: height and width must be even, got event_shape {self.event_shape}"
            )

    @property
    def output_shape(self) -> tuple[int, int, int]:
        h, w, c = self.event_shape
        return h // 2, w // 2, 4 * c

    def init(self, key: Array, x: Array | None = None) -> dict:
        del key
        if x is not None:
            check_batch(x, self.event_shape, "Squeeze.init")
        return {}

    def forward(self, params: dict, x: Array) -> tuple[Array, Array]:
        """``x: (B, H, W, C) -> (y: (B, H/2, W/2, 4C), log_det: (B,) zeros)``."""
        del params
        check_batch(x, self.event_shape, "Squeeze.forward")
        b = x.shape[0]
        h, w, c = self.event_shape
        y = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4)
        return y.reshape(b, h // 2, w // 2, 4 * c), jnp.zeros((b,), x.dtype)

    def inverse(self, params: dict, y: Array) -> tuple[Array, Array]:
        """``y: (B, H/2, W/2, 4C) -> (x: (B, H, W, C), log_det: (B,) zeros)``."""
        del params
        check_batch(y, self.output_shape, "Squeeze.inverse")
        b = y.shape[0]
        h, w, c = self.event_shape
        x = y.reshape(b, h // 2, w // 2, c, 2, 2).transpose(0, 1, 4, 2, 5, 3)
        return x.reshape(b, h, w, c), jnp.zeros((b,), y.dtype)
