"""Split: multi-scale factoring-out of half of the channels (RealNVP / Glow).

``x: (B, H, W, C)`` becomes ``(kept, eps)`` with ``kept = x[..., :C//2]``
continuing through the flow and ``z2 = x[..., C//2:]`` leaving it.

- ``prior="conditional"`` (Glow's Split2d): ``z2 ~ N(mu(kept), exp(logs(kept))^2)``
  with ``(mu, logs)`` from a zero-initialised 3x3 convolution. Written as the
  bijection ``eps = (z2 - mu) * exp(-logs)``, ``log|det| = -sum(logs)``, so
  that ``eps ~ N(0, I)`` exactly when ``z2`` follows the conditional Gaussian.
- ``prior="standard"``: ``eps = z2 ~ N(0, I)``, ``log|det| = 0``.

Either way the split-off part that leaves the flow is standard normal, which
keeps the flow a bijection ``R^N -> R^N`` (the paper's Proposition 1).

``log_std_floor``: None (Glow's, the default) lets the network's ``logs`` be any number; a
float ``f`` maps it to ``f + softplus(logs - f)``, which is ``logs`` up to ``log(1 + e^{f - logs})``
above the floor and never below ``f``. The prior network is linear in ``kept`` at its
output, so an input unlike the training set can drive ``logs`` far below anything seen
in training (measured on MNIST: −10.4 for one test image, against ≥ −3.7 for the rest) and
that image's likelihood to hundreds of bits/dim; the floor bounds how narrow the prior can be.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Literal

import jax
import jax.numpy as jnp

from emflow.bijectors.base import Array, check_batch, sum_except_batch
from emflow.bijectors.conditioners import ConvImpl, ZeroConv, check_conv_impl

SplitPrior = Literal["conditional", "standard"]


@dataclasses.dataclass(frozen=True)
class Split:
    """Factor out the last ``C - C//2`` channels. Attributes: ``event_shape = (H, W, C)``, ``prior``.

    Params: ``{}`` for a standard prior, else the ZeroConv's params.
    """

    event_shape: tuple[int, int, int]
    prior: SplitPrior = "conditional"
    compute_dtype: str = "float32"  # of the prior network's convolution
    conv_impl: ConvImpl = "lax"      # how it runs: "lax" or "matmul"
    log_std_floor: float | None = None  # the conditional prior's smallest log-std (None: unbounded)

    def __post_init__(self):
        if self.prior not in ("conditional", "standard"):
            raise ValueError(f"Split: prior must be 'conditional' or 'standard', got {self.prior!r}")
        check_conv_impl("Split", self.conv_impl)
        if len(self.event_shape) != 3 or self.event_shape[-1] < 2:
            raise ValueError(f"Split: event_shape must be (H, W, C) with C >= 2, got {self.event_shape}")
        if self.log_std_floor is not None and not math.isfinite(self.log_std_floor):
            raise ValueError(f"Split: log_std_floor must be a finite number or None, got {self.log_std_floor}")

    @property
    def kept_shape(self) -> tuple[int, int, int]:
        h, w, c = self.event_shape
        return h, w, c // 2

    @property
    def split_shape(self) -> tuple[int, int, int]:
        h, w, c = self.event_shape
        return h, w, c - c // 2

    @property
    def _prior_net(self) -> ZeroConv:
        return ZeroConv(self.kept_shape[-1], 2 * self.split_shape[-1], self.conv_impl)

    def init(self, key: Array, x: Array | None = None) -> dict:
        if x is not None:
            check_batch(x, self.event_shape, "Split.init")
        return self._prior_net.init(key) if self.prior == "conditional" else {}

    def _mean_and_log_std(self, params: dict, kept: Array) -> tuple[Array, Array]:
        h = self._prior_net.apply(params, kept.astype(self.compute_dtype)).astype(kept.dtype)
        log_std = h[..., 1::2]
        if self.log_std_floor is not None:
            log_std = self.log_std_floor + jax.nn.softplus(log_std - self.log_std_floor)
        return h[..., 0::2], log_std

    def forward(self, params: dict, x: Array) -> tuple[tuple[Array, Array], Array]:
        """``x: (B, H, W, C) -> ((kept: (B, H, W, C//2), eps: (B, H, W, C - C//2)), log_det: (B,))``."""
        check_batch(x, self.event_shape, "Split.forward")
        c = self.kept_shape[-1]
        kept, z2 = x[..., :c], x[..., c:]
        if self.prior == "standard":
            return (kept, z2), jnp.zeros(x.shape[:1], x.dtype)
        mean, log_std = self._mean_and_log_std(params, kept)
        return (kept, (z2 - mean) * jnp.exp(-log_std)), -sum_except_batch(log_std)

    def inverse(self, params: dict, y: tuple[Array, Array]) -> tuple[Array, Array]:
        """``(kept, eps) -> (x: (B, H, W, C), log_det: (B,))``."""
        kept, eps = y
        check_batch(kept, self.kept_shape, "Split.inverse (kept part)")
        check_batch(eps, self.split_shape, "Split.inverse (split-off part)")
        if self.prior == "standard":
            return jnp.concatenate([kept, eps], axis=-1), jnp.zeros(kept.shape[:1], kept.dtype)
        mean, log_std = self._mean_and_log_std(params, kept)
        z2 = eps * jnp.exp(log_std) + mean
        return jnp.concatenate([kept, z2], axis=-1), sum_except_batch(log_std)
