"""LatMM: one flow whose top-level latent is a Gaussian mixture (the paper's section III)::

    p(x) = sum_k pi_k N(z_top; mu_k, diag(sigma_k^2)) N(z_splits; 0, I) |det dz/dx|,  z = f(x)   (eq. 21)

Only the top-level latent carries the mixture; the parts split off by a
multi-scale flow stay standard normal. The singularity of a component
collapsing onto a point is guarded by a prior on the standard deviations:

- ``"gamma"`` (eq. 26, the paper's setting): ``(1/K) sum_k log Gamma(sigma_k^-1; a, b)``
  with shape ``a = 2`` and rate ``b = 1``, summed over the latent dimensions;
- ``"l2"`` (eq. 27): ``-lambda sum_k ||1 - sigma_k||^2 / K``;
- ``"none"``.

The M-step loss adds minus that log-prior (``regularizer``).

Initialisation (``init_strategy``): ``"kmeans"`` (the default) initialises the flow
on the batch, then places the K latent Gaussians at a k-means partition of the
batch's top-level latents (``place_latent_gaussians``): means at the parts' centroids,
stds the parts' own per-dimension stds; a part smaller than ``min_part_fraction * B / K``
is repaired first (``partition.kmeans``: on Fashion-MNIST an outlier's part of one image
left its component dead). ``"shared"`` is the reference code's: means and log-stds
~ N(0, 0.01^2), so that every component starts as almost the same density.

The partition is only as good as the number of latents it sees: on 10,000 MNIST images
at K = 10 the test images' argmax-gamma purity was 0.508 from the 512 latents of an
init batch and 0.614 from 10,000 (k-means on pixels: 0.577). So the trainer
re-places the Gaussians from the latents of ``TrainConfig.partition_size`` examples,
computed in batches with the initialised flow:

    params = model.init(key, x_init_batch)
    z = model.top_latents(params, x_many)                  # (N, M), in batches
    params, part = model.place_latent_gaussians(key, params, z)

What k-means partitions (``partition_space``): ``"latent"`` (the default), the top-level
latents themselves; or one of ``emflow.mixtures.partition_space``'s input spaces (``"input"``,
``"unit"``, ``"blurred_unit"``): the examples are partitioned there and the Gaussians
placed at each part's top-level latents (``place_latent_gaussians(key, params, z,
features)``). The warm start's hard responsibilities read the same features. The image
experiments use ``"blurred_unit"`` with the best of ``kmeans_starts`` = 4: at K = 10 on
10,000 images its test purity was above k-means on pixels for 6 of 6 seeds and datasets,
against 3 of 6 from the latents.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import chex
import jax
import jax.numpy as jnp

from emflow import checks
from emflow.flows import latent as latent_lib
from emflow.mixtures import partition as partition_lib
from emflow.mixtures import partition_space as partition_space_lib
from emflow.bijectors.base import Array
from emflow.flows.latent import Latent
from emflow.mixtures.mixture import (MixtureModel, check_init_batch, check_num_components, sample_components,
                            uniform_log_pi)

SigmaPrior = Literal["gamma", "l2", "none"]
LatentPartitionSpace = Literal["latent", partition_space_lib.PartitionSpace]
LATENT_PARTITION_SPACES: tuple[str, ...] = ("latent", *partition_space_lib.PARTITION_SPACES)
INIT_SCALE = 0.01  # the reference code starts the means and log-stds at N(0, 0.01^2)


def diagonal_gaussian_log_prob(z: Array, means: Array, log_stds: Array) -> Array:
    """``log N(z; mu_k, diag(exp(2 log_std_k)))`` for every component: ``z: (B, M)``, ``means: (K, M)`` -> ``(B, K)``."""
    scaled = (z[:, None, :] - means[None]) * jnp.exp(-log_stds)[None]
    m = z.shape[1]
    return -0.5 * jnp.sum(scaled**2, axis=2) - jnp.sum(log_stds, axis=1)[None] - 0.5 * m * latent_lib.LOG_2PI


def part_gaussians(z: Array, labels: Array, k: int, means: Array | None = None) -> tuple[Array, Array]:
    """``(means, log_stds)``, each ``(K, M)``: the Gaussian of each part's latents ``z: (N, M)``, ``labels: (N,)``.

    ``means``: given (e.g. k-means' centroids), or each part's mean; the log-std is of the part's latents about
    them, per dimension. A part of fewer than 2 examples, or a dimension constant on it, takes the std of all of
    ``z`` there.
    """
    member = jax.nn.one_hot(labels, k, dtype=z.dtype)                          # (N, K)
    counts = jnp.maximum(jnp.sum(member, axis=0)[:, None], 1.0)               # (K, 1)
    if means is None:
        means = jnp.matmul(member.T, z) / counts
    std = jnp.sqrt(jnp.maximum(jnp.matmul(member.T, z**2) / counts - means**2, 0.0))
    std = jnp.where((jnp.sum(member, axis=0)[:, None] > 1) & (std > 0), std, jnp.std(z, axis=0)[None, :])
    return means, jnp.log(std)


@dataclasses.dataclass(frozen=True)
class LatMM(MixtureModel):
    """Latent mixture model.

    Attributes:
      flow: the shared flow (``Glow`` or ``VectorFlow``).
      num_components: K >= 1.
      sigma_prior: ``"gamma"``, ``"l2"`` or ``"none"``.
      gamma_shape, gamma_rate: ``a`` and ``b`` of the Gamma prior on ``1/sigma``.
      l2_weight: ``lambda`` of the l2 alternative.
      init_strategy: ``"kmeans"`` (latent Gaussians at k-means parts of the init batch's latents) or ``"shared"``.
      min_part_fraction: k-means repairs a part of fewer than ``min_part_fraction * B / K``
        latents by splitting the largest part (``partition.kmeans``); 0 turns the repair off.
      partition_space: what k-means clusters: ``"latent"`` (the top-level latents; the default) or an
        input space of ``emflow.mixtures.partition_space`` (``"input"``, ``"unit"``, ``"blurred_unit"``), in which
        case the Gaussians are placed at the top-level latents of each input-space part.
      kmeans_starts: k-means starts, the least-inertia one kept (``partition.kmeans``); 1 by default.

    Params: ``{"log_pi": (K,), "flow": <flow params>, "means": (K, M), "log_stds": (K, M)}``
    with ``M`` the size of the top-level latent.
    """

    flow: Any
    num_components: int
    sigma_prior: SigmaPrior = "gamma"
    gamma_shape: float = 2.0
    gamma_rate: float = 1.0
    l2_weight: float = 1.0
    init_strategy: Literal["kmeans", "shared"] = "kmeans"
    min_part_fraction: float = partition_lib.DEFAULT_MIN_PART_FRACTION
    partition_space: LatentPartitionSpace = "latent"
    kmeans_starts: int = 1

    def __post_init__(self):
        checks.flow("LatMM", self.flow)
        check_num_components("LatMM", self.num_components, None)
        if self.init_strategy not in ("kmeans", "shared"):
            raise ValueError(f"LatMM: init_strategy must be 'kmeans' or 'shared', got {self.init_strategy!r}")
        partition_lib.check_min_part_fraction("LatMM", self.min_part_fraction)
        if self.partition_space not in LATENT_PARTITION_SPACES:
            raise ValueError(f"LatMM: partition_space must be one of {LATENT_PARTITION_SPACES}, "
                             f"got {self.partition_space!r}")
        if self.partition_space != "latent":
            partition_space_lib.check_partition_space("LatMM", self.partition_space, tuple(self.flow.event_shape))
        partition_lib.check_kmeans_starts("LatMM", self.kmeans_starts)
        if self.sigma_prior not in ("gamma", "l2", "none"):
            raise ValueError(f"LatMM: sigma_prior must be 'gamma', 'l2' or 'none', got {self.sigma_prior!r}")
        if self.l2_weight < 0:
            raise ValueError(f"LatMM: l2_weight must be >= 0, got {self.l2_weight}")
        if self.gamma_shape <= 0 or self.gamma_rate <= 0:
            raise ValueError(
                f"LatMM: the Gamma prior needs shape > 0 and rate > 0, got {self.gamma_shape}, {self.gamma_rate}"
            )

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self.flow.event_shape

    @property
    def top_size(self) -> int:
        return math.prod(self.flow.latent_shapes.top)

    def init(self, key: Array, x: Array) -> dict:
        """Flow with ActNorm initialised on ``x: (B, *event_shape)``, K latent Gaussians, pi uniform
        (see ``init_with_partition``)."""
        return self.init_with_partition(key, x)[0]

    def init_with_partition(self, key: Array, x: Array) -> tuple[dict, partition_lib.Partition | None]:
        """``(params, partition)``: the flow from ``key`` initialised on ``x``, then the latent Gaussians.

        ``"kmeans"``: k-means (k-means++ seeds) of the batch's ``partition_features`` (by default
        its top-level latents ``z: (B, M)``); ``means[k]`` is the mean and ``log_stds[k]`` the log of the
        per-dimension std of part k's latents (a part of fewer than 2 examples, or a dimension constant
        on it, takes the batch's std there; ``place_latent_gaussians``). ``"shared"``: means and log-stds ~ N(0, 0.01^2); no partition.
        Deterministic for ``key``; works under ``jit``.
        """
        checks.key("LatMM.init", key)
        self._check_input(x, "init")
        k = self.num_components
        check_init_batch("LatMM", x, k)
        k_flow, k_mu, k_sigma = jax.random.split(key, 3)
        flow_params = self.flow.init(k_flow, x)
        shape = (k, self.top_size)
        params = {"log_pi": uniform_log_pi(k), "flow": flow_params}
        if self.init_strategy == "shared":
            return {**params, "means": INIT_SCALE * jax.random.normal(k_mu, shape),
                    "log_stds": INIT_SCALE * jax.random.normal(k_sigma, shape)}, None
        z = self.top_latents(params, x)
        features = None if self.partition_space == "latent" else self.partition_features(params, x)
        return self.place_latent_gaussians(k_mu, params, z, features)

    def place_latent_gaussians(self, key: Array, params: dict, z: Array,
                               features: Array | None = None) -> tuple[dict, partition_lib.Partition]:
        """``(params, partition)`` with the K latent Gaussians at a k-means partition of N examples.

        ``z: (N, M)`` are their top-level latents under ``params["flow"]`` (``top_latents``), any
        ``N >= K``. k-means (``kmeans``: k-means++ seeds from ``key``, Lloyd, the small-part repair)
        partitions ``features: (N, F)`` (``partition_features`` of the same examples; None: ``z``
        itself, the ``"latent"`` space). ``means[k]`` is the mean (in the ``"latent"`` space: k-means' centroid) and
        ``log_stds[k]`` the log of the per-dimension std of part k's latents (a part of fewer than 2 examples, or a dimension
        constant on it, takes the std of all of ``z`` there). The returned partition's centroids are
        in the features' space. pi and the flow are unchanged. Deterministic for ``key``; works under ``jit``.
        """
        k = self.num_components
        chex.assert_shape(z, (None, self.top_size))
        if z.shape[0] < k:
            raise ValueError(f"LatMM.place_latent_gaussians: need at least K={k} latents to partition, "
                             f"got {z.shape[0]}")
        if features is not None and features.shape[0] != z.shape[0]:
            raise ValueError(f"LatMM.place_latent_gaussians: features must have one row per latent "
                             f"({z.shape[0]}), got shape {tuple(features.shape)}")
        part = self.kmeans(key, z if features is None else features)
        means, log_stds = part_gaussians(z, part.labels, k, part.centroids if features is None else None)
        return {**params, "means": means, "log_stds": log_stds}, part

    def top_latents(self, params: dict, x: Array) -> Array:
        """The top-level latents under ``params["flow"]``: ``(B, *event_shape) -> (B, M)``."""
        latent, _ = self.flow.forward(params["flow"], x)
        return latent.top.reshape(x.shape[0], -1)

    def partition_features(self, params: dict, x: Array) -> Array:
        """What k-means partitions, ``(B, *event_shape) -> (B, F)``: the top-level latents under
        ``params["flow"]`` (``"latent"``, F = M) or the input in ``partition_space`` (``params`` unused)."""
        if self.partition_space == "latent":
            return self.top_latents(params, x)
        return partition_space_lib.features(self.partition_space, x, tuple(self.event_shape))

    def component_log_prob(self, params: dict, x: Array) -> Array:
        """``log pi_k + log p_k(x)``: ``(B, *event_shape) -> (B, K)``."""
        self._check_input(x, "component_log_prob")
        self._check_params(params, "component_log_prob")
        if x.shape[0] == 0:  # an empty batch: an empty result
            return jnp.zeros((0, self.num_components), jnp.float32)
        latent, log_det = self.flow.forward(params["flow"], x)
        z = latent.top.reshape(x.shape[0], -1)
        shared = latent_lib.splits_log_prob(latent) + log_det
        return (
            params["log_pi"][None, :]
            + diagonal_gaussian_log_prob(z, params["means"], params["log_stds"])
            + shared[:, None]
        )

    def sigma_log_prior(self, params: dict) -> Array:
        """The log-prior on the standard deviations (eq. 26 or 27; 0 for ``"none"``), a scalar."""
        log_stds = params["log_stds"]
        k = self.num_components
        if self.sigma_prior == "gamma":
            a, b = self.gamma_shape, self.gamma_rate
            precision = jnp.exp(-log_stds)
            log_gamma = a * math.log(b) - math.lgamma(a) + (a - 1.0) * (-log_stds) - b * precision
            return jnp.sum(log_gamma) / k
        if self.sigma_prior == "l2":
            return -self.l2_weight * jnp.sum((1.0 - jnp.exp(log_stds)) ** 2) / k
        return jnp.zeros((), log_stds.dtype)

    def regularizer(self, params: dict) -> Array:
        """Minus the log-prior on the standard deviations (added to the M-step loss)."""
        return -self.sigma_log_prior(params)

    def sample(self, params: dict, key: Array, n: int, temperature: float = 1.0) -> Array:
        """``n`` samples ``(n, *event_shape)``: k ~ pi, z_top = mu_k + temperature sigma_k eps, x = g(z);
        ``n = 0`` gives an empty array."""
        checks.key("LatMM.sample", key)
        latent_lib.check_temperature(temperature, "LatMM.sample")
        self._check_params(params, "sample")
        if checks.integer("LatMM.sample", "n", n, 0) == 0:
            return jnp.zeros((0, *self.event_shape), jnp.float32)
        k_comp, k_lat = jax.random.split(key)
        components = sample_components(k_comp, params["log_pi"], n)
        eps = latent_lib.sample(k_lat, self.flow.latent_shapes, n, temperature, "LatMM.sample")
        top = params["means"][components] + jnp.exp(params["log_stds"][components]) * eps.top.reshape(n, -1)
        latent = Latent(top.reshape(eps.top.shape), eps.splits)
        x, _ = self.flow.inverse(params["flow"], latent)
        return x

    def component_samples(self, params: dict, key: Array, n: int, temperature: float = 1.0) -> Array:
        """``n`` samples of every latent component, from the same noise: ``(K, n, *event_shape)``."""
        checks.key("LatMM.component_samples", key)
        latent_lib.check_temperature(temperature, "LatMM.component_samples")
        self._check_params(params, "component_samples")
        if checks.integer("LatMM.component_samples", "n", n, 0) == 0:
            return jnp.zeros((self.num_components, 0, *self.event_shape), jnp.float32)
        k = self.num_components
        eps = latent_lib.sample(key, self.flow.latent_shapes, n, temperature, "LatMM.component_samples")
        top = (params["means"][:, None] + jnp.exp(params["log_stds"])[:, None] * eps.top.reshape(1, n, -1))
        tile = lambda a: jnp.broadcast_to(a[None], (k, *a.shape)).reshape(k * n, *a.shape[1:])
        latent = Latent(top.reshape(k * n, *eps.top.shape[1:]), tuple(tile(s) for s in eps.splits))
        x, _ = self.flow.inverse(params["flow"], latent)
        return x.reshape(k, n, *x.shape[1:])
