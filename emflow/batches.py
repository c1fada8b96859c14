"""Passes over a data set in batches of one compiled shape."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from emflow import checks
from emflow.bijectors.base import Array


def map_batches(fn, params, data, key: Array, batch_size: int):
    """``fn(params, batch, key_i)`` over ``data`` in batches of ``batch_size``, outputs concatenated.

    ``data``: an ``(N, ...)`` array, or a pytree of arrays that share the leading axis N (then
    ``batch`` is the same pytree of ``(batch_size, ...)`` slices, e.g. ``(raw, rows)``). Batch
    ``i`` gets ``fold_in(key, i)``. The last batch is padded to the compiled shape with copies of
    its first row, and the padded rows are dropped from the outputs (each a pytree of
    ``(batch, ...)`` arrays, concatenated to ``(N, ...)``).
    """
    checks.integer("map_batches", "batch_size", batch_size, 1)
    checks.callable_("map_batches", "fn", fn, "a function (params, batch, key) -> outputs")
    leaves = jax.tree.leaves(data)
    if not leaves or any(np.ndim(a) < 1 or np.shape(a)[0] != np.shape(leaves[0])[0] for a in leaves):
        raise ValueError(f"map_batches: data must be an (N, ...) array or a pytree of arrays sharing the leading "
                         f"axis N, got leading shapes {[np.shape(a)[:1] for a in leaves]}")
    n = leaves[0].shape[0]
    outputs = []
    for i, start in enumerate(range(0, n, batch_size)):
        chunk = jax.tree.map(lambda a, start=start: a[start: start + batch_size], data)
        size = min(batch_size, n - start)
        if size < batch_size:
            chunk = jax.tree.map(lambda a, size=size: jnp.concatenate([a, jnp.repeat(a[:1], batch_size - size, axis=0)]),
                                 chunk)
        out = fn(params, chunk, jax.random.fold_in(key, i))
        outputs.append(jax.tree.map(lambda a, size=size: a[:size], out))
    return jax.tree.map(lambda *parts: jnp.concatenate(parts), *outputs)
