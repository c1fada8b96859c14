"""The model each class of the classifier gets: a GenMM or LatMM over a vector flow or a one-level Glow."""
from __future__ import annotations

import math

from emflow.classify.flow_specs import flow_spec
from emflow.flows.flow import Whitened
from emflow.mixtures.genmm import GenMM
from emflow.mixtures.latmm import LatMM

# The classifier's settings that choose the model (``MixtureClassifier`` passes them by name).
CLASS_MODEL_SETTINGS = ("model", "num_components", "flow", "gaussian_start", "gaussian_reg", "component_axis")


def class_model(num_features: int, *, model: str, num_components: int, flow, gaussian_start: bool,
                gaussian_reg: float, component_axis: str | None):
    """The mixture of one class for ``num_features`` features (see ``MixtureClassifier`` for the settings).

    Raises ValueError naming the setting when ``model``, ``flow`` (or its image shape) or ``gaussian_reg``
    cannot work.
    """
    if model not in ("genmm", "latmm"):
        raise ValueError(f"MixtureClassifier: model must be 'genmm' or 'latmm', got {model!r}")
    net = flow_spec(flow, "MixtureClassifier").build(num_features)
    if not gaussian_start:  # the paper's start: every component from the whole class
        if model == "genmm":
            return GenMM(net, num_components, component_axis=component_axis, init_strategy="shared")
        return LatMM(net, num_components, init_strategy="shared")
    if not (math.isfinite(gaussian_reg) and gaussian_reg > 0):
        raise ValueError(f"MixtureClassifier: gaussian_reg must be a finite number > 0, got {gaussian_reg}")
    net = Whitened(net, float(gaussian_reg))
    if model == "genmm":
        return GenMM(net, num_components, component_axis=component_axis, init_strategy="partition")
    return LatMM(net, num_components, init_strategy="kmeans")
