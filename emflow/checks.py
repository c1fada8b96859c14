"""Argument checks shared by the public entry points: each raises before anything compiles.

Every function takes ``where`` (the entry point, e.g. ``"VectorFlow"``) and ``name`` (the argument)
and raises ``TypeError`` for a value of the wrong kind or ``ValueError`` for one out of range, with a
message that names both, what was expected and what came. They read Python values and array
*shapes and dtypes* only, so they run unchanged on tracers (at trace time under ``jit``, free after).
"""
from __future__ import annotations

import collections.abc
import os
from typing import Any, Callable

import jax
import numpy as np


def integer(where: str, name: str, value: Any, minimum: int | None = None) -> int:
    """``value`` as a Python int (numpy integers too, not bools or floats), at least ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise TypeError(f"{where}: {name} must be an integer{bound}, got {value!r} of type {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{where}: {name} must be an integer >= {minimum}, got {value}")
    return int(value)


def number(where: str, name: str, value: Any, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite Python float in the interval given (each end open or closed)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where}: {name} must be a number, got {value!r} of type {type(value).__name__}")
    value = float(value)
    lo_ok = low is None or (value > low if low_open else value >= low)
    hi_ok = high is None or (value < high if high_open else value <= high)
    if not np.isfinite(value) or not (lo_ok and hi_ok):
        interval = (("(" if low_open else "[") + ("-inf" if low is None else f"{low:g}") + ", "
                    + ("inf" if high is None else f"{high:g}") + (")" if high_open or high is None else "]"))
        raise ValueError(f"{where}: {name} must be a finite number in {interval}, got {value}")
    return value


def event_shape(where: str, name: str, value: Any, rank: int | None = None) -> tuple[int, ...]:
    """``value`` as a non-empty tuple of positive ints (of length ``rank`` when given)."""
    try:
        shape = tuple(value)
    except TypeError:
        shape = None
    if (shape is None or not shape or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1
                                          for d in shape) or (rank is not None and len(shape) != rank)):
        what = f"a tuple of {rank} positive ints" if rank else "a non-empty tuple of positive ints"
        raise ValueError(f"{where}: {name} must be {what}, got {value!r}")
    return tuple(int(d) for d in shape)


def key(where: str, value: Any, name: str = "key") -> Any:
    """A JAX PRNG key: a typed key (``jax.random.key``) or raw ``uint32`` key data (``jax.random.PRNGKey``)."""
    dtype = getattr(value, "dtype", None)
    if dtype is not None and ((jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) and np.ndim(value) == 0)
                              or (dtype == np.uint32 and np.shape(value) in ((2,), (4,)))):
        return value
    raise TypeError(f"{where}: {name} must be a JAX PRNG key (jax.random.key(seed) or jax.random.PRNGKey(seed)), "
                    f"got {type(value).__name__}" + (f" of dtype {dtype} and shape {np.shape(value)}" if dtype else ""))


def _has(where: str, name: str, value: Any, attributes: tuple[str, ...], what: str) -> Any:
    """``value`` if it has every one of ``attributes``; else a ``TypeError``: ``name`` must be ``what``."""
    missing = [a for a in attributes if not hasattr(value, a)]
    if missing:
        raise TypeError(f"{where}: {name} must be {what}, got {type(value).__name__} without {missing}")
    return value


def flow(where: str, value: Any, name: str = "flow") -> Any:
    """An emflow flow: an object with ``event_shape``, ``init``, ``forward`` and ``log_prob``."""
    return _has(where, name, value, ("event_shape", "init", "forward", "log_prob"),
                "a flow (emflow.VectorFlow, emflow.Glow, ...: an object with event_shape, init, forward and log_prob)")


def bijector(where: str, value: Any, name: str = "bijector") -> Any:
    """An emflow bijector: an object with ``event_shape``, ``init``, ``forward`` and ``inverse``."""
    return _has(where, name, value, ("event_shape", "init", "forward", "inverse"),
                "a bijector (emflow.Logit, emflow.bijectors.FlowStep, ...: an object with event_shape, init, forward "
                "and inverse)")


def mixture(where: str, value: Any, name: str = "model") -> Any:
    """An emflow mixture: an object with ``num_components``, ``event_shape``, ``init`` and ``component_log_prob``."""
    return _has(where, name, value, ("num_components", "event_shape", "init", "component_log_prob"),
                "a mixture model (emflow.GenMM, emflow.LatMM, emflow.HybridMM)")


def model(where: str, value: Any, name: str = "model") -> Any:
    """A model or flow that has parameters: an object with ``event_shape`` and ``init``."""
    return _has(where, name, value, ("event_shape", "init"),
                "an emflow model or flow (emflow.GenMM, emflow.LatMM, emflow.VectorFlow, ...)")


def transformation(where: str, value: Any, name: str = "optimizer") -> Any:
    """An optax ``GradientTransformation``: an object with ``init`` and ``update``."""
    return _has(where, name, value, ("init", "update"), "an optax.GradientTransformation (init and update)")


def instance(where: str, name: str, value: Any, cls: type, what: str | None = None) -> Any:
    """``value`` if it is a ``cls`` (``what``: how the message names it, default ``cls``'s qualified name)."""
    if not isinstance(value, cls):
        raise TypeError(f"{where}: {name} must be {what or 'a ' + cls.__module__ + '.' + cls.__qualname__}, "
                        f"got {type(value).__name__}")
    return value


_INIT_TREES: dict = {}  # model -> _tree(its init's shapes); a memo of at most _MAX_MODELS models
_MAX_MODELS = 64


def _tree(shapes: Any) -> tuple[Any, list, Any]:
    leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes)
    return shapes, leaves, treedef


