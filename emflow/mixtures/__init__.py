"""Explicit mixtures of flows: GenMM (K generators, one latent) and LatMM (one flow, a mixture latent).

``mixture`` holds what both share (sampling by component, argument checks);
``partition`` and ``partition_space`` start the components apart (k-means on the
inputs or on a feature space); ``reseed`` copies a live component onto a dead one.
"""
from emflow.mixtures.genmm import GenMM
from emflow.mixtures.latmm import LatMM
from emflow.mixtures.mixture import MixtureModel

__all__ = ["GenMM", "LatMM", "MixtureModel"]
