"""Normalizing flows with a known latent: Glow for images, a coupling flow and an autoregressive flow for
vectors, their wrappers.

``flow`` (the flow interface and the ``Prefixed`` / ``Whitened`` wrappers), ``glow``,
``vector_flow``, ``autoregressive_flow``, ``trunk`` (a Glow prefix the generators of a GenMM share), ``latent``
(the N(0, I) and Gaussian-mixture latents) and ``dequantize`` (pixels to continuous data).
"""
from emflow.flows.autoregressive_flow import AutoregressiveFlow
from emflow.flows.dequantize import Dequantizer
from emflow.flows.flow import Prefixed, StandardNormalFlow, Whitened
from emflow.flows.glow import Glow
from emflow.flows.latent import Latent
from emflow.flows.trunk import GlowTrunk
from emflow.flows.vector_flow import VectorFlow

__all__ = ["AutoregressiveFlow", "Dequantizer", "Glow", "GlowTrunk", "Latent", "Prefixed", "StandardNormalFlow", "VectorFlow", "Whitened"]
