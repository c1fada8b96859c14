"""emflow: explicit neural mixture models (GenMM, LatMM) of normalizing flows, learned with EM."""
from emflow import bijectors, em, latent
from emflow.dequantize import Dequantizer
from emflow.flow import Prefixed, Whitened
from emflow.bijectors.logit import Logit
from emflow.bijectors.whiten import Whiten
from emflow.genmm import GenMM
from emflow.glow import Glow
from emflow.latmm import LatMM
from emflow.latent import Latent
from emflow.trunk import GlowTrunk
from emflow.serialization import load, save
from emflow.vector_flow import VectorFlow

__version__ = "0.2.0"

__all__ = [
    "Dequantizer", "GenMM", "Glow", "GlowTrunk", "LatMM", "Latent", "Logit", "Prefixed", "VectorFlow", "Whiten", "Whitened", "bijectors", "em", "latent", "load", "save",
]
