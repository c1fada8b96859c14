"""Coupling layers (NICE / RealNVP / Glow), eq. (9) of the paper.

The input's channels (last axis) are split into ``x_a`` (the first
``C // 2``) and ``x_b`` (the rest). ``x_a`` passes unchanged and conditions an
element-wise map of ``x_b``:

- affine (Glow):  ``y_b = (x_b + t(x_a)) * s(x_a)``, ``s = sigmoid(h + 2)``,
  ``log|det| = sum log s``; ``t`` and ``h`` are the even and odd output
  channels of the conditioner.
- additive (NICE): ``y_b = x_b + t(x_a)``, ``log|det| = 0``.
- spline (Neural Spline Flows): each entry of ``x_b`` through its own monotonic
  rational-quadratic spline on ``[-tail_bound, tail_bound]``, identity outside, whose
  ``3 * spline_bins - 1`` parameters the conditioner gives (``rational_quadratic``).

With a zero-initialised conditioner, an additive or spline coupling starts as the
identity and an affine one as the identity on ``x_a`` and the constant scaling
``sigmoid(2) ~= 0.881`` on ``x_b`` (Glow's choice; ActNorm absorbs it).
"""
from __future__ import annotations

import dataclasses
from typing import Literal, Union

import jax
import jax.numpy as jnp

from emflow import checks
from emflow.bijectors import rational_quadratic as rq
from emflow.bijectors.base import Array, check_batch, sum_except_batch
from emflow.bijectors.conditioners import ConvConditioner, ConvImpl, MLPConditioner, check_conv_impl

CouplingKind = Literal["affine", "additive", "spline"]
COUPLING_KINDS = ("affine", "additive", "spline")
Conditioner = Union[ConvConditioner, MLPConditioner]
SCALE_OFFSET = 2.0  # Glow: scale = sigmoid(h + 2)


def affine_forward(shift: Array, log_scale: Array, x: Array) -> Array:
    """Glow's affine map ``(x + shift) * exp(log_scale)``, element-wise."""
    return (x + shift) * jnp.exp(log_scale)


def affine_inverse(shift: Array, log_scale: Array, y: Array) -> Array:
    """The inverse of ``affine_forward``: ``y * exp(-log_scale) - shift``, element-wise."""
    return y * jnp.exp(-log_scale) - shift


