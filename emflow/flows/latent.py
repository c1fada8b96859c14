"""The latent of a flow: the top-level part and the parts split off on the way.

``Latent(top, splits)`` is a pytree. ``top: (B, *top_shape)`` is the part a
latent prior acts on (standard normal for a plain flow or GenMM, a Gaussian
mixture for LatMM); each ``splits[i]: (B, *split_shape_i)`` was factored out
by a multi-scale split and is standard normal by construction. Together they
hold exactly ``N`` numbers for an ``N``-dimensional input.
"""
from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from emflow import checks

Array = jax.Array
LOG_2PI = math.log(2.0 * math.pi)


class Latent(NamedTuple):
    """``top: (B, *top_shape)``; ``splits``: tuple of ``(B, *split_shape_i)``."""

    top: Array
    splits: tuple = ()


def standard_normal_log_prob(x: Array) -> Array:
    """``log N(x; 0, I)`` summed over all but the batch axis: ``(B, ...) -> (B,)``."""
    if not hasattr(x, "reshape") or jnp.ndim(x) < 1:
        raise ValueError(f"standard_normal_log_prob: x must be an array (B, ...), got {type(x).__name__} of shape "
                         f"{jnp.shape(x) if hasattr(x, 'shape') else None}")
    x = x.reshape(x.shape[0], -1)
    return -0.5 * jnp.sum(x * x, axis=1) - 0.5 * x.shape[1] * LOG_2PI


def splits_log_prob(latent: Latent) -> Array:
    """Standard-normal log-density of the split-off parts, ``(B,)`` (zeros if none)."""
    check_latent(latent, "splits_log_prob")
    total = jnp.zeros(latent.top.shape[:1], latent.top.dtype)
    for part in latent.splits:
        total = total + standard_normal_log_prob(part)
    return total


def flatten(latent: Latent) -> Array:
    """All parts as one vector per example: ``(B, N)``, top first."""
    check_latent(latent, "flatten")
    b = latent.top.shape[0]
    return jnp.concatenate([p.reshape(b, -1) for p in (latent.top, *latent.splits)], axis=1)


def check_latent(latent, where: str) -> None:
    """Refuse anything but a ``Latent`` (``TypeError`` naming ``where``)."""
    checks.instance(where, "latent", latent, Latent, "an emflow.Latent(top, splits)")


def check_temperature(temperature, where: str = "sample") -> None:
    """Refuse a sampling temperature that is not a finite number >= 0 (``TypeError``/``ValueError`` naming it).

    A traced temperature (inside ``jit``) is not checked: its value is not known there.
    """
    scalar = isinstance(temperature, numbers.Real) or (isinstance(temperature, jax.Array) and temperature.ndim == 0)
    if isinstance(temperature, (bool, np.bool_)) or not scalar:
        raise TypeError(f"{where}: temperature must be a number >= 0, got {temperature!r} of type "
                        f"{type(temperature).__name__}")
    try:
        value = float(temperature)
    except jax.errors.ConcretizationTypeError:  # traced inside jit: its value is not known here
        return
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{where}: temperature must be a finite number >= 0, got {value}")


def sample(key: Array, shapes: Latent, n: int, temperature: float = 1.0, where: str = "sample") -> Latent:
    """Draw ``n`` standard-normal latents (scaled by ``temperature``, a finite number >= 0: 0 gives the
    latent's mode) of the given part shapes."""
    check_temperature(temperature, where)
    checks.integer(where, "n", n, 0)
    keys = jax.random.split(checks.key(where, key), 1 + len(shapes.splits))
    top = temperature * jax.random.normal(keys[0], (n, *shapes.top))
    splits = tuple(
        temperature * jax.random.normal(k, (n, *s)) for k, s in zip(keys[1:], shapes.splits)
    )
    return Latent(top, splits)
