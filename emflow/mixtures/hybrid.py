"""The paper's section III-B hybrid: a GenMM whose generators share LatMM's Gaussian-mixture latent.

    p(x) = sum_k sum_m pi_km N(f_k(x)_top; mu_m, diag(sigma_m^2)) N(f_k(x)_splits; 0, I) |det df_k/dx|

K generators ``f_k`` (a ``GenMM``'s) and M latent Gaussians (a ``LatMM``'s means and stds, with its
prior on the stds) shared by all of them. The hidden variable is the pair (generator k, latent
component m), so the model is a mixture of ``K * M`` components, component ``c = k * M + m``, and
everything that trains a mixture (``fit``, the E-steps, ``emflow.em``) trains it unchanged:

    model = HybridMM(GenMM(flow, 3), LatMM(flow, 2))   # K = 3 generators, M = 2 latent Gaussians
    params = model.init(key, x_batch)   # {"log_pi": (K*M,), "flows": (K, ...), "means": (M, D), "log_stds": (M, D)}
    model.component_log_prob(params, x) # (B, K*M)

Built from the two models' parts: the generators, their init on k-means parts and their trunk are
the ``GenMM``'s; the latent Gaussians' density, their placement at a k-means partition and their
prior are the ``LatMM``'s (whose own flow only fixes the latent's shape and is not trained).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from emflow import checks
from emflow.bijectors.base import Array
from emflow.flows import latent as latent_lib
from emflow.flows.latent import Latent
from emflow.mixtures.genmm import GenMM
from emflow.mixtures.latmm import LatMM, diagonal_gaussian_log_prob
from emflow.mixtures.mixture import MixtureModel, sample_components, uniform_log_pi


@dataclasses.dataclass(frozen=True)
class HybridMM(MixtureModel):
    """K generators sharing one Gaussian-mixture latent of M components: K * M mixture components.

    Attributes:
      generators: the ``GenMM`` whose K generators (flow, init strategy, trunk, component axis) are used.
      latent: the ``LatMM`` whose M latent Gaussians (their prior on the stds, k-means settings) are used;
        its flow must have the generators' latent shapes.

    Params: ``{"log_pi": (K*M,), "flows": <K stacked flow params>, "means": (M, D), "log_stds": (M, D)}``
    (and ``"trunk"`` with the GenMM's trunk), ``D`` the size of the top-level latent.
    """

    generators: GenMM
    latent: LatMM

    def __post_init__(self):
        if not isinstance(self.generators, GenMM) or not isinstance(self.latent, LatMM):
            raise TypeError(f"HybridMM: expected a GenMM and a LatMM, got {type(self.generators).__name__} and "
                            f"{type(self.latent).__name__}")
        if self.generators.flow.latent_shapes != self.latent.flow.latent_shapes:
            raise ValueError(f"HybridMM: the LatMM's flow must have the generators' latent shapes "
                             f"{self.generators.flow.latent_shapes}, got {self.latent.flow.latent_shapes}")

    @property
    def num_components(self) -> int:
        """``K * M``: one component per (generator, latent Gaussian) pair."""
        return self.generators.num_components * self.latent.num_components

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self.generators.event_shape

    @property
    def flow(self) -> Any:
        """The generators' flow configuration (what ``MixtureModel`` checks inputs against)."""
        return self.generators.flow

    def pair(self, c: int) -> tuple[int, int]:
        """``(k, m)`` of component ``c = k * M + m``."""
        return divmod(int(c), self.latent.num_components)

    def _latents(self, params: dict, x: Array) -> tuple[Latent, Array]:
        """Every generator's latent of ``x`` (leaves ``(K, B, ...)``) and ``log|det df_k/dx|: (K, B)``, trunk included."""
        y, trunk_log_det = self.generators.trunk_forward(params, x)
        latents, log_det = self.generators.map_generators(lambda p: self.flow.forward(p, y), params["flows"])
        return latents, log_det + trunk_log_det[None, :]

    def init(self, key: Array, x: Array) -> dict:
        """The generators as ``GenMM.init_with_partition`` starts them on ``x: (B, *event_shape)``, then the M
        latent Gaussians at a k-means partition of the batch's top-level latents (``LatMM.place_latent_gaussians``),
        each example's latent taken under its own part's generator (every generator's, for the shared init); pi uniform."""
        checks.key("HybridMM.init", key)
        self._check_input(x, "init")
        k_gen, k_lat = jax.random.split(key)
        gen_params, part = self.generators.init_with_partition(k_gen, x)
        latents, _ = self._latents(gen_params, x)
        z = latents.top.reshape(self.generators.num_components, x.shape[0], -1)
        z = z.reshape(-1, z.shape[-1]) if part is None else z[part.labels, jnp.arange(x.shape[0])]
        params = {**{k: v for k, v in gen_params.items() if k != "log_pi"}, "log_pi": uniform_log_pi(self.num_components)}
        params, _ = self.latent.place_latent_gaussians(k_lat, params, z)
        return params

    def component_log_prob(self, params: dict, x: Array) -> Array:
        """``log pi_km + log p_km(x)``: ``(B, *event_shape) -> (B, K*M)``, column ``k * M + m``."""
        self._check_input(x, "component_log_prob")
        self._check_params(params, "component_log_prob")
        b = x.shape[0]
        if b == 0:  # an empty batch: an empty result
            return jnp.zeros((0, self.num_components), jnp.float32)
        latents, log_det = self._latents(params, x)
        k = self.generators.num_components
        z = latents.top.reshape(k * b, -1)
        shared = jax.vmap(latent_lib.splits_log_prob)(latents) + log_det                        # (K, B)
        gauss = diagonal_gaussian_log_prob(z, params["means"], params["log_stds"]).reshape(k, b, -1)  # (K, B, M)
        joint = gauss + shared[:, :, None]
        return params["log_pi"][None, :] + jnp.transpose(joint, (1, 0, 2)).reshape(b, self.num_components)

    def regularizer(self, params: dict) -> Array:
        """The LatMM's prior on the latent stds (minus its log), added to the M-step loss."""
        return self.latent.regularizer(params)

    def _decode(self, params: dict, top: Array, splits: tuple[Array, ...]) -> Array:
        """Every generator's decoding of the latents ``top: (n, D)``: ``(K, n, *event_shape)``."""
        shape = self.flow.latent_shapes.top
        latent = Latent(top.reshape((top.shape[0], *shape)), splits)
        decoded = self.generators.map_generators(lambda p: self.flow.inverse(p, latent)[0], params["flows"])
        return self.generators.trunk_inverse(params, decoded)

    def sample(self, params: dict, key: Array, n: int, temperature: float = 1.0) -> Array:
        """``n`` samples ``(n, *event_shape)``: (k, m) ~ pi, z_top = mu_m + temperature sigma_m eps, x = g_k(z)."""
        checks.key("HybridMM.sample", key)
        latent_lib.check_temperature(temperature, "HybridMM.sample")
        self._check_params(params, "sample")
        if checks.integer("HybridMM.sample", "n", n, 0) == 0:
            return jnp.zeros((0, *self.event_shape), jnp.float32)
        k_comp, k_lat = jax.random.split(key)
        c = sample_components(k_comp, params["log_pi"], n)
        gen, lat = c // self.latent.num_components, c % self.latent.num_components
        eps = latent_lib.sample(k_lat, self.flow.latent_shapes, n, temperature, "HybridMM.sample")
        top = params["means"][lat] + jnp.exp(params["log_stds"][lat]) * eps.top.reshape(n, -1)
        return self._decode(params, top, eps.splits)[gen, jnp.arange(n)]

    def component_samples(self, params: dict, key: Array, n: int, temperature: float = 1.0) -> Array:
        """``n`` samples of every component (k, m), from the same noise: ``(K*M, n, *event_shape)``."""
        checks.key("HybridMM.component_samples", key)
        latent_lib.check_temperature(temperature, "HybridMM.component_samples")
        self._check_params(params, "component_samples")
        if checks.integer("HybridMM.component_samples", "n", n, 0) == 0:
            return jnp.zeros((self.num_components, 0, *self.event_shape), jnp.float32)
        m = self.latent.num_components
        eps = latent_lib.sample(key, self.flow.latent_shapes, n, temperature, "HybridMM.component_samples")
        top = params["means"][:, None] + jnp.exp(params["log_stds"])[:, None] * eps.top.reshape(1, n, -1)  # (M, n, D)
        splits = tuple(jnp.broadcast_to(s[None], (m, *s.shape)).reshape(m * n, *s.shape[1:]) for s in eps.splits)
        x = self._decode(params, top.reshape(m * n, -1), splits)                                        # (K, M*n, ...)
        return x.reshape(self.num_components, n, *self.event_shape)