@dataclasses.dataclass(frozen=True)
class Coupling:
    """Affine, additive or rational-quadratic spline coupling over the last axis.

    Attributes:
      event_shape: ``(H, W, C)`` with a ``ConvConditioner`` or ``(D,)`` with an
        ``MLPConditioner``; ``C`` (or ``D``) must be at least 2.
      kind: ``"affine"``, ``"additive"`` or ``"spline"``.
      hidden: width of the conditioner's hidden layers.
      num_hidden_layers: depth of an MLP conditioner (vectors only).
      compute_dtype: dtype of the conditioner's arithmetic (``"bfloat16"`` for mixed
        precision); parameters, the coupled values and the log-det stay float32.
      conv_impl: how a conv conditioner's 3x3 convolutions run, ``"lax"`` or ``"matmul"``.
      spline_bins: bins of each spline (``kind="spline"``), at least 2.
      tail_bound: the splines act on ``[-tail_bound, tail_bound]`` and are the identity outside.

    Params: the conditioner's params.
    """

    event_shape: tuple[int, ...]
    kind: CouplingKind = "affine"
    hidden: int = 512
    num_hidden_layers: int = 2
    compute_dtype: str = "float32"
    conv_impl: ConvImpl = "lax"
    spline_bins: int = 8
    tail_bound: float = 4.0

    def __post_init__(self):
        object.__setattr__(self, "event_shape", checks.event_shape("Coupling", "event_shape", self.event_shape))
        checks.integer("Coupling", "hidden", self.hidden, 1)
        checks.integer("Coupling", "num_hidden_layers", self.num_hidden_layers, 1)
        if self.compute_dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"Coupling: compute_dtype must be float32, bfloat16 or float16, got {self.compute_dtype!r}")
        check_conv_impl("Coupling", self.conv_impl)
        if self.kind not in COUPLING_KINDS:
            raise ValueError(f"Coupling: kind must be one of {COUPLING_KINDS}, got {self.kind!r}")
        if self.kind == "spline":
            rq.check_settings("Coupling", self.spline_bins, self.tail_bound)
        if len(self.event_shape) not in (1, 3):
            raise ValueError(f"Coupling: event_shape must be (H, W, C) or (D,), got {self.event_shape}")
        if self.event_shape[-1] < 2:
            raise ValueError(f"Coupling: needs at least 2 channels to split, got event_shape {self.event_shape}")

    @property
    def split_sizes(self) -> tuple[int, int]:
        c = self.event_shape[-1]
        return c // 2, c - c // 2

    @property
    def conditioner(self) -> Conditioner:
        ca, cb = self.split_sizes
        out = {"affine": 2 * cb, "additive": cb, "spline": cb * rq.num_params(self.spline_bins)}[self.kind]
        if len(self.event_shape) == 3:
            return ConvConditioner(ca, out, self.hidden, self.conv_impl)
        return MLPConditioner(ca, out, self.hidden, self.num_hidden_layers)

    def init(self, key: Array, x: Array | None = None) -> dict:
        if x is not None:
            check_batch(x, self.event_shape, "Coupling.init")
        return self.conditioner.init(key)

    def _conditioner_output(self, params: dict, x_a: Array) -> Array:
        return self.conditioner.apply(params, x_a.astype(self.compute_dtype)).astype(x_a.dtype)

    def _spline_params(self, params: dict, x_a: Array) -> Array:
        """The splines' parameters ``(*x_b.shape, 3 * spline_bins - 1)``."""
        h = self._conditioner_output(params, x_a)
        return h.reshape(*h.shape[:-1], self.split_sizes[1], rq.num_params(self.spline_bins))

    def _shift_and_log_scale(self, params: dict, x_a: Array) -> tuple[Array, Array | None]:
        h = self._conditioner_output(params, x_a)
        if self.kind == "additive":
            return h, None
        return h[..., 0::2], jax.nn.log_sigmoid(h[..., 1::2] + SCALE_OFFSET)

    def forward(self, params: dict, x: Array) -> tuple[Array, Array]:
        """``x: (B, *event_shape) -> (y, log_det: (B,))``."""
        check_batch(x, self.event_shape, "Coupling.forward")
        ca, _ = self.split_sizes
        x_a, x_b = x[..., :ca], x[..., ca:]
        if self.kind == "spline":
            y_b, log_grad = rq.forward(self._spline_params(params, x_a), x_b, self.tail_bound)
            return jnp.concatenate([x_a, y_b], axis=-1), sum_except_batch(log_grad)
        shift, log_scale = self._shift_and_log_scale(params, x_a)
        if log_scale is None:
            return jnp.concatenate([x_a, x_b + shift], axis=-1), jnp.zeros(x.shape[:1], x.dtype)
        y_b = affine_forward(shift, log_scale, x_b)
        return jnp.concatenate([x_a, y_b], axis=-1), sum_except_batch(log_scale)

    def inverse(self, params: dict, y: Array) -> tuple[Array, Array]:
        """``y: (B, *event_shape) -> (x, log_det: (B,))``."""
        check_batch(y, self.event_shape, "Coupling.inverse")
        ca, _ = self.split_sizes
        y_a, y_b = y[..., :ca], y[..., ca:]
        if self.kind == "spline":
            x_b, log_grad = rq.inverse(self._spline_params(params, y_a), y_b, self.tail_bound)
            return jnp.concatenate([y_a, x_b], axis=-1), sum_except_batch(log_grad)
        shift, log_scale = self._shift_and_log_scale(params, y_a)
        if log_scale is None:
            return jnp.concatenate([y_a, y_b - shift], axis=-1), jnp.zeros(y.shape[:1], y.dtype)
        x_b = affine_inverse(shift, log_scale, y_b)
        return jnp.concatenate([y_a, x_b], axis=-1), -sum_except_batch(log_scale)
