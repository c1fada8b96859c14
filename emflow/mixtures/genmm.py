"""GenMM: K flow generators sharing one N(0, I) latent (the paper's section II)::

    p(x) = sum_k pi_k p_k(x),    p_k(x) = N(f_k(x); 0, I) |det df_k/dx|       (eqs. 1, 8)

The K generators' parameters are stacked on a leading axis of
``params["flows"]`` and evaluated as one program: ``jax.vmap`` over that axis,
an unrolled Python loop, or ``lax.map`` (``component_axis``). All three give
the same numbers; which is fastest depends on the backend (``benchmarks.throughput`` measures them).

    model = GenMM(Glow((32, 32, 1), 3, 4, 512), num_components=4)
    params = model.init(key, x_batch)          # {"log_pi": (K,), "flows": stacked flow params}
    log_px = model.log_prob(params, x)         # (B,)

Initialisation (``init_strategy``): ``"partition"`` (the default) splits the init
batch into K parts by k-means (``emflow.mixtures.partition``) on its ``partition_space``
features (``emflow.mixtures.partition_space``: the pixels by default; the image experiments
use the direction of the blurred image, the best of ``kmeans_starts`` = 4) and fits
generator k's data-dependent layers (ActNorm) on its own part, so that the K
generators start as K different densities; ``init_with_partition`` also returns
that partition for a warm start (``em.partition_e_step``). Given ``centroids``, a
partition fitted on more examples than the batch holds, it splits the batch by them
instead: ``train.fit`` fits them on ``TrainConfig.partition_size`` (10,000) training
images, because the parts of 512 images are less class-pure (MNIST, K = 10: purity 0.475
from 512 images, 0.537 from 10,000). ``"shared"`` is the
paper's protocol: every generator initialised on the whole batch, from its own key.

A ``trunk`` (``emflow.flows.trunk.GlowTrunk``) is a bijector every generator shares in front of
it, ``p_k(x) = p_{flow_k}(t(x)) |det dt/dx|``: run once per example, trained on every
example, so that what all images share need not be learned K times (on MNIST it buys density;
it does not stop the drift to one generator).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import jax
import jax.numpy as jnp

from emflow import checks
from emflow.flows import latent as latent_lib
from emflow.mixtures import partition as partition_lib
from emflow.mixtures import partition_space as partition_space_lib
from emflow.bijectors.base import Array
from emflow.mixtures.mixture import (
    ComponentAxis, MixtureModel, check_index, check_init_batch, check_num_components,
    resolve_component_axis, sample_components, uniform_log_pi,
)


InitStrategy = Literal["partition", "shared"]
INIT_STRATEGIES: tuple[str, ...] = InitStrategy.__args__


@dataclasses.dataclass(frozen=True)
class GenMM(MixtureModel):
    """Generator mixture model.

    Attributes:
      flow: the generators' shared configuration (``Glow`` or ``VectorFlow``).
      num_components: K >= 1.
      component_axis: ``"vmap"``, ``"unrolled"``, ``"scan"``, or ``None`` for the
        backend's default.
      mesh: a ``jax.sharding.Mesh`` with a ``"components"`` axis
        (``emflow.parallel.sharding.make_mesh``) to run the generators component parallel:
        each device evaluates its K / n generators (``jax.shard_map`` over the
        stacked parameters, vmap within a device). None: all on one device.
      init_strategy: ``"partition"`` (k-means parts, one per generator) or ``"shared"``.
      min_part_fraction: k-means repairs a part of fewer than ``min_part_fraction * B / K``
        examples (``partition.kmeans``). 0 (the default here) keeps k-means' own parts, with
        which every GenMM result on the results pages was measured (Table II's classifiers included);
        LatMM repairs by default.
      trunk: None, or a bijector every generator shares in front of it (``emflow.flows.trunk.GlowTrunk``):
        ``p_k(x) = p_{flow_k}(t(x)) |det dt/dx|``, the trunk evaluated once per example.
      partition_space: what k-means clusters (``emflow.mixtures.partition_space``): ``"input"`` (the default,
        the flattened input), ``"unit"`` (its direction) or ``"blurred_unit"`` (images: blurred by
        one pixel, then its direction; the image experiments' choice, measured purer).
      kmeans_starts: k-means starts, the least-inertia one kept (``partition.kmeans``); 1 by default.

    Params: ``{"log_pi": (K,), "flows": <flow params, every leaf with a leading (K,) axis>}``, plus
    ``"trunk": <the trunk's params>`` (no K axis) with a trunk.
    """

    flow: Any
    num_components: int
    component_axis: ComponentAxis | None = None
    mesh: Any = None
    init_strategy: InitStrategy = "partition"
    trunk: Any = None
    min_part_fraction: float = 0.0
    partition_space: partition_space_lib.PartitionSpace = "input"
    kmeans_starts: int = 1

    def __post_init__(self):
        checks.flow("GenMM", self.flow)
        check_num_components("GenMM", self.num_components, self.component_axis)
        if self.init_strategy not in INIT_STRATEGIES:
            raise ValueError(f"GenMM: init_strategy must be one of {INIT_STRATEGIES}, got {self.init_strategy!r}")
        partition_lib.check_min_part_fraction("GenMM", self.min_part_fraction)
        partition_space_lib.check_partition_space("GenMM", self.partition_space, tuple(self.flow.event_shape))
        partition_lib.check_kmeans_starts("GenMM", self.kmeans_starts)
        if self.trunk is not None and tuple(self.trunk.event_shape) != tuple(self.flow.event_shape):
            raise ValueError(f"GenMM: the trunk maps {tuple(self.trunk.event_shape)} but the generators take "
                             f"{tuple(self.flow.event_shape)}")
        if self.trunk is not None and self.mesh is not None:
            raise ValueError("GenMM: a trunk with a mesh is not available (its parameters have no K axis to shard and "
                             "this is not measured); use mesh=None")
        if self.mesh is not None:
            n = self.mesh.shape.get("components", 1)
            if self.num_components % n:
                raise ValueError(f"GenMM: K = {self.num_components} cannot be split evenly over {n} devices")

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self.flow.event_shape

    def init(self, key: Array, x: Array) -> dict:
        """K generators from ``x: (B, *event_shape)``, pi uniform (see ``init_with_partition``)."""
        return self.init_with_partition(key, x)[0]

    def init_with_partition(self, key: Array, x: Array,
                            centroids: Array | None = None) -> tuple[dict, partition_lib.Partition | None]:
        """``(params, partition)`` from ``x: (B, *event_shape)``; pi uniform.

        ``"partition"``: k-means (k-means++ seeds) on ``partition_features(x)`` splits the
        batch into K parts; generator k is initialised from its own key on ``B``
        examples drawn with replacement from part k (an empty part: from the whole
        batch). ``"shared"``: every generator on the whole batch; the partition is None.
        With a trunk, it is initialised on the whole batch first and the generators on its
        output (the partition stays one of the input). Deterministic for ``key``; works under ``jit``.

        ``centroids: (K, N)``, N the flattened event size: a partition fitted elsewhere (``train.fit``
        fits one on ``TrainConfig.partition_size`` examples, ``partition_centroids``); the batch is then
        split by each example's nearest centroid instead of by its own k-means. Not with ``"shared"``.
        """
        checks.key("GenMM.init", key)
        self._check_input(x, "init")
        k = self.num_components
        check_init_batch("GenMM", x, k)
        if centroids is not None:
            if not self.partitions_input:
                raise ValueError("GenMM: centroids were given, but init_strategy='shared' uses no partition")
            expected = (k, math.prod(self.event_shape))
            if tuple(centroids.shape) != expected:
                raise ValueError(f"GenMM: centroids must have shape (K, N) = {expected}, got {tuple(centroids.shape)}")
        params = {"log_pi": uniform_log_pi(k)}
        y = x  # what the generators see: the trunk's output of the batch, fitted on the whole batch
        if self.trunk is not None:
            params["trunk"] = self.trunk.init(jax.random.fold_in(key, 3), x)
            y, _ = self.trunk.forward(params["trunk"], x)
        if self.init_strategy == "shared":
            flows = jax.vmap(self.flow.init, in_axes=(0, None))(jax.random.split(key, k), y)
            return {**params, "flows": flows}, None
        k_part, k_draw, k_flows = jax.random.split(key, 3)
        features = self.partition_features(None, x)
        part = (self.kmeans(k_part, features)
                if centroids is None else
                partition_lib.Partition(centroids, partition_lib.nearest(centroids, features)))
        index = partition_lib.draw_from_parts(k_draw, part.labels, k, x.shape[0])  # (K, B)
        flows = jax.vmap(self.flow.init)(jax.random.split(k_flows, k), y[index])
        return {**params, "flows": flows}, part

    @property
    def partitions_input(self) -> bool:
        """Whether ``init_with_partition`` partitions the input (``"partition"``) and so takes ``centroids``."""
        return self.init_strategy != "shared"

    def partition_features(self, params: dict | None, x: Array) -> Array:
        """What k-means partitions, ``(B, *event_shape) -> (B, N)``: the input in ``partition_space`` (``params`` unused)."""
        del params
        return partition_space_lib.features(self.partition_space, x, tuple(self.event_shape))

    def generator(self, params: dict, k: int) -> Any:
        """The flow params of generator ``k`` in ``[0, K)`` (with a trunk: what comes after it)."""
        k = check_index(k, self.num_components, "GenMM.generator")
        self._check_params(params, "generator")
        return jax.tree.map(lambda a: a[k], params["flows"])

    def map_generators(self, fn, flows):
        """``fn(flow_params) -> pytree`` for every generator, results stacked on axis 0."""
        if self.mesh is not None and self.mesh.shape.get("components", 1) > 1:
            spec = jax.sharding.PartitionSpec("components")
            local = jax.shard_map(lambda f: jax.vmap(fn)(f), mesh=self.mesh, in_specs=spec, out_specs=spec,
                                  check_vma=False)
            return local(flows)
        axis = resolve_component_axis(self.component_axis, self.flow)
        if axis == "vmap":
            return jax.vmap(fn)(flows)
        if axis == "scan":
            return jax.lax.map(fn, flows)
        outs = [fn(jax.tree.map(lambda a, k=k: a[k], flows)) for k in range(self.num_components)]
        return jax.tree.map(lambda *leaves: jnp.stack(leaves), *outs)

    def generator_log_prob(self, params: dict, x: Array) -> Array:
        """``log p_k(x)`` of every generator: ``(B, *event_shape) -> (B, K)``."""
        self._check_params(params, "generator_log_prob")
        return self._generator_log_prob(params, x)

    def _generator_log_prob(self, params: dict, x: Array) -> Array:
        """``generator_log_prob`` with the batch checked and ``params`` taken as checked by the caller."""
        self._check_input(x, "generator_log_prob")
        if x.shape[0] == 0:  # an empty batch: an empty result
            return jnp.zeros((0, self.num_components), jnp.float32)
        y, log_det = self.trunk_forward(params, x)
        return self.map_generators(lambda p: self.flow.log_prob(p, y), params["flows"]).T + log_det[:, None]

    def trunk_forward(self, params: dict, x: Array) -> tuple[Array, Array]:
        """``(t(x), log|det dt/dx|: (B,))``; ``(x, 0)`` without a trunk."""
        if self.trunk is None:
            return x, jnp.zeros(x.shape[:1], x.dtype)
        return self.trunk.forward(params["trunk"], x)

    def trunk_inverse(self, params: dict, y: Array) -> Array:
        """``t^{-1}(y)``, or ``y`` without a trunk; ``y: (..., *event_shape)`` with any leading axes."""
        if self.trunk is None:
            return y
        lead = y.shape[: y.ndim - len(self.event_shape)]
        x, _ = self.trunk.inverse(params["trunk"], y.reshape((-1,) + tuple(self.event_shape)))
        return x.reshape(lead + tuple(self.event_shape))

    def component_log_prob(self, params: dict, x: Array) -> Array:
        """``log pi_k + log p_k(x)``: ``(B, *event_shape) -> (B, K)``."""
        self._check_params(params, "component_log_prob")
        return params["log_pi"][None, :] + self._generator_log_prob(params, x)

    def sample(self, params: dict, key: Array, n: int, temperature: float = 1.0) -> Array:
        """``n`` samples ``(n, *event_shape)``: k ~ pi, z ~ N(0, temperature^2 I), x = g_k(z).

        Every generator decodes every latent and the drawn one is kept, so the
        cost is K decodes of ``n`` examples. ``n = 0`` gives an empty array.
        """
        checks.key("GenMM.sample", key)
        latent_lib.check_temperature(temperature, "GenMM.sample")
        self._check_params(params, "sample")
        if checks.integer("GenMM.sample", "n", n, 0) == 0:
            return jnp.zeros((0, *self.event_shape), jnp.float32)
        k_comp, k_lat = jax.random.split(key)
        components = sample_components(k_comp, params["log_pi"], n)
        latents = latent_lib.sample(k_lat, self.flow.latent_shapes, n, temperature, "GenMM.sample")
        decoded = self.map_generators(lambda p: self.flow.inverse(p, latents)[0], params["flows"])
        return self.trunk_inverse(params, decoded[components, jnp.arange(n)])

    def component_samples(self, params: dict, key: Array, n: int, temperature: float = 1.0) -> Array:
        """``n`` samples of every generator, from the same latents: ``(K, n, *event_shape)``."""
        checks.key("GenMM.component_samples", key)
        latent_lib.check_temperature(temperature, "GenMM.component_samples")
        self._check_params(params, "component_samples")
        if checks.integer("GenMM.component_samples", "n", n, 0) == 0:
            return jnp.zeros((self.num_components, 0, *self.event_shape), jnp.float32)
        latents = latent_lib.sample(key, self.flow.latent_shapes, n, temperature, "GenMM.component_samples")
        return self.trunk_inverse(params, self.map_generators(lambda p: self.flow.inverse(p, latents)[0],
                                                                params["flows"]))
