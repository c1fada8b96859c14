"""Parameter averaging (Polyak averaging): a moving average of the parameters kept in the optimizer's state.

``parameter_average(optimizer, decay)`` is ``optimizer`` whose state also holds, after every step,

    average <- average + (1 - decay) * (params_after_the_step - average)

started at the initial parameters: an exponential moving average over about ``1 / (1 - decay)`` steps.
Training itself is unchanged (the same updates); the average is a second set of parameters to score
and keep, smoother than the last step's. ``averaged_params(state)`` reads it back from a run's
``EMState``. ``fit_to_data`` scores and returns the average by default.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from emflow import checks
from emflow.bijectors.linear import is_constant_leaf
from emflow.train.state import EMState, check_state


class AverageState(NamedTuple):
    """``parameter_average``'s state: the wrapped optimizer's, and the moving average of the parameters it sees
    (``optax.MaskedNode`` where it sees none: ``log_pi`` under ``without_log_pi``)."""

    inner: Any
    average: Any


def parameter_average(optimizer: optax.GradientTransformation, decay: float) -> optax.GradientTransformation:
    """``optimizer`` with a moving average of the parameters after each of its updates, in its state.

    Args:
      optimizer: any optax transformation; its updates are returned unchanged.
      decay: the average's decay per step, in (0, 1); it spans about ``1 / (1 - decay)`` steps.

    The returned transformation needs ``params`` in ``update`` (``fit``'s step passes them).
    """
    checks.transformation("parameter_average", optimizer)
    check_decay("parameter_average", "decay", decay)

    def init(params):
        return AverageState(optimizer.init(params), jax.tree.map(jnp.copy, params))  # its own buffers: a step may donate both

    def update(updates, state: AverageState, params=None):
        if params is None:
            raise ValueError("parameter_average: update needs params (the parameters before the update), got None")
        updates, inner = optimizer.update(updates, state.inner, params)
        after = optax.apply_updates(params, updates)
        average = jax.tree.map(lambda a, p: a + (1.0 - decay) * (p - a), state.average, after)
        return updates, AverageState(inner, average)

    return optax.GradientTransformation(init, update)


def is_decay(decay) -> bool:
    """Whether ``decay`` is a Python number in (0, 1)."""
    return not isinstance(decay, bool) and isinstance(decay, (int, float)) and 0.0 < decay < 1.0


def check_decay(where: str, name: str, decay) -> None:
    """A ``ValueError`` naming ``where`` and ``name`` unless ``decay`` is a number in (0, 1)."""
    if not is_decay(decay):
        raise ValueError(f"{where}: {name} must be a number in (0, 1), got {decay!r}")


def averaged_params(state: EMState) -> Any:
    """The parameters' moving average kept by ``parameter_average`` in ``state``'s optimizer state.

    Every leaf the optimizer trains is its average; the others keep ``state.params``' value: ``log_pi``
    (set by EM's prior update, not by the optimizer) and an LU layer's constants (``is_constant_leaf``),
    which the trainer holds fixed. The same tree as ``state.params``.

    Raises:
      ValueError: the run's optimizer keeps no average (it was not wrapped in ``parameter_average``).
    """
    check_state("averaged_params", state)
    kept = [s for s in jax.tree.leaves(state.opt_state, is_leaf=lambda s: isinstance(s, AverageState))
            if isinstance(s, AverageState)]
    if len(kept) != 1:
        raise ValueError(f"averaged_params: expected one parameter_average in the run's optimizer state, found "
                         f"{len(kept)}; train with optimizer=parameter_average(...)")
    average = dict(jax.tree_util.tree_leaves_with_path(
        kept[0].average, is_leaf=lambda x: isinstance(x, optax.MaskedNode)))

    def pick(path, value):
        a = average.get(path)
        return value if a is None or isinstance(a, optax.MaskedNode) or is_constant_leaf(path) else a

    return jax.tree_util.tree_map_with_path(pick, state.params)