def _remember(model: Any, tree: tuple) -> tuple:
    try:
        _INIT_TREES[model] = tree
    except TypeError:  # an unhashable model is not remembered
        return tree
    if len(_INIT_TREES) > _MAX_MODELS:
        del _INIT_TREES[next(iter(_INIT_TREES))]
    return tree


def _init_tree_of(model: Any) -> tuple[Any, list, Any]:
    """``model.init``'s tree of ``jax.ShapeDtypeStruct`` leaves, its leaves with paths and its treedef: traced
    with ``jax.eval_shape`` the first time a model is asked about, then remembered."""
    try:
        return _INIT_TREES[model]
    except (KeyError, TypeError):
        pass
    batch = max(int(getattr(model, "num_components", 1)), 2)
    return _remember(model, _tree(jax.eval_shape(model.init, jax.random.PRNGKey(0),
                                                 jax.ShapeDtypeStruct((batch, *model.event_shape), np.float32))))


def remember_init_params(model: Any, params: Any) -> None:
    """Record the tree and shapes of ``params`` that ``model.init`` just made, so that checking parameters against
    ``model`` needs no trace of ``init`` (``fit`` calls it on its start: tracing a Glow GenMM's init costs seconds)."""
    _remember(model, _tree(jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype), params)))


def init_shapes(model: Any) -> Any:
    """``model.init``'s parameter tree as ``jax.ShapeDtypeStruct`` leaves (traced once per model and cached)."""
    return _init_tree_of(model)[0]


def params_fit(where: str, model: Any, params: Any) -> None:
    """``params`` have the tree and leaf shapes that ``model.init`` gives (``ValueError`` naming the first misfit).

    Leaf dtypes are not compared (bfloat16 or float64 parameters are the model's too)."""
    _, want_leaves, want_tree = _init_tree_of(model)
    try:
        got_leaves, got_tree = jax.tree_util.tree_flatten(params)
    except Exception as err:  # any pytree error is the user's params
        raise ValueError(f"{where}: params are not a parameter pytree ({err})") from err
    if got_tree != want_tree:
        raise ValueError(f"{where}: params do not fit the model: expected the tree of {type(model).__name__}.init, "
                         f"{want_tree}, got {got_tree}")
    for (leaf_path, w), g in zip(want_leaves, got_leaves):
        if tuple(np.shape(g)) != tuple(w.shape):
            raise ValueError(f"{where}: params do not fit the model: {jax.tree_util.keystr(leaf_path)} should have "
                             f"shape {tuple(w.shape)}, got {tuple(np.shape(g))}")


def numbers(where: str, name: str, value: Any) -> Any:
    """An array (or tracer) of numbers or bools, or something ``jnp.asarray`` makes one of (not a str)."""
    dtype = getattr(value, "dtype", None)
    if isinstance(value, (str, bytes)) or (dtype is not None and not (np.issubdtype(dtype, np.number)
                                                                      or dtype == bool)):
        raise TypeError(f"{where}: {name} must be an array of numbers, got {type(value).__name__}"
                        + (f" of dtype {dtype}" if dtype is not None else ""))
    return value


def hooks(where: str, value: Any) -> Any:
    """An iterable of hooks (not a str); when it is a sequence, every item has ``after_epoch``."""
    if (isinstance(value, (str, bytes)) or not isinstance(value, collections.abc.Iterable)
            or (isinstance(value, collections.abc.Sequence) and any(not hasattr(h, "after_epoch") for h in value))):
        raise TypeError(f"{where}: hooks must be a list or tuple of hooks (objects with after_epoch and finish, e.g. "
                        f"emflow.train.BaseHook subclasses), got {value!r}")
    return value


def callable_(where: str, name: str, value: Any, what: str) -> Callable:
    """``value`` if it is callable (``what`` says what kind of callable is expected)."""
    if not callable(value):
        raise TypeError(f"{where}: {name} must be {what}, got {value!r} of type {type(value).__name__}")
    return value


def path(where: str, value: Any, name: str = "path") -> Any:
    """A ``str`` or ``os.PathLike`` file-system path."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{where}: {name} must be a path (str or pathlib.Path), got {value!r} of type "
                        f"{type(value).__name__}")
    return value
