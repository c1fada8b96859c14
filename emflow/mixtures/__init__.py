"""Explicit mixtures of flows: GenMM (K generators, one latent), LatMM (one flow, a mixture latent) and
HybridMM (K generators sharing a mixture latent, the paper's section III-B).

``mixture`` holds what both share (sampling by component, argument checks);
``partition`` and ``partition_space`` start the components apart (k-means on the
inputs or on a feature space).
"""
from emflow.mixtures.genmm import GenMM
from emflow.mixtures.hybrid import HybridMM
from emflow.mixtures.latmm import LatMM
from emflow.mixtures.mixture import MixtureModel

__all__ = ["GenMM", "HybridMM", "LatMM", "MixtureModel"]
