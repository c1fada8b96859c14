"""What GenMM and LatMM share: the mixture log-density, responsibilities, validation.

A mixture model defines ``component_log_prob(params, x) -> (B, K)``, the joint
``log pi_k + log p_k(x)``; everything else follows in log space:

    log p(x)  = logsumexp_k component_log_prob         (eq. 1 / 21)
    gamma_k   = softmax_k component_log_prob           (eq. 13 / 24)

Mixture weights live in ``params["log_pi"]: (K,)`` and are set by EM (eq. 16),
never by gradient descent.
"""
from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from emflow import checks
from emflow.mixtures import partition as partition_lib
from emflow.bijectors.base import Array, check_batch

ComponentAxis = Literal["vmap", "unrolled", "scan"]
COMPONENT_AXES = ("vmap", "unrolled", "scan")

# Default per backend, from benchmarks/throughput.py: on a CPU an
# unrolled loop over the K generators beats vmap by 18-37x at K = 4, 8 for Glow (vmapped convolutions
# become grouped ones); on a GPU vmap won at batch 64 in this project's H100 prototype. A flow without
# convolutions says so with ``component_axis_on_cpu = "vmap"`` (``VectorFlow``).
DEFAULT_COMPONENT_AXIS = {"cpu": "unrolled", "gpu": "vmap", "tpu": "vmap"}


def resolve_component_axis(component_axis: ComponentAxis | None, flow=None) -> ComponentAxis:
    """The given strategy, or the current backend's default when ``None`` (on a CPU, ``flow``'s
    ``component_axis_on_cpu`` when it has one of its own)."""
    if component_axis is not None:
        return component_axis
    backend = jax.default_backend()
    if backend == "cpu" and flow is not None:
        return flow.component_axis_on_cpu
    return DEFAULT_COMPONENT_AXIS.get(backend, "vmap")


def check_num_components(model_name: str, num_components: int, component_axis) -> None:
    """Raises ValueError naming ``model_name`` unless ``num_components`` is an integer >= 1 and
    ``component_axis`` is None or one of ``COMPONENT_AXES``."""
    if not isinstance(num_components, (int, np.integer)) or isinstance(num_components, bool) or num_components < 1:
        raise ValueError(f"{model_name}: num_components must be an integer >= 1, got {num_components!r}")
    if component_axis is not None and component_axis not in COMPONENT_AXES:
        raise ValueError(
            f"{model_name}: component_axis must be one of {COMPONENT_AXES} or None, got {component_axis!r}"
        )


def check_init_batch(model_name: str, x: Array, num_components: int) -> None:
    """Refuse an init batch with fewer examples than components (there is no K-way partition of it)."""
    if x.shape[0] < num_components:
        raise ValueError(
            f"{model_name}.init: the init batch has {x.shape[0]} examples, fewer than K = {num_components}; "
            f"give at least K examples (the trainer uses TrainConfig.init_batch_size)"
        )


def uniform_log_pi(num_components: int) -> Array:
    """``log(1/K)`` for every component: Algorithm 1's initial prior."""
    return jnp.full((num_components,), -np.log(num_components), jnp.float32)


class MixtureModel:
    """Mixin: log-density and responsibilities from ``component_log_prob``."""

    num_components: int
    # A subclass defines component_log_prob(params, x) -> (B, K) = log pi_k + log p_k(x), and, to start
    # from a partition, the fields min_part_fraction and kmeans_starts and partition_features(params, x).

    def log_prob(self, params, x: Array) -> Array:
        """``log p(x)`` in nats: ``(B, *event_shape) -> (B,)``."""
        return jax.nn.logsumexp(self.component_log_prob(params, x), axis=1)

    def responsibilities(self, params, x: Array) -> Array:
        """Posterior ``P(s_k = 1 | x)``: ``(B, *event_shape) -> (B, K)``, rows sum to 1."""
        return jax.nn.softmax(self.component_log_prob(params, x), axis=1)

    def regularizer(self, params) -> Array:
        """A penalty added to the M-step loss (none by default)."""
        del params
        return jnp.zeros((), jnp.float32)

    def kmeans(self, key: Array, features: Array) -> partition_lib.Partition:
        """The K-part k-means of ``partition_features`` ``(N, F)`` with this model's repair and starts."""
        return partition_lib.kmeans(key, features, self.num_components, min_part_fraction=self.min_part_fraction,
                                    num_starts=self.kmeans_starts)

    def _check_input(self, x: Array, where: str) -> None:
        check_batch(x, self.flow.event_shape, f"{type(self).__name__}.{where}")

    def _check_params(self, params, where: str) -> None:
        """``params`` are this model's: a dict with ``log_pi: (K,)`` and the tree and shapes of ``init``'s.
        Reads shapes only: under ``jit`` it runs once, when tracing."""
        name = f"{type(self).__name__}.{where}"
        if not isinstance(params, dict) or "log_pi" not in params:
            raise TypeError(f"{name}: params must be the dict that {type(self).__name__}.init returns (with 'log_pi'), "
                            f"got {type(params).__name__}" + (f" with keys {sorted(params)}" if isinstance(params, dict)
                                                             else ""))
        shape = tuple(jnp.shape(params["log_pi"]))
        if shape != (self.num_components,):
            raise ValueError(f"{name}: params['log_pi'] must have shape (K,) = ({self.num_components},), got {shape}")
        checks.params_fit(name, self, params)


def check_index(k, num_components: int, where: str) -> int:
    """``k`` as a Python int in ``[0, K)``: JAX would clamp an index out of range without a word."""
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{where}: k must be an integer in [0, {num_components}), got {k!r} of type {type(k).__name__}")
    if not 0 <= k < num_components:
        raise ValueError(f"{where}: k must lie in [0, K) = [0, {num_components}), got {k}")
    return int(k)


def sample_components(key: Array, log_pi: Array, n: int) -> Array:
    """``n`` component indices drawn from ``pi``: ``(n,)`` int32."""
    return jax.random.categorical(key, log_pi, shape=(n,))
