"""Semi-supervised EM: class labels where you have them, as one more E-step.

A class label is a hidden variable that happens to be observed for some examples. Each class
owns one or more components; a labelled example's responsibilities are zero outside its
class's components and the posterior within them, an unlabelled example's are the exact
posterior (eq. 13 / 24). pi and the M-step are as in unsupervised EM.

    e_step = semi_supervised(y, component_classes)       # y: (N,) ints, -1 = unlabelled (scikit-learn's)
    fit(model, config, preprocess, x, e_step_of_round=lambda r: e_step)
    fit(..., e_step_of_round=lambda r: cached(e_step))   # evaluated once per round

``component_classes: (K,)`` gives the class of each component (e.g. ``np.arange(C)`` for one
component per class, ``np.repeat(np.arange(C), m)`` for m each). With every example
labelled and one component per class the responsibilities are the labels' one-hot vectors
(supervised learning of the class densities); with none labelled, unsupervised EM.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from emflow import checks
from emflow.em.e_steps import EStep, RoundData

UNLABELLED = -1


def check_labels(y, component_classes) -> tuple[np.ndarray, np.ndarray]:
    """``(y, component_classes)`` as int32 arrays, or a ``ValueError``/``TypeError`` naming what is wrong.

    ``y: (N,)`` integers in ``{-1} ∪ [0, C)``; ``component_classes: (K,)`` integers in ``[0, C)``
    covering every class that appears in ``y``.
    """
    y, classes = np.asarray(y), np.asarray(component_classes)
    for name, a in (("y", y), ("component_classes", classes)):
        if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
            raise TypeError(f"semi_supervised: {name} must be a 1-D array of integers, got shape {a.shape}, "
                            f"dtype {a.dtype}")
    if classes.size == 0 or classes.min() < 0:
        raise ValueError(f"semi_supervised: component_classes must be class indices >= 0, one per component, "
                         f"got {classes.tolist()}")
    if y.size and y.min() < UNLABELLED:
        raise ValueError(f"semi_supervised: labels must be class indices >= 0 or -1 (unlabelled), got {int(y.min())}")
    missing = sorted(set(np.unique(y[y >= 0]).tolist()) - set(classes.tolist()))
    if missing:
        raise ValueError(f"semi_supervised: classes {missing} have labelled examples but no component "
                         f"(component_classes = {classes.tolist()})")
    return y.astype(np.int32), classes.astype(np.int32)


def allowed_components(y: jax.Array, component_classes: jax.Array) -> jax.Array:
    """``(B, K)`` bool: the components example i may belong to (its class's; every one if unlabelled)."""
    if jnp.ndim(y) != 1 or jnp.ndim(component_classes) != 1:
        raise ValueError(f"allowed_components: expected y (B,) and component_classes (K,), got shapes "
                         f"{jnp.shape(y)} and {jnp.shape(component_classes)}")
    own = y[:, None] == component_classes[None, :]
    return jnp.where((y == UNLABELLED)[:, None], True, own)


def responsibilities(joint: jax.Array, y: jax.Array, component_classes: jax.Array) -> jax.Array:
    """``gamma: (B, K)`` from ``joint = log pi_k + log p_k(x): (B, K)`` and labels ``y: (B,)`` (-1: unlabelled)."""
    if jnp.ndim(y) != 1 or jnp.ndim(component_classes) != 1 or \
            jnp.shape(joint) != (jnp.shape(y)[0], jnp.shape(component_classes)[0]):
        raise ValueError(f"responsibilities: expected joint (B, K), y (B,) and component_classes (K,), got shapes "
                         f"{jnp.shape(joint)}, {jnp.shape(y)} and {jnp.shape(component_classes)}")
    masked = jnp.where(allowed_components(y, component_classes), joint, -jnp.inf)
    return jnp.exp(masked - jax.nn.logsumexp(masked, axis=1, keepdims=True))


def _update(state, model, old_params, x, idx):
    joint = jax.lax.stop_gradient(model.component_log_prob(old_params, x))
    y = state["y"][idx]
    gamma = responsibilities(joint, y, state["component_classes"])
    gamma = jnp.where((y == UNLABELLED)[:, None], state["unlabelled_weight"] * gamma, gamma)
    return gamma, jax.nn.logsumexp(joint, axis=1)


def semi_supervised(y, component_classes, unlabelled_weight: float = 1.0) -> EStep:
    """The semi-supervised E-step over the training set's labels ``y: (N,)`` (-1: unlabelled).

    ``component_classes: (K,)``: the class of each component. The E-step's ``update`` reads the
    labels of the batch's rows (``idx``), so it works per batch and under ``cached``.
    ``unlabelled_weight`` in [0, 1] scales an unlabelled example's responsibilities, so its weight in
    the M-step and in pi's update (EM-lambda, Nigam et al. 2000): 1 is plain EM on the joint
    likelihood; 0 learns from the labelled examples alone; between, a misspecified model is kept
    from trading its classes for the unlabelled data's clusters.
    """
    y, classes = check_labels(y, component_classes)
    weight = checks.number("semi_supervised", "unlabelled_weight", unlabelled_weight, 0.0, 1.0)
    labelled = int(np.sum(y >= 0))

    def init(data: RoundData) -> dict:
        if data.raw.shape[0] != y.shape[0]:
            raise ValueError(f"semi_supervised: {y.shape[0]} labels for {data.raw.shape[0]} training examples")
        if data.model.num_components != classes.shape[0]:
            raise ValueError(f"semi_supervised: component_classes names {classes.shape[0]} components, the model has "
                             f"K = {data.model.num_components}")
        return {"y": jnp.asarray(y), "component_classes": jnp.asarray(classes),
                "unlabelled_weight": jnp.float32(weight)}

    suffix = "" if weight == 1.0 else f", unlabelled weight {weight:g}"
    return EStep(f"semi-supervised ({labelled} of {y.shape[0]} labelled{suffix})", init, _update)
