"""GenMM: K flow generators sharing one N(0, I) latent (the paper's section II).

    p(x) = sum_k pi_k p_k(x),    p_k(x) = N(f_k(x); 0, I) |det df_k/dx|       (eqs. 1, 8)

The K generators' parameters are stacked on a leading axis of
``params["flows"]`` and evaluated as one program: ``jax.vmap`` over that axis,
an unrolled Python loop, or ``lax.map`` (``component_axis``). All three give
the same numbers; which is fastest depends on the backend (see the README).

    model = GenMM(Glow((32, 32, 1), 3, 4, 512), num_components=4)
    params = model.init(key, x_batch)          # {"log_pi": (K,), "flows": stacked flow params}
    log_px = model.log_prob(params, x)         # (B,)
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from emflow import latent as latent_lib
from emflow.bijectors.base import Array
from emflow.mixture import (
    ComponentAxis, MixtureModel, check_num_components, resolve_component_axis,
    sample_components, uniform_log_pi,
)


@dataclasses.dataclass(frozen=True)
class GenMM(MixtureModel):
    """Generator mixture model.

    Attributes:
      flow: the generators' shared configuration (``Glow`` or ``VectorFlow``).
      num_components: K >= 1.
      component_axis: ``"vmap"``, ``"unrolled"``, ``"scan"``, or ``None`` for the
        backend's default.
      mesh: a ``jax.sharding.Mesh`` with a ``"components"`` axis
        (``emflow.sharding.make_mesh``) to run the generators component parallel:
        each device evaluates its K / n generators (``jax.shard_map`` over the
        stacked parameters, vmap within a device). None: all on one device.

    Params: ``{"log_pi": (K,), "flows": <flow params, every leaf with a leading (K,) axis>}``.
    """

    flow: Any
    num_components: int
    component_axis: ComponentAxis | None = None
    mesh: Any = None

    def __post_init__(self):
        check_num_components("GenMM", self.num_components, self.component_axis)
        if self.mesh is not None:
            n = self.mesh.shape.get("components", 1)
            if self.num_components % n:
                raise ValueError(f"GenMM: K = {self.num_components} cannot be split evenly over {n} devices")

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self.flow.event_shape

    def init(self, key: Array, x: Array) -> dict:
        """K generators from K keys, each with ActNorm initialised on ``x: (B, *event_shape)``; pi uniform."""
        self._check_input(x, "init")
        keys = jax.random.split(key, self.num_components)
        flows = jax.vmap(self.flow.init, in_axes=(0, None))(keys, x)
        return {"log_pi": uniform_log_pi(self.num_components), "flows": flows}

    def generator(self, params: dict, k: int) -> Any:
        """The flow params of generator ``k``."""
        return jax.tree.map(lambda a: a[k], params["flows"])

    def _map_generators(self, fn, flows):
        """``fn(flow_params) -> pytree`` for every generator, results stacked on axis 0."""
        if self.mesh is not None and self.mesh.shape.get("components", 1) > 1:
            spec = jax.sharding.PartitionSpec("components")
            local = jax.shard_map(lambda f: jax.vmap(fn)(f), mesh=self.mesh, in_specs=spec, out_specs=spec,
                                  check_vma=False)
            return local(flows)
        axis = resolve_component_axis(self.component_axis)
        if axis == "vmap":
            return jax.vmap(fn)(flows)
        if axis == "scan":
            return jax.lax.map(fn, flows)
        outs = [fn(jax.tree.map(lambda a, k=k: a[k], flows)) for k in range(self.num_components)]
        return jax.tree.map(lambda *leaves: jnp.stack(leaves), *outs)

    def generator_log_prob(self, params: dict, x: Array) -> Array:
        """``log p_k(x)`` of every generator: ``(B, *event_shape) -> (B, K)``."""
        self._check_input(x, "generator_log_prob")
        return self._map_generators(lambda p: self.flow.log_prob(p, x), params["flows"]).T

    def component_log_prob(self, params: dict, x: Array) -> Array:
        """``log pi_k + log p_k(x)``: ``(B, *event_shape) -> (B, K)``."""
        self._check_log_pi(params)
        return params["log_pi"][None, :] + self.generator_log_prob(params, x)

    def sample(self, params: dict, key: Array, n: int, temperature: float = 1.0) -> Array:
        """``n`` samples ``(n, *event_shape)``: k ~ pi, z ~ N(0, temperature^2 I), x = g_k(z).

        Every generator decodes every latent and the drawn one is kept, so the
        cost is K decodes of ``n`` examples.
        """
        k_comp, k_lat = jax.random.split(key)
        components = sample_components(k_comp, params["log_pi"], n)
        latents = latent_lib.sample(k_lat, self.flow.latent_shapes, n, temperature)
        decoded = self._map_generators(lambda p: self.flow.inverse(p, latents)[0], params["flows"])
        return decoded[components, jnp.arange(n)]
