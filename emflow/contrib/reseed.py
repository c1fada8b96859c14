"""Dead components re-seeded by split-and-merge (Ueda et al. 2000's split move), for a user's own loop.

After an EM round a component whose weight has fallen below ``threshold`` does
(almost) no work: exact EM will not bring it back, since it wins no example.
``dead_components`` names them; ``split_component`` re-seeds one by splitting
the most populated component: the dead component's parameters become a copy of
the source's, slightly perturbed, and the two share the source's weight.

    dead = dead_components(params["log_pi"], threshold=0.1 / K)       # [j, ...]
    params = split_component(model, params, source=m, target=j, key=key)

Only the component's own parameters are copied: GenMM's generator (row ``j`` of
every leaf of ``params["flows"]``), LatMM's latent Gaussian (``means[j]``,
``log_stds[j]``). ``split_optimizer_state`` copies the optimizer's moments the
same way, so that the copy continues as its source would. ``reseed_dead`` does all of it after an
EM round's update of a ``train.EMState``:

    state = train.em_update(state)
    state, reseeded = reseed_dead(model, state, key, threshold=0.1 / K)

Measured on MNIST (the research log): a re-seeded generator died again within a round or two, so
``fit`` does not re-seed; ``train.em_round_update`` only logs the dead components.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from emflow import checks
from emflow.bijectors.base import Array
from emflow.bijectors.linear import is_constant_leaf  # an LU layer's permutation and signs: copied, never perturbed
from emflow.mixtures.genmm import GenMM
from emflow.mixtures.mixture import check_index
from emflow.train import state as state_lib


def component_fields(model) -> tuple[str, ...]:
    """The top-level params entries whose every leaf has a leading ``(K,)`` component axis."""
    checks.mixture("component_fields", model)
    return ("flows",) if isinstance(model, GenMM) else ("means", "log_stds")


def dead_components(log_pi: Array, threshold: float) -> list[int]:
    """Components with ``pi_k < threshold``, in index order (``emflow.train.state.dead_components``)."""
    checks.number("dead_components", "threshold", threshold, 0.0)
    return state_lib.dead_components(log_pi, threshold)


def _copy_rows(tree, source: int, target: int, noise_key: Array | None = None, scale: float = 0.0):
    """Every leaf of ``tree`` with row ``target`` replaced by row ``source`` (+ N(0, scale^2) noise if a key is given)."""
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    keys = iter(jax.random.split(noise_key, max(len(leaves), 1))) if noise_key is not None else None

    def copy(path, leaf):
        row = leaf[source]
        if keys is not None:
            k = next(keys)
            if not is_constant_leaf(path) and jnp.issubdtype(leaf.dtype, jnp.floating):
                row = row + scale * jax.random.normal(k, row.shape, row.dtype)
        return leaf.at[target].set(row)

    return jax.tree_util.tree_map_with_path(copy, tree)


def split_component(model, params: dict, source: int, target: int, key: Array, scale: float = 1e-3) -> dict:
    """Re-seed component ``target`` as a perturbed copy of ``source``; both get ``(pi_source + pi_target) / 2``.

    The weights still sum to 1. ``scale``: std of the N(0, scale^2) noise added to the
    copy's trainable leaves (the source is unchanged), so the two can drift apart.
    """
    source = check_index(source, model.num_components, "split_component source")
    target = check_index(target, model.num_components, "split_component target")
    if source == target:
        raise ValueError(f"split_component: source and target must differ, got {source} twice")
    new = dict(params)
    for field in component_fields(model):
        new[field] = _copy_rows(params[field], source, target, key, scale)
    pi = jnp.exp(params["log_pi"])
    shared = jnp.log((pi[source] + pi[target]) / 2.0)
    new["log_pi"] = params["log_pi"].at[source].set(shared).at[target].set(shared)
    return new


def split_optimizer_state(model, opt_state, source: int, target: int):
    """The optimizer state with the target component's moments a copy of the source's (no noise).

    Every leaf of ``opt_state`` that sits under a component field (its path names
    ``['flows']``, or ``['means']`` / ``['log_stds']``, as optax's per-parameter moments
    do) and has the leading ``(K,)`` axis gets row ``target`` replaced by row ``source``.
    """
    fields = tuple(f"['{name}']" for name in component_fields(model))
    k = model.num_components
    source = check_index(source, k, "split_optimizer_state source")
    target = check_index(target, k, "split_optimizer_state target")

    def copy(path, leaf):
        name = jax.tree_util.keystr(path)
        if any(f in name for f in fields) and getattr(leaf, "ndim", 0) >= 1 and leaf.shape[0] == k:
            return leaf.at[target].set(leaf[source])
        return leaf

    return jax.tree_util.tree_map_with_path(copy, opt_state)


def reseed_dead(model, state, key: Array, threshold: float, scale: float = 1e-3):
    """``(state, [[target, source], ...])``: every dead component (``pi_k < threshold``) a perturbed copy of the
    then most populated one (params and optimizer moments), Phi_old <- the new Phi. All dead: nothing changes."""
    dead = dead_components(state.params["log_pi"], threshold)
    if not dead or len(dead) == model.num_components:
        return state, []
    params, opt_state, reseeded = state.params, state.opt_state, []
    for i, target in enumerate(dead):
        source = int(np.argmax(np.asarray(params["log_pi"])))
        params = split_component(model, params, source, target, jax.random.fold_in(key, i), scale)
        opt_state = split_optimizer_state(model, opt_state, source, target)
        reseeded.append([target, source])
    return state.replace(params=params, opt_state=opt_state, old_params=jax.tree.map(jnp.copy, params)), reseeded
