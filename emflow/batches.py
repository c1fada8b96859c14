"""Passes over a data set in batches of one compiled shape."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from emflow.bijectors.base import Array


def map_batches(fn, params, data: Array, key: Array, batch_size: int):
    """``fn(params, raw_batch, key_i)`` over ``data: (N, ...)`` in batches of ``batch_size``, outputs concatenated.

    Batch ``i`` gets ``fold_in(key, i)``. The last batch is padded to the compiled shape with
    copies of its first row, and the padded rows are dropped from the outputs (each a pytree
    of ``(batch, ...)`` arrays, concatenated to ``(N, ...)``).
    """
    n = data.shape[0]
    outputs = []
    for i, start in enumerate(range(0, n, batch_size)):
        chunk = data[start: start + batch_size]
        size = chunk.shape[0]
        if size < batch_size:
            chunk = jnp.concatenate([chunk, jnp.repeat(chunk[:1], batch_size - size, axis=0)])
        out = fn(params, chunk, jax.random.fold_in(key, i))
        outputs.append(jax.tree.map(lambda a, size=size: a[:size], out))
    return jax.tree.map(lambda *parts: jnp.concatenate(parts), *outputs)
