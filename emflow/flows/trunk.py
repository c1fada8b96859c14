"""A trunk: flow steps that every generator of a GenMM shares, in front of the K generators::

    y = t(x),    p_k(x) = N(f_k(y); 0, I) |det df_k/dy| |det dt/dx|

The trunk runs once per example, whatever K. Its parameters learn from every example
(their M-step gradient is ``sum_k gamma_ik`` of the generators' terms), the generators'
from their own responsibilities, so what all images share can be learned once instead of
K times, by generators that learn it at different speeds (the suspected cause of the drift
towards one generator; on MNIST the trunk improves the density but does not stop that drift,
docs/changelog.md).

    trunk = GlowTrunk((28, 28, 1), num_steps=2, hidden_channels=64, prefix=Logit((28, 28, 1)))
    model = GenMM(Glow((28, 28, 1), 2, 4, 64), num_components=3, trunk=trunk)
"""
from __future__ import annotations

import dataclasses
from typing import Any

import chex
import jax.numpy as jnp

from emflow import checks
from emflow.bijectors.base import Array, check_batch
from emflow.bijectors.conditioners import ConvImpl, check_conv_impl
from emflow.bijectors.coupling import CouplingKind
from emflow.bijectors.flow_step import FlowStep, LinearKind, Repeat
from emflow.bijectors.squeeze import Squeeze


@dataclasses.dataclass(frozen=True)
class GlowTrunk:
    """``num_steps`` Glow steps (ActNorm -> invertible 1x1 conv -> coupling) on the image squeezed once, then unsqueezed.

    A bijector ``(B, H, W, C) -> (B, H, W, C)`` with parameters; the output has the input's
    shape, so any generator that takes the image takes the trunk's output.

    Attributes:
      image_shape: ``(H, W, C)``, H and W even.
      num_steps: flow steps (>= 1).
      hidden_channels, coupling, linear, compute_dtype, conv_impl: as in ``Glow``.
      prefix: a parameter-free bijector applied first (e.g. ``Logit``; with a trunk it moves
        from the generators to here, so the trunk sees the logit-space image), or None.

    Params: the steps' params, stacked on a leading ``(num_steps,)`` axis (``Repeat``).
    """

    image_shape: tuple[int, int, int]
    num_steps: int = 2
    hidden_channels: int = 64
    coupling: CouplingKind = "affine"
    linear: LinearKind = "lu"
    compute_dtype: str = "float32"
    conv_impl: ConvImpl = "lax"
    prefix: Any = None

    def __post_init__(self):
        object.__setattr__(self, "image_shape",
                           checks.event_shape("GlowTrunk", "image_shape (H, W, C)", self.image_shape, 3))
        checks.integer("GlowTrunk", "num_steps", self.num_steps, 1)
        checks.integer("GlowTrunk", "hidden_channels", self.hidden_channels, 1)
        if self.prefix is not None:
            checks.bijector("GlowTrunk", self.prefix, "prefix")
        if self.prefix is not None and tuple(self.prefix.event_shape) != self.image_shape:
            raise ValueError(f"GlowTrunk: the prefix acts on {tuple(self.prefix.event_shape)}, the trunk on "
                             f"{self.image_shape}")
        check_conv_impl("GlowTrunk", self.conv_impl)
        _ = self._steps  # a bad configuration fails here

    @property
    def event_shape(self) -> tuple[int, int, int]:
        return self.image_shape

    @property
    def _squeeze(self) -> Squeeze:
        return Squeeze(self.image_shape)

    @property
    def _steps(self) -> Repeat:
        step = FlowStep(self._squeeze.output_shape, self.coupling, self.hidden_channels, self.linear,
                        compute_dtype=self.compute_dtype, conv_impl=self.conv_impl)
        return Repeat(step, self.num_steps)

    def _prefix(self, x: Array) -> tuple[Array, Array]:
        """``(prefix(x), its log-det: (B,))``; ``(x, 0)`` without a prefix."""
        return (x, jnp.zeros(x.shape[:1], x.dtype)) if self.prefix is None else self.prefix.forward({}, x)

    def init(self, key: Array, x: Array) -> dict:
        """Random rotations and conditioners from ``key``; ActNorm statistics from ``x: (B, H, W, C)``."""
        check_batch(x, self.image_shape, "GlowTrunk.init")
        y, _ = self._squeeze.forward({}, self._prefix(x)[0])
        return self._steps.init(key, y)

    def forward(self, params: dict, x: Array) -> tuple[Array, Array]:
        """``x: (B, H, W, C) -> (y: (B, H, W, C), log|det dy/dx|: (B,))``."""
        check_batch(x, self.image_shape, "GlowTrunk.forward")
        x, log_det_prefix = self._prefix(x)
        y, _ = self._squeeze.forward({}, x)
        y, log_det = self._steps.forward(params, y)
        y, _ = self._squeeze.inverse({}, y)
        chex.assert_shape(log_det, (x.shape[0],))
        return y, log_det + log_det_prefix

    def inverse(self, params: dict, y: Array) -> tuple[Array, Array]:
        """``y: (B, H, W, C) -> (x: (B, H, W, C), log|det dx/dy|: (B,))``."""
        check_batch(y, self.image_shape, "GlowTrunk.inverse")
        x, _ = self._squeeze.forward({}, y)
        x, log_det = self._steps.inverse(params, x)
        x, _ = self._squeeze.inverse({}, x)
        if self.prefix is not None:
            x, log_det_prefix = self.prefix.inverse({}, x)
            log_det = log_det + log_det_prefix
        return x, log_det
