"""What Glow and the vector flows share: a standard-normal latent on top of a bijection.

A flow maps ``x: (B, *event_shape)`` to a ``Latent`` with ``forward`` and back
with ``inverse``. With every latent part standard normal (a plain flow, or
one generator of a GenMM), ``log p(x) = log N(z; 0, I) + log|det dz/dx|``.
``Prefixed(prefix, flow)`` puts a fixed bijector (e.g. ``Logit``) in front of one;
``Whitened(flow)`` ends one with a trainable whitening layer fitted at init.
``StackedVectorFlow`` is what ``VectorFlow`` and ``AutoregressiveFlow`` share: a ``Repeat`` of steps on
``(B, D)``.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from emflow import checks
from emflow.flows import latent as latent_lib
from emflow.bijectors.base import Array, check_batch
from emflow.bijectors.whiten import Whiten


class StandardNormalFlow:
    """Mixin for flow dataclasses that define ``forward``, ``inverse`` and ``latent_shapes``.

    ``component_axis_on_cpu``: how a ``GenMM`` of this flow maps over its generators on a CPU when
    not told (``"unrolled"``: convolutions under ``vmap`` become slow grouped ones there).
    """

    component_axis_on_cpu = "unrolled"

    def log_prob(self, params, x: Array) -> Array:
        """``log p(x)`` in nats with an N(0, I) latent: ``(B, *event_shape) -> (B,)``."""
        checks.params_fit(f"{type(self).__name__}.log_prob", self, params)
        latent, log_det = self.forward(params, x)
        return latent_lib.standard_normal_log_prob(latent_lib.flatten(latent)) + log_det

    def sample(self, params, key: Array, n: int, temperature: float = 1.0) -> Array:
        """``n`` samples ``(n, *event_shape)``, latent drawn from N(0, temperature^2 I)."""
        checks.params_fit(f"{type(self).__name__}.sample", self, params)
        x, _ = self.inverse(params, latent_lib.sample(key, self.latent_shapes, n, temperature, f"{type(self).__name__}.sample"))
        return x


class StackedVectorFlow(StandardNormalFlow):
    """Mixin for a flow dataclass of ``num_features`` features whose ``_steps`` (a ``Repeat``) is the whole bijection.

    ``x: (B, D) -> Latent(top=(B, D), splits=())``; params ``{"steps": <the steps' params, stacked>}``. A GenMM of
    such flows maps over its generators with ``vmap`` on a CPU too (no convolutions: ``vmap`` compiles faster than
    an unrolled loop).
    """

    component_axis_on_cpu = "vmap"

    @property
    def event_shape(self) -> tuple[int]:
        return (self.num_features,)

    @property
    def num_dims(self) -> int:
        return self.num_features

    @property
    def latent_shapes(self) -> latent_lib.Latent:
        return latent_lib.Latent(self.event_shape, ())

    def init(self, key: Array, x: Array) -> dict:
        """Random layers from ``key``; data-dependent statistics (ActNorm) from ``x: (B, D)``."""
        where = f"{type(self).__name__}.init"
        checks.key(where, key)
        check_batch(x, self.event_shape, where)
        return {"steps": self._steps.init(key, x)}

    def forward(self, params: dict, x: Array) -> tuple[latent_lib.Latent, Array]:
        """``x: (B, D) -> (Latent(top=(B, D)), log|det dz/dx|: (B,))``."""
        check_batch(x, self.event_shape, f"{type(self).__name__}.forward")
        z, log_det = self._steps.forward(params["steps"], x)
        return latent_lib.Latent(z, ()), log_det

    def inverse(self, params: dict, latent: latent_lib.Latent) -> tuple[Array, Array]:
        """``Latent(top=(B, D)) -> (x: (B, D), log|det dx/dz|: (B,))``."""
        where = f"{type(self).__name__}.inverse"
        latent_lib.check_latent(latent, where)
        check_batch(latent.top, self.event_shape, where)
        if latent.splits:
            raise ValueError(f"{where}: expected no split-off parts, got {len(latent.splits)}")
        return self._steps.inverse(params["steps"], latent.top)


class WrapsFlow(StandardNormalFlow):
    """Mixin for a flow built around an inner ``self.flow``: its event and latent shapes are the inner one's."""

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self.flow.event_shape

    @property
    def latent_shapes(self):
        return self.flow.latent_shapes

    @property
    def num_dims(self) -> int:
        return self.flow.num_dims

    @property
    def component_axis_on_cpu(self) -> str:
        return self.flow.component_axis_on_cpu


@dataclasses.dataclass(frozen=True)
class Prefixed(WrapsFlow):
    """A fixed bijector applied in front of a flow: ``x -> prefix -> flow -> Latent``.

    ``log p(x) = log N(z; 0, I) + log|det d flow/dy| + log|det d prefix/dx|``, so the
    density is on the prefix's domain (e.g. ``[0, 1]^N`` for ``Logit``); samples map
    back through ``prefix.inverse``. Any ``GenMM`` or ``LatMM`` takes it where it takes
    a ``Glow``:

        flow = Prefixed(Logit((28, 28, 1)), Glow((28, 28, 1), 2, 4, 64))

    Attributes:
      prefix: a parameter-free bijector (``init`` returns ``{}``) of the flow's event shape.
      flow: a ``Glow`` or ``VectorFlow``; its data-dependent init sees the prefixed batch.

    Params: the inner flow's params, unchanged (the prefix has none).
    """

    prefix: Any
    flow: Any

    def __post_init__(self):
        checks.bijector("Prefixed", self.prefix, "prefix")
        checks.flow("Prefixed", self.flow)
        if tuple(self.prefix.event_shape) != tuple(self.flow.event_shape):
            raise ValueError(
                f"Prefixed: the prefix acts on {tuple(self.prefix.event_shape)} but the flow on "
                f"{tuple(self.flow.event_shape)}"
            )

    def init(self, key: Array, x: Array):
        """The inner flow's init on ``prefix(x)``: ``x: (B, *event_shape)``."""
        y, _ = self.prefix.forward({}, x)
        return self.flow.init(key, y)

    def forward(self, params, x: Array):
        """``x: (B, *event_shape) -> (Latent, log|det dz/dx|: (B,))``."""
        y, log_det_prefix = self.prefix.forward({}, x)
        latent, log_det = self.flow.forward(params, y)
        return latent, log_det + log_det_prefix

    def inverse(self, params, latent):
        """``Latent -> (x: (B, *event_shape), log|det dx/dz|: (B,))``."""
        y, log_det = self.flow.inverse(params, latent)
        x, log_det_prefix = self.prefix.inverse({}, y)
        return x, log_det + log_det_prefix


@dataclasses.dataclass(frozen=True)
class Whitened(WrapsFlow):
    """A flow followed by a trainable whitening layer: ``x -> flow -> Whiten -> z``, N(0, I) on ``z``.

    Equivalently, the flow with a full-covariance Gaussian latent ``N(m, S)``, ``S = (T^T T)^{-1}``,
    learned with it. At init, ``Whiten`` is fitted to the flow's outputs of the init batch
    (mean, and the Cholesky factor of their covariance plus ``reg * I``), and nothing
    data-dependent comes after it. A fresh ``VectorFlow`` or ``Glow`` is an affine map
    ``y = A x + b`` (ActNorm, rotations, zero-initialised couplings), so the whitened flow
    starts as the Gaussian ``N(x; mean, cov + reg * A^{-1} A^{-T})`` of the batch: exactly
    its maximum-likelihood Gaussian for ``reg = 0``, regularised in the flow's standardized
    coordinates otherwise. ``MixtureClassifier`` uses it so that every class (and, with a
    partition init, every generator of a class) starts at its own fitted Gaussian.

    Attributes:
      flow: a ``Glow`` or ``VectorFlow`` (its event is whitened flattened: meant for small events).
      reg: ``Whiten``'s regulariser, added to the covariance of the flow's outputs at init.

    Params: ``{"flow": <the flow's params>, "whiten": <Whiten's params>}``.
    """

    flow: Any
    reg: float = 1e-3

    def __post_init__(self):
        checks.flow("Whitened", self.flow)
        if self.flow.latent_shapes.splits:
            raise ValueError("Whitened: the flow must have a single latent (a VectorFlow or a one-level Glow); "
                             f"this one splits off {len(self.flow.latent_shapes.splits)} part(s)")
        _ = self._whiten  # checks reg

    @property
    def _whiten(self) -> Whiten:
        return Whiten(tuple(self.flow.latent_shapes.top), self.reg)

    def init(self, key: Array, x: Array) -> dict:
        """The flow on ``x: (B, *event_shape)``, then ``Whiten`` on the flow's outputs."""
        flow = self.flow.init(key, x)
        latent, _ = self.flow.forward(flow, x)
        return {"flow": flow, "whiten": self._whiten.init(None, latent.top)}

    def forward(self, params: dict, x: Array):
        """``x: (B, *event_shape) -> (Latent, log|det dz/dx|: (B,))``."""
        latent, log_det = self.flow.forward(params["flow"], x)
        z, log_det_whiten = self._whiten.forward(params["whiten"], latent.top)
        return latent_lib.Latent(z, ()), log_det + log_det_whiten

    def inverse(self, params: dict, latent):
        """``Latent -> (x: (B, *event_shape), log|det dx/dz|: (B,))``."""
        y, log_det_whiten = self._whiten.inverse(params["whiten"], latent.top)
        x, log_det = self.flow.inverse(params["flow"], latent_lib.Latent(y, ()))
        return x, log_det + log_det_whiten
