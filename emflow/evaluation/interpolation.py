"""Latent interpolation between real images (the paper's Fig. 7), as pure functions::

    images = interpolate_genmm(model, params, x1, x2, ts, key, generator="argmax")   # (T, B, *event_shape)
    images = interpolate_latmm(model, params, x1, x2, ts)                           # (T, B, *event_shape)

``x1, x2: (B, *event_shape)`` are pairs of model inputs (dequantized images); ``ts: (T,)``
in [0, 1] are the steps: the latent of step t is ``(1 - t) z1 + t z2`` (every part of the
multi-scale latent alike), so t = 0 decodes ``x1`` and t = 1 decodes ``x2``.

GenMM: ``z_i = f_{k_i}(x_i)`` with ``k_i = argmax_k gamma_k(x_i)``, the generator that explains
``x_i`` best. The generator that decodes step t:
- ``"argmax"`` (Fig. 7a): ``k_1`` for ``t < 0.5``, ``k_2`` for ``t >= 0.5`` (the nearer end's);
- ``"prior"`` (Fig. 7b): drawn from pi, independently for every image and step.
LatMM (Fig. 7c): one flow, ``z_i = f(x_i)``, decoded by the same flow.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from emflow.bijectors.base import Array
from emflow.flows.latent import Latent
from emflow.mixtures.mixture import sample_components


def _mix(z1: Latent, z2: Latent, t: Array) -> Latent:
    return jax.tree.map(lambda a, b: (1.0 - t) * a + t * b, z1, z2)


def _check_pairs(model, x1: Array, x2: Array, ts: Array, where: str) -> None:
    shape = (x1.shape[0], *model.event_shape)
    if x1.shape != shape or x2.shape != shape:
        raise ValueError(f"{where}: x1 and x2 must both have shape (B, *event_shape) = {shape}, got "
                         f"{x1.shape} and {x2.shape}")
    if ts.ndim != 1:
        raise ValueError(f"{where}: ts must be a 1-D array of steps in [0, 1], got shape {ts.shape}")


def genmm_latents(model, params: dict, x: Array) -> tuple[Latent, Array]:
    """``(z, k)``: each image's latent under its argmax-gamma generator, and that generator ``(B,)``."""
    k = jnp.argmax(model.component_log_prob(params, x), axis=1)
    y, _ = model.trunk_forward(params, x)  # a trunk's output (x itself without one)
    all_z = model.map_generators(lambda p: model.flow.forward(p, y)[0], params["flows"])  # leaves (K, B, ...)
    z = jax.tree.map(lambda a: a[k, jnp.arange(x.shape[0])], all_z)
    return z, k


def interpolate_genmm(model, params: dict, x1: Array, x2: Array, ts: Array, key: Array | None = None,
                      generator: str = "argmax") -> Array:
    """Images along the latent line between ``x1`` and ``x2``: ``(T, B, *event_shape)`` (see the module docstring)."""
    ts = jnp.asarray(ts, jnp.float32)
    _check_pairs(model, x1, x2, ts, "interpolate_genmm")
    if generator not in ("argmax", "prior"):
        raise ValueError(f"interpolate_genmm: generator must be 'argmax' or 'prior', got {generator!r}")
    if generator == "prior" and key is None:
        raise ValueError("interpolate_genmm: generator='prior' draws generators from pi and needs a key")
    (z1, k1), (z2, k2) = genmm_latents(model, params, x1), genmm_latents(model, params, x2)
    b, steps = x1.shape[0], ts.shape[0]
    latents = jax.vmap(lambda t: _mix(z1, z2, t))(ts)  # leaves (T, B, ...)
    if generator == "argmax":
        which = jnp.where(ts[:, None] < 0.5, k1[None, :], k2[None, :])  # (T, B)
    else:
        which = sample_components(key, params["log_pi"], steps * b).reshape(steps, b)
    flat = jax.tree.map(lambda a: a.reshape(steps * b, *a.shape[2:]), latents)
    decoded = model.map_generators(lambda p: model.flow.inverse(p, flat)[0], params["flows"])  # (K, T*B, ...)
    images = model.trunk_inverse(params, decoded[which.reshape(-1), jnp.arange(steps * b)])
    return images.reshape(steps, b, *model.event_shape)


def interpolate_latmm(model, params: dict, x1: Array, x2: Array, ts: Array) -> Array:
    """Images along the latent line of LatMM's one flow: ``(T, B, *event_shape)``."""
    ts = jnp.asarray(ts, jnp.float32)
    _check_pairs(model, x1, x2, ts, "interpolate_latmm")
    z1, _ = model.flow.forward(params["flow"], x1)
    z2, _ = model.flow.forward(params["flow"], x2)
    steps, b = ts.shape[0], x1.shape[0]
    latents = jax.vmap(lambda t: _mix(z1, z2, t))(ts)
    flat = jax.tree.map(lambda a: a.reshape(steps * b, *a.shape[2:]), latents)
    return model.flow.inverse(params["flow"], flat)[0].reshape(steps, b, *model.event_shape)
