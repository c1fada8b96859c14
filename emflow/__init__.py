"""emflow: explicit neural mixture models (GenMM, LatMM) of normalizing flows, learned with EM.

Packages: ``bijectors`` (invertible layers), ``flows`` (Glow, the vector flows, latents,
dequantization), ``mixtures`` (GenMM, LatMM, their hybrid, the partition that starts them apart), ``em``
(E-steps, M-step loss, prior update), ``train`` (``fit``, its state, hooks and checkpoints),
``parallel`` (meshes and processes), ``classify`` (the maximum-likelihood classifier),
``data`` (datasets and their download), ``evaluation`` (metrics, baselines, diagnostics)
and ``contrib`` (variants not shown to help).
"""
from emflow import bijectors, em
from emflow.bijectors.logit import Logit
from emflow.bijectors.whiten import Whiten
from emflow.flows.autoregressive_flow import AutoregressiveFlow
from emflow.flows import latent
from emflow.flows.dequantize import Dequantizer
from emflow.flows.flow import Prefixed, Whitened
from emflow.flows.glow import Glow
from emflow.flows.latent import Latent
from emflow.flows.trunk import GlowTrunk
from emflow.flows.vector_flow import VectorFlow
from emflow.mixtures.genmm import GenMM
from emflow.mixtures.hybrid import HybridMM
from emflow.mixtures.latmm import LatMM
from emflow.serialization import load, save

__version__ = "0.2.0"

__all__ = [
    "AutoregressiveFlow", "Dequantizer", "GenMM", "Glow", "GlowTrunk", "HybridMM", "LatMM", "Latent", "Logit", "Prefixed", "VectorFlow", "Whiten",
    "Whitened", "bijectors", "em", "latent", "load", "save",
]
