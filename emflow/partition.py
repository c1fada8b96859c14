"""k-means partitions of an init batch: how a mixture's components start apart.

EM from K identical components sits on a saddle point: every component gets the
same responsibilities and the same gradients, and the first asymmetry (noise)
decides which one takes everything. A partition of the init batch gives each
component its own part of the data to start from (``GenMM.init``,
``LatMM.init``) and, for a warm start, the first EM round's hard responsibilities
(``em.partition_e_step``, ``train.TrainConfig.warm_start_rounds``).

    part = kmeans(key, features, k)        # features: (B, F) -> Partition(centroids (K, F), labels (B,))
    labels = nearest(part.centroids, f)    # (N,) for any features f: (N, F)

k-means++ seeding (Arthur and Vassilvitskii 2007) then Lloyd iterations, all in
JAX: a pure function of ``(key, features)``, deterministic for a key and usable
under ``jit``. A cluster that loses every point during Lloyd keeps its previous
centroid (seeds are data points, so each part starts non-empty).
"""
from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from emflow.bijectors.base import Array

DEFAULT_ITERATIONS = 30


class Partition(NamedTuple):
    """``centroids: (K, F)`` and ``labels: (B,)`` int32, the part of each example of the batch it was fitted on."""

    centroids: Array
    labels: Array


def squared_distances(features: Array, centroids: Array) -> Array:
    """``||f_i - c_k||^2``: ``features (N, F)``, ``centroids (K, F)`` -> ``(N, K)``, at full float32 precision."""
    cross = jnp.matmul(features, centroids.T, precision=jax.lax.Precision.HIGHEST)
    d2 = jnp.sum(features**2, axis=1)[:, None] - 2.0 * cross + jnp.sum(centroids**2, axis=1)[None, :]
    return jnp.maximum(d2, 0.0)  # rounding can make a zero distance slightly negative


def nearest(centroids: Array, features: Array) -> Array:
    """The index of the nearest centroid of every row: ``(K, F), (N, F) -> (N,)`` int32."""
    return jnp.argmin(squared_distances(features, centroids), axis=1).astype(jnp.int32)


def balanced_assignment(d2: Array, num_stages: int = 24, iterations_per_stage: int = 40) -> Array:
    """Labels ``(N,)`` for costs ``d2: (N, K)`` with (nearly) equal part sizes ``N/K``: a balanced partition.

    Entropic optimal transport of the uniform distribution over the ``N`` rows onto ``K``
    equal parts: Sinkhorn iterations in log space on the costs scaled by their mean, with
    the temperature lowered geometrically from 1 to 1e-5 over ``num_stages`` stages
    (epsilon scaling, each stage warm-started from the last). Each row goes to its part of
    largest transport mass, ``argmax_k (g_k - d2_ik)``: the nearest-centroid partition with
    a per-part offset ``g``, moved at the parts' borders just enough to even the sizes out.
    """
    n, k = d2.shape
    cost = d2 / jnp.mean(d2)
    log_row, log_col = -jnp.log(n) * jnp.ones((n,)), jnp.full((k,), -jnp.log(k))

    def stage(s, g):  # g: the column potential in cost units
        t = 10.0 ** (-5.0 * s / (num_stages - 1))

        def sinkhorn(_, g):
            f = t * log_row - t * jax.nn.logsumexp((g[None, :] - cost) / t, axis=1)
            return t * log_col - t * jax.nn.logsumexp((f[:, None] - cost) / t, axis=0)

        return jax.lax.fori_loop(0, iterations_per_stage, sinkhorn, g)

    g = jax.lax.fori_loop(0, num_stages, stage, jnp.zeros((k,)))
    return jnp.argmax(g[None, :] - cost, axis=1).astype(jnp.int32)


def kmeans_plus_plus(key: Array, features: Array, k: int) -> Array:
    """``k`` seeds drawn from the rows of ``features: (B, F)``, each with probability proportional to D^2: ``(k, F)``."""
    keys = jax.random.split(key, k)
    b = features.shape[0]
    first = jax.random.randint(keys[0], (), 0, b)
    centroids = [features[first]]
    d2 = squared_distances(features, features[first][None])[:, 0]
    for i in range(1, k):
        # All rows equal (d2 == 0 everywhere): draw uniformly rather than from a 0/0 distribution.
        logits = jnp.where(jnp.sum(d2) > 0, jnp.log(d2), jnp.zeros_like(d2))
        pick = jax.random.categorical(keys[i], logits)
        centroids.append(features[pick])
        d2 = jnp.minimum(d2, squared_distances(features, features[pick][None])[:, 0])
    return jnp.stack(centroids)


def kmeans(key: Array, features: Array, k: int, num_iterations: int = DEFAULT_ITERATIONS) -> Partition:
    """k-means++ seeds, then ``num_iterations`` Lloyd steps on ``features: (B, F)`` -> ``Partition``.

    Raises:
      ValueError: fewer rows than parts, or features that are not a 2-D array.
    """
    if features.ndim != 2:
        raise ValueError(f"kmeans: features must have shape (batch, F), got {features.shape}")
    if features.shape[0] < k:
        raise ValueError(f"kmeans: cannot split {features.shape[0]} examples into K = {k} parts; "
                         f"give at least {k} examples")
    features = features.astype(jnp.float32)

    def lloyd(_, centroids):
        one_hot = jax.nn.one_hot(nearest(centroids, features), k, dtype=jnp.float32)  # (B, K)
        counts = jnp.sum(one_hot, axis=0)
        sums = jnp.matmul(one_hot.T, features, precision=jax.lax.Precision.HIGHEST)
        means = sums / jnp.where(counts > 0, counts, 1.0)[:, None]
        return jnp.where(counts[:, None] > 0, means, centroids)  # an emptied cluster keeps its centroid

    centroids = jax.lax.fori_loop(0, num_iterations, lloyd, kmeans_plus_plus(key, features, k))
    part = Partition(centroids, nearest(centroids, features))
    chex.assert_shape(part.centroids, (k, features.shape[1]))
    return part


def part_counts(labels: Array, k: int) -> Array:
    """Examples in each part: ``(B,) -> (K,)`` int32."""
    return jnp.sum(jax.nn.one_hot(labels, k, dtype=jnp.int32), axis=0)


def draw_from_parts(key: Array, labels: Array, k: int, size: int) -> Array:
    """For every part, ``size`` indices of its members: ``(K, size)`` int32.

    Each part's members in a random order, repeated as often as it takes to fill
    ``size``: every member appears ``floor(size / n_k)`` or ``ceil(size / n_k)`` times
    (exactly once when ``size == n_k``), so that a component's init batch has the
    statistics of its part up to that rounding, not of a with-replacement resample of it
    (the batch's mean and covariance become the part's, e.g. for ``Whitened``). Every
    component gets a batch of one static shape. A part with no member draws from the
    whole batch (the documented fallback: that component starts as the shared init
    would start it).
    """
    member = jax.nn.one_hot(labels, k, dtype=jnp.float32).T  # (K, B)
    empty = jnp.sum(member, axis=1, keepdims=True) == 0
    member = jnp.where(empty, 1.0, member) > 0
    count = jnp.sum(member, axis=1)                                              # (K,) >= 1

    def cycle(kk, in_part, n):
        order = jnp.argsort(jnp.where(in_part, jax.random.uniform(kk, in_part.shape), 2.0))  # members first
        return order[jnp.arange(size) % n]

    return jax.vmap(cycle)(jax.random.split(key, k), member, count).astype(jnp.int32)
