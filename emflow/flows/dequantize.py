"""Dequantization: from 8-bit data to a continuous input, as part of the density.

A flow has a density on continuous ``x``; the data are integers ``k`` in
``{0, ..., 255}``. With ``x = (k + u) / 256``, ``u ~ U[0, 1)^N``, the model of
the discrete data is ``P(k) = int_{[k, k+1)/256} p(x) dx`` and
``log P(k) >= E_u[log p(x)] - N log 256`` (the variational dequantization
bound with a uniform q). ``Dequantizer.discrete_log_prob`` adds that term, so
likelihoods are of the discrete data and convert to bits per dimension.

Schemes:

- ``"uniform"`` (default): ``x = (k + u) / 256`` in ``[0, 1)``, the shape unchanged.
- ``"paper"``: the protocol of the paper's own code, for reproducing its
  tables: bilinear resize 28x28 -> 32x32 (rounded back to 8 bits),
  ``x = k / 255 - 0.5 + n``, ``n ~ N(0, (1/256)^2)``, and the same
  ``-N log 256`` term with ``N`` the pixels of the *resized* image. Its NLL is
  per pixel of the 32x32 image and is not comparable with 28x28 bits/dim.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from emflow import checks

Array = jax.Array
Scheme = Literal["uniform", "paper"]
NUM_BINS = 256


@dataclasses.dataclass(frozen=True)
class Dequantizer:
    """Turns uint8 batches into the flow's continuous input.

    Attributes:
      data_shape: shape of one data example, e.g. ``(28, 28, 1)``.
      scheme: ``"uniform"`` or ``"paper"``.
      resize_to: ``(H, W)`` of the model input for the paper scheme (default 32x32).
    """

    data_shape: tuple[int, ...]
    scheme: Scheme = "uniform"
    resize_to: tuple[int, int] = (32, 32)

    def __post_init__(self):
        object.__setattr__(self, "data_shape", checks.event_shape("Dequantizer", "data_shape", self.data_shape))
        object.__setattr__(self, "resize_to", checks.event_shape("Dequantizer", "resize_to (H, W)", self.resize_to, 2))
        if self.scheme not in ("uniform", "paper"):
            raise ValueError(f"Dequantizer: scheme must be 'uniform' or 'paper', got {self.scheme!r}")
        if self.scheme == "paper" and len(self.data_shape) != 3:
            raise ValueError(f"Dequantizer: the paper scheme needs images (H, W, C), got {self.data_shape}")

    @property
    def model_shape(self) -> tuple[int, ...]:
        """Shape of one example as the flow sees it."""
        if self.scheme == "paper":
            return (*self.resize_to, self.data_shape[-1])
        return self.data_shape

    @property
    def num_model_dims(self) -> int:
        return math.prod(self.model_shape)

    @property
    def log_prob_offset(self) -> float:
        """The ``-N log 256`` term that turns a density on ``x`` into one on the 8-bit data."""
        return -self.num_model_dims * math.log(NUM_BINS)

    def check(self, k) -> None:
        """Raise ValueError unless ``k`` is a uint8 batch ``(B, *data_shape)``."""
        shape, dtype = tuple(np.shape(k)), getattr(k, "dtype", None)
        if shape[1:] != self.data_shape or len(shape) != len(self.data_shape) + 1:
            raise ValueError(
                f"Dequantizer: expected uint8 data of shape (batch, {', '.join(map(str, self.data_shape))}), got {shape}"
            )
        if dtype != np.uint8:
            raise ValueError(f"Dequantizer: expected uint8 data (values 0..255), got dtype {dtype}")

    def resize(self, k: Array) -> Array:
        """The paper scheme's bilinear resize of uint8 ``(B, H, W, C)`` to ``(B, *resize_to, C)``, rounded to uint8."""
        b, _, _, c = k.shape
        resized = jax.image.resize(k.astype(jnp.float32), (b, *self.resize_to, c), method="bilinear")
        return jnp.clip(jnp.round(resized), 0, 255).astype(jnp.uint8)

    def __call__(self, key: Array, k: Array) -> Array:
        """``k: uint8 (B, *data_shape) -> x: float32 (B, *model_shape)`` with fresh noise from ``key``."""
        self.check(k)
        if self.scheme == "uniform":
            u = jax.random.uniform(key, k.shape)
            return (k.astype(jnp.float32) + u) / NUM_BINS
        k = self.resize(k)
        noise = jax.random.normal(key, k.shape) / NUM_BINS
        return k.astype(jnp.float32) / 255.0 - 0.5 + noise

    def quantize(self, x: Array) -> Array:
        """Back to 8-bit images: ``x: (B, *model_shape) -> uint8`` (for plotting samples)."""
        if self.scheme == "uniform":
            k = jnp.floor(x * NUM_BINS)
        else:
            k = jnp.round((x + 0.5) * 255.0)
        return jnp.clip(k, 0, 255).astype(jnp.uint8)

    def discrete_log_prob(self, continuous_log_prob: Array) -> Array:
        """``log p(x)`` of the continuous input -> ``log P(k)`` of the 8-bit data (nats)."""
        return continuous_log_prob + self.log_prob_offset

    def bits_per_dim(self, continuous_log_prob: Array) -> Array:
        """Negative discrete log-likelihood in bits per model input dimension."""
        return -self.discrete_log_prob(continuous_log_prob) / (self.num_model_dims * math.log(2.0))

    def nats_per_dim(self, continuous_log_prob: Array) -> Array:
        """Negative discrete log-likelihood in nats per model input dimension (the paper's unit)."""
        return -self.discrete_log_prob(continuous_log_prob) / self.num_model_dims
