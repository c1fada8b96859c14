"""What Glow and VectorFlow share: a standard-normal latent on top of a bijection.

A flow maps ``x: (B, *event_shape)`` to a ``Latent`` with ``forward`` and back
with ``inverse``. With every latent part standard normal (a plain flow, or
one generator of a GenMM), ``log p(x) = log N(z; 0, I) + log|det dz/dx|``.
"""
from __future__ import annotations

from emflow import latent as latent_lib
from emflow.bijectors.base import Array


class StandardNormalFlow:
    """Mixin for flow dataclasses that define ``forward``, ``inverse`` and ``latent_shapes``."""

    def log_prob(self, params, x: Array) -> Array:
        """``log p(x)`` in nats with an N(0, I) latent: ``(B, *event_shape) -> (B,)``."""
        latent, log_det = self.forward(params, x)
        return latent_lib.standard_normal_log_prob(latent_lib.flatten(latent)) + log_det

    def sample(self, params, key: Array, n: int, temperature: float = 1.0) -> Array:
        """``n`` samples ``(n, *event_shape)``, latent drawn from N(0, temperature^2 I)."""
        x, _ = self.inverse(params, latent_lib.sample(key, self.latent_shapes, n, temperature))
        return x
