"""Masked autoregressive layers (MAF: Papamakarios, Pavlakou and Murray, 2017) on vectors.

``y_i = tau(x_i; theta_i(x_1, ..., x_{i-1}))`` for ``i = 1..D``: each feature goes through its own
element-wise map ``tau`` whose parameters a MADE network (Germain et al., 2015) computes from the
features before it, so the Jacobian ``dy/dx`` is lower-triangular and

    log|det dy/dx| = sum_i log tau'(x_i; theta_i).

``forward`` (the density direction, data to latent) is one pass of the network; ``inverse`` solves
for ``x_1, x_2, ...`` in turn, one pass per feature (``D`` passes). ``tau`` is

- ``"affine"``: ``(x_i + t_i) * sigmoid(h_i + 2)``, as in ``Coupling``'s affine kind;
- ``"spline"``: a rational-quadratic spline of ``spline_bins`` bins on ``[-tail_bound, tail_bound]``,
  the identity outside (``rational_quadratic``).

MADE: dense layers whose weights are multiplied by fixed 0/1 masks. Input ``j`` has degree ``j``
(1..D), hidden unit ``k`` degree ``1 + k mod (D - 1)``; a hidden unit sees the units of the layer
below whose degree is at most its own, and the outputs of feature ``i`` see the hidden units of
degree below ``i``. The output layer starts at zero, so a fresh spline layer is the identity and a
fresh affine one scales by ``sigmoid(2)``.
"""
from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from emflow import checks
from emflow.bijectors import rational_quadratic as rq
from emflow.bijectors.base import Array, check_batch
from emflow.bijectors.coupling import SCALE_OFFSET, affine_forward, affine_inverse

AutoregressiveKind = Literal["affine", "spline"]
_he_normal = jax.nn.initializers.he_normal()


def made_masks(num_features: int, hidden: int, num_hidden_layers: int, outputs_per_feature: int) -> list[np.ndarray]:
    """The 0/1 masks of a MADE network, input to output: ``(D, H)``, ``num_hidden_layers - 1`` of ``(H, H)``,
    and ``(H, D * P)`` with ``P = outputs_per_feature``, whose columns ``i * P`` to ``(i + 1) * P - 1`` belong
    to feature ``i``."""
    in_degrees = np.arange(1, num_features + 1)
    hidden_degrees = 1 + np.arange(hidden) % max(num_features - 1, 1)
    out_degrees = np.repeat(in_degrees, outputs_per_feature)
    masks = [(in_degrees[:, None] <= hidden_degrees[None, :])]
    masks += [(hidden_degrees[:, None] <= hidden_degrees[None, :])] * (num_hidden_layers - 1)
    masks.append(hidden_degrees[:, None] < out_degrees[None, :])
    return [m.astype(np.float32) for m in masks]


@dataclasses.dataclass(frozen=True)
class MaskedAutoregressive:
    """An autoregressive element-wise map of ``(B, D)`` whose parameters a MADE network gives.

    Attributes:
      event_shape: ``(D,)``, D >= 1.
      kind: ``"affine"`` or ``"spline"``.
      hidden: width of the MADE's hidden layers.
      num_hidden_layers: how many hidden layers (>= 1).
      spline_bins, tail_bound: a spline's bins (>= 2) and interval ``[-tail_bound, tail_bound]``.

    Params: ``{"hidden": [{"kernel", "bias"}, ...], "out": {"kernel", "bias"}}`` (the masks are not
    parameters: they follow from the configuration).
    """

    event_shape: tuple[int]
    kind: AutoregressiveKind = "spline"
    hidden: int = 64
    num_hidden_layers: int = 1
    spline_bins: int = 8
    tail_bound: float = 4.0

    def __post_init__(self):
        object.__setattr__(self, "event_shape", checks.event_shape("MaskedAutoregressive", "event_shape",
                                                                   self.event_shape, 1))
        checks.integer("MaskedAutoregressive", "hidden", self.hidden, 1)
        checks.integer("MaskedAutoregressive", "num_hidden_layers", self.num_hidden_layers, 1)
        if self.kind not in ("affine", "spline"):
            raise ValueError(f"MaskedAutoregressive: kind must be 'affine' or 'spline', got {self.kind!r}")
        if self.kind == "spline":
            rq.check_settings("MaskedAutoregressive", self.spline_bins, self.tail_bound)

    @property
    def outputs_per_feature(self) -> int:
        return 2 if self.kind == "affine" else rq.num_params(self.spline_bins)

    @property
    def _masks(self) -> list[np.ndarray]:
        return made_masks(self.event_shape[0], self.hidden, self.num_hidden_layers, self.outputs_per_feature)

    def init(self, key: Array, x: Array | None = None) -> dict:
        """He-normal hidden layers from ``key``, a zero output layer (``x``, if given, is only shape-checked)."""
        checks.key("MaskedAutoregressive.init", key)
        if x is not None:
            check_batch(x, self.event_shape, "MaskedAutoregressive.init")
        masks = self._masks
        hidden = [{"kernel": _he_normal(k, m.shape), "bias": jnp.zeros((m.shape[1],))}
                  for k, m in zip(jax.random.split(key, len(masks) - 1), masks[:-1])]
        out = {"kernel": jnp.zeros(masks[-1].shape), "bias": jnp.zeros((masks[-1].shape[1],))}
        return {"hidden": hidden, "out": out}

    def _theta(self, params: dict, x: Array) -> Array:
        """The maps' parameters ``(B, D, outputs_per_feature)``; row ``i`` depends on ``x[:, :i]`` only."""
        masks = self._masks
        h = x
        for layer, mask in zip(params["hidden"], masks):
            h = jax.nn.relu(h @ (layer["kernel"] * mask) + layer["bias"])
        out = h @ (params["out"]["kernel"] * masks[-1]) + params["out"]["bias"]
        return out.reshape(x.shape[0], self.event_shape[0], self.outputs_per_feature)

    def _map(self, theta: Array, x: Array) -> tuple[Array, Array]:
        if self.kind == "spline":
            return rq.forward(theta, x, self.tail_bound)
        log_scale = jax.nn.log_sigmoid(theta[..., 1] + SCALE_OFFSET)
        return affine_forward(theta[..., 0], log_scale, x), log_scale

    def _unmap(self, theta: Array, y: Array) -> tuple[Array, Array]:
        if self.kind == "spline":
            return rq.inverse(theta, y, self.tail_bound)
        log_scale = jax.nn.log_sigmoid(theta[..., 1] + SCALE_OFFSET)
        return affine_inverse(theta[..., 0], log_scale, y), -log_scale

    def forward(self, params: dict, x: Array) -> tuple[Array, Array]:
        """``x: (B, D) -> (y: (B, D), log|det dy/dx|: (B,))``, one pass of the network."""
        check_batch(x, self.event_shape, "MaskedAutoregressive.forward")
        y, log_grad = self._map(self._theta(params, x), x)
        return y, jnp.sum(log_grad, axis=1)

    def inverse(self, params: dict, y: Array) -> tuple[Array, Array]:
        """``y: (B, D) -> (x: (B, D), log|det dx/dy|: (B,))``: D passes, pass ``i`` fixing ``x_i``."""
        check_batch(y, self.event_shape, "MaskedAutoregressive.inverse")

        def solve_next(_, x):
            return self._unmap(self._theta(params, x), y)[0]

        x = jax.lax.fori_loop(0, self.event_shape[0], solve_next, jnp.zeros_like(y))
        x, log_grad = self._unmap(self._theta(params, x), y)
        return x, jnp.sum(log_grad, axis=1)
