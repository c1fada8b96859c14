"""A GenMM start from K identical copies of one flow, with the k-means partition for the warm start.

    params, part = copies.init_copies(model, key, x)        # model: a GenMM with init_strategy="partition"

The generators then differ only by what the warm start's parts teach them. Measured on MNIST (the
research log): after the warm round their exact posterior is spread, and exact EM then still drifts
towards one generator, so the core's ``GenMM.init`` does not offer it.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from emflow.bijectors.base import Array
from emflow.mixtures.genmm import GenMM


def init_copies(model: GenMM, key: Array, x: Array, centroids: Array | None = None):
    """``(params, partition)``: every generator the one flow initialised on ``x: (B, *event_shape)``, pi uniform,
    and the partition ``model.init_with_partition`` would give for ``key`` (the same k-means, or ``centroids``)."""
    if not isinstance(model, GenMM) or not model.partitions_input:
        raise ValueError(f"init_copies: expected a GenMM that partitions its input (init_strategy='partition'), "
                         f"got {model!r}")
    params, part = model.init_with_partition(key, x, centroids)
    y = x if model.trunk is None else model.trunk.forward(params["trunk"], x)[0]
    one = model.flow.init(jax.random.split(key, 3)[2], y)
    flows = jax.tree.map(lambda a: jnp.broadcast_to(a, (model.num_components,) + a.shape), one)
    return {**params, "flows": flows}, part
