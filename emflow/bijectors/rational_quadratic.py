"""Monotonic rational-quadratic splines with identity tails (Durkan et al., Neural Spline Flows, 2019).

On ``[-B, B]`` (``B = tail_bound``) the map is a spline of ``K`` bins: bin ``k`` runs from
knot ``(x_k, y_k)`` to ``(x_{k+1}, y_{k+1})`` with widths ``w_k``, heights ``h_k``, slope
``s_k = h_k / w_k`` and derivatives ``d_k`` at the knots. With ``xi = (x - x_k) / w_k``,

    y = y_k + h_k (s_k xi^2 + d_k xi (1 - xi)) / (s_k + (d_{k+1} + d_k - 2 s_k) xi (1 - xi))
    dy/dx = s_k^2 (d_{k+1} xi^2 + 2 s_k xi (1 - xi) + d_k (1 - xi)^2)
            / (s_k + (d_{k+1} + d_k - 2 s_k) xi (1 - xi))^2

and the inverse solves that quadratic in ``xi``. Outside ``[-B, B]`` the map is exactly the
identity (log-det 0), and the boundary derivatives are 1, so the whole map is continuously
differentiable and strictly increasing on the real line.

The unconstrained parameters of one scalar map are ``K`` width logits, ``K`` height logits and
``K - 1`` interior derivative logits (``3K - 1`` numbers, last axis): widths and heights are
``min + (1 - K min) softmax(.)`` of ``2B`` (``min = 1e-3``, as in the paper's code), derivatives
``min + softplus(. + log(e - 1))``, so all-zero logits give the identity.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from emflow.bijectors.base import Array

MIN_BIN_SIZE = 1e-3          # smallest bin width and height, as a fraction of 2B (Neural Spline Flows' default)
MIN_DERIVATIVE = 1e-3        # smallest knot derivative
_IDENTITY_SHIFT = math.log(math.expm1(1.0 - MIN_DERIVATIVE))  # MIN_DERIVATIVE + softplus(0 + shift) = 1


def num_params(num_bins: int) -> int:
    """Unconstrained parameters of one scalar spline of ``num_bins`` bins: ``3 * num_bins - 1``."""
    return 3 * num_bins - 1


def check_settings(owner: str, num_bins, tail_bound) -> None:
    """Refuse a spline that cannot work: ``num_bins`` an integer >= 2, ``tail_bound`` a finite number > 0."""
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2:
        raise ValueError(f"{owner}: spline_bins must be an integer >= 2, got {num_bins!r}")
    if isinstance(tail_bound, bool) or not isinstance(tail_bound, (int, float)) or not (
            math.isfinite(tail_bound) and tail_bound > 0):
        raise ValueError(f"{owner}: tail_bound must be a finite number > 0, got {tail_bound!r}")


def _knots(logits: Array, tail_bound: float) -> tuple[Array, Array]:
    """Bin sizes ``(..., K)`` and knot positions ``(..., K + 1)`` from -B to B of ``logits: (..., K)``."""
    num_bins = logits.shape[-1]
    sizes = MIN_BIN_SIZE + (1.0 - MIN_BIN_SIZE * num_bins) * jax.nn.softmax(logits, axis=-1)
    edges = jnp.concatenate([jnp.zeros_like(sizes[..., :1]), jnp.cumsum(sizes, axis=-1)], axis=-1)
    edges = 2.0 * tail_bound * edges - tail_bound
    edges = edges.at[..., -1].set(tail_bound)   # the cumulative sum may round off B
    return 2.0 * tail_bound * sizes, edges


def _unpack(params: Array, tail_bound: float):
    """Knots and derivatives of ``params: (..., 3K - 1)``: x and y edges ``(..., K + 1)``, derivatives ``(..., K + 1)``."""
    num_bins = (params.shape[-1] + 1) // 3
    _, x_edges = _knots(params[..., :num_bins], tail_bound)
    _, y_edges = _knots(params[..., num_bins:2 * num_bins], tail_bound)
    inner = MIN_DERIVATIVE + jax.nn.softplus(params[..., 2 * num_bins:] + _IDENTITY_SHIFT)
    ones = jnp.ones_like(inner[..., :1])
    return x_edges, y_edges, jnp.concatenate([ones, inner, ones], axis=-1)


def _bin_of(edges: Array, value: Array) -> Array:
    """Index ``(...)`` of the bin of ``edges: (..., K + 1)`` that holds ``value: (...)`` (clamped to 0..K-1)."""
    num_bins = edges.shape[-1] - 1
    index = jnp.sum(value[..., None] >= edges[..., 1:-1], axis=-1)
    return jnp.clip(index, 0, num_bins - 1)


def _at(array: Array, index: Array) -> Array:
    return jnp.take_along_axis(array, index[..., None], axis=-1)[..., 0]


def _bin_terms(x_edges, y_edges, derivatives, index):
    x_k, y_k = _at(x_edges, index), _at(y_edges, index)
    w_k = _at(x_edges, index + 1) - x_k
    h_k = _at(y_edges, index + 1) - y_k
    return x_k, y_k, w_k, h_k, _at(derivatives, index), _at(derivatives, index + 1)


def _log_slope(xi: Array, s_k: Array, d_k: Array, d_k1: Array) -> Array:
    """``log dy/dx`` at the position ``xi`` in a bin of slope ``s_k`` and knot derivatives ``d_k``, ``d_k1``."""
    xi_1m = xi * (1.0 - xi)
    numerator = d_k1 * xi ** 2 + 2.0 * s_k * xi_1m + d_k * (1.0 - xi) ** 2
    return 2.0 * jnp.log(s_k) + jnp.log(numerator) - 2.0 * jnp.log(s_k + (d_k1 + d_k - 2.0 * s_k) * xi_1m)


def forward(params: Array, x: Array, tail_bound: float) -> tuple[Array, Array]:
    """``x: (...)`` and ``params: (..., 3K - 1)`` -> ``(y: (...), log dy/dx: (...))``, element-wise."""
    inside = jnp.abs(x) <= tail_bound
    x_in = jnp.clip(x, -tail_bound, tail_bound)   # the outside values take the identity branch below
    x_edges, y_edges, derivatives = _unpack(params, tail_bound)
    x_k, y_k, w_k, h_k, d_k, d_k1 = _bin_terms(x_edges, y_edges, derivatives, _bin_of(x_edges, x_in))
    s_k = h_k / w_k
    xi = (x_in - x_k) / w_k
    xi_1m = xi * (1.0 - xi)
    y = y_k + h_k * (s_k * xi ** 2 + d_k * xi_1m) / (s_k + (d_k1 + d_k - 2.0 * s_k) * xi_1m)
    return jnp.where(inside, y, x), jnp.where(inside, _log_slope(xi, s_k, d_k, d_k1), 0.0)


def inverse(params: Array, y: Array, tail_bound: float) -> tuple[Array, Array]:
    """``y: (...)`` and ``params: (..., 3K - 1)`` -> ``(x: (...), log dx/dy: (...))``, element-wise."""
    inside = jnp.abs(y) <= tail_bound
    y_in = jnp.clip(y, -tail_bound, tail_bound)
    x_edges, y_edges, derivatives = _unpack(params, tail_bound)
    x_k, y_k, w_k, h_k, d_k, d_k1 = _bin_terms(x_edges, y_edges, derivatives, _bin_of(y_edges, y_in))
    s_k = h_k / w_k
    dy = y_in - y_k
    curvature = d_k1 + d_k - 2.0 * s_k
    a = h_k * (s_k - d_k) + dy * curvature
    b = h_k * d_k - dy * curvature
    c = -s_k * dy
    xi = 2.0 * c / (-b - jnp.sqrt(jnp.maximum(b ** 2 - 4.0 * a * c, 0.0)))
    return jnp.where(inside, x_k + xi * w_k, y), jnp.where(inside, -_log_slope(xi, s_k, d_k, d_k1), 0.0)
