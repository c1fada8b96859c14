"""The model each class of the classifier gets: a GenMM or LatMM over a vector flow or a one-level Glow."""
from __future__ import annotations

import math

from emflow.classify.features import glow_image_shape
from emflow.flows.flow import Whitened
from emflow.flows.glow import Glow
from emflow.flows.vector_flow import VectorFlow
from emflow.mixtures.genmm import GenMM
from emflow.mixtures.latmm import LatMM

# The classifier's settings that choose the model (``MixtureClassifier`` passes them by name).
CLASS_MODEL_SETTINGS = ("model", "num_components", "flow", "flow_steps", "hidden", "image_shape", "glow_levels",
                        "gaussian_start", "gaussian_reg", "component_axis")


def class_model(num_features: int, *, model: str, num_components: int, flow: str, flow_steps: int | None,
                hidden: int | None, image_shape: tuple[int, int, int] | None, glow_levels: int,
                gaussian_start: bool, gaussian_reg: float, component_axis: str | None):
    """The mixture of one class for ``num_features`` features (see ``MixtureClassifier`` for the settings).

    Raises ValueError naming the setting when ``model``, ``flow``, ``image_shape`` or ``gaussian_reg``
    cannot work.
    """
    if model not in ("genmm", "latmm"):
        raise ValueError(f"MixtureClassifier: model must be 'genmm' or 'latmm', got {model!r}")
    if flow == "vector":
        net = VectorFlow(num_features, num_steps=flow_steps or 6, hidden=hidden or 64)
    elif flow == "glow":
        shape = tuple(image_shape) if image_shape is not None else glow_image_shape(num_features)
        if math.prod(shape) != num_features:
            raise ValueError(f"MixtureClassifier: image_shape {shape} holds {math.prod(shape)} values, "
                             f"but X has {num_features} features")
        net = Glow(shape, num_levels=glow_levels, num_steps=flow_steps or 12, hidden_channels=hidden or 8)
    else:
        raise ValueError(f"MixtureClassifier: flow must be 'vector' or 'glow', got {flow!r}")
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
