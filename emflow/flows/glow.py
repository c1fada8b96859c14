"""Glow (Kingma & Dhariwal 2018): the multi-scale image flow of the paper's section IV-A.

``num_levels`` levels, each: squeeze -> ``num_steps`` flow steps (ActNorm ->
invertible 1x1 conv -> coupling) -> split (all levels but the last). It maps
``x: (B, H, W, C)`` to a ``Latent`` holding exactly ``H * W * C`` numbers per
example (the paper's Proposition 1): the top-level latent
``(B, H / 2^L, W / 2^L, C * 2^(L+1))`` and one split-off part per lower level.

    flow = Glow(image_shape=(32, 32, 1), num_levels=3, num_steps=4, hidden_channels=512)
    params = flow.init(key, x_batch)            # data-dependent ActNorm init
    latent, log_det = flow.forward(params, x)   # log|det dz/dx|, (B,)
    log_px = flow.log_prob(params, x)           # N(0, I) on every latent part
"""
from __future__ import annotations

import dataclasses
import math
from typing import Literal

import jax
import jax.numpy as jnp

from emflow import checks
from emflow.bijectors.actnorm import ActNorm
from emflow.bijectors.base import Array, check_batch
from emflow.bijectors.conditioners import ConvImpl, check_conv_impl
from emflow.bijectors.coupling import CouplingKind
from emflow.bijectors.flow_step import FlowStep, LinearKind, Repeat
from emflow.bijectors.split import Split, SplitPrior
from emflow.bijectors.squeeze import Squeeze
from emflow.flows.flow import StandardNormalFlow
from emflow.flows import latent as latent_lib
from emflow.flows.latent import Latent

TopPrior = Literal["standard", "learned"]
TOP_PRIORS: tuple[str, ...] = TopPrior.__args__


@dataclasses.dataclass(frozen=True)
class Glow(StandardNormalFlow):
    """Static configuration of a Glow flow, and its pure functions.

    Attributes:
      image_shape: ``(H, W, C)``; H and W divisible by ``2 ** num_levels``.
      num_levels: number of squeeze/steps/split levels (L).
      num_steps: flow steps per level (K in Glow's notation).
      hidden_channels: width of the coupling networks.
      coupling: ``"affine"`` (Glow, scale ``sigmoid(h + 2)``), ``"additive"`` or ``"spline"``
        (rational-quadratic splines of 8 bins on ``[-4, 4]``, the identity outside).
      linear: ``"lu"`` or ``"plain"`` invertible 1x1 conv, or ``"reverse"``.
      split_prior: ``"conditional"`` (Glow's learned conditional Gaussian) or
        ``"standard"`` (N(0, I)) for the split-off halves.
      compute_dtype: ``"float32"``, or ``"bfloat16"`` for mixed precision: the coupling
        and split-prior convolutions run in bfloat16 while parameters, activations
        between layers, log-dets and accumulations stay float32.
      conv_impl: how the 3x3 convolutions run: ``"lax"`` (XLA's convolution, the
        default) or ``"matmul"`` (one matrix product each; under a ``vmap``
        over generators these stay batched matrix products, gradients included).
      first_level_steps: flow steps of the first level; None (default) for ``num_steps``.
        0 leaves the first level with a squeeze and a split only, for a GenMM whose
        generators share their first level's steps in a ``GlowTrunk`` in front of them.
      top_prior: ``"standard"`` (the default, and the paper code's: N(0, I) on the top-level
        latent) or ``"learned"``: a diagonal Gaussian N(mean, diag(std^2)) there with one
        learned mean and std per element (Glow's ``learn_top``, per element as LatMM's latent
        Gaussians), written as the elementwise affine map ``(h - mean) / std`` at the end of
        the flow, so that the latent stays N(0, I) and a GenMM's generators still share it.
        ``init`` sets them to the init batch's per-element mean and std of that latent
        (data-dependent, as ActNorm; an element constant on the batch keeps std 1).
      split_log_std_floor: None (Glow's), or the smallest log-std the conditional split priors
        can give (``Split.log_std_floor``: ``f + softplus(logs - f)``), so that an unusual input
        cannot get an arbitrarily narrow prior.

    Params: ``{"levels": [{"steps": <stacked FlowStep params>, "split": ...}, ...]}``
    (no ``"split"`` on the last level, no ``"steps"`` on a level with zero steps), plus
    ``"top": {"mean": <top shape>, "log_std": <top shape>}`` with a learned top prior.
    """

    image_shape: tuple[int, int, int]
    num_levels: int = 3
    num_steps: int = 4
    hidden_channels: int = 512
    coupling: CouplingKind = "affine"
    linear: LinearKind = "lu"
    split_prior: SplitPrior = "conditional"
    compute_dtype: str = "float32"
    conv_impl: ConvImpl = "lax"
    first_level_steps: int | None = None
    top_prior: TopPrior = "standard"
    split_log_std_floor: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "image_shape", checks.event_shape("Glow", "image_shape (H, W, C)", self.image_shape, 3))
        for name in ("num_levels", "num_steps", "hidden_channels"):
            checks.integer("Glow", name, getattr(self, name), 1)
        if self.first_level_steps is not None:
            checks.integer("Glow", "first_level_steps (or None)", self.first_level_steps, 0)
        if self.first_level_steps == 0 and self.num_levels == 1:
            raise ValueError("Glow: first_level_steps=0 needs num_levels >= 2 (a one-level Glow would have no steps)")
        h, w, _ = self.image_shape
        f = 2 ** self.num_levels
        if h % f or w % f:
            raise ValueError(
                f"Glow: image_shape {self.image_shape} cannot be squeezed {self.num_levels} times: "
                f"height and width must be divisible by 2**num_levels = {f}"
            )
        check_conv_impl("Glow", self.conv_impl)
        if self.top_prior not in TOP_PRIORS:
            raise ValueError(f"Glow: top_prior must be one of {TOP_PRIORS}, got {self.top_prior!r}")
        _ = self._levels  # builds every layer now, so a bad configuration fails here

    @property
    def event_shape(self) -> tuple[int, int, int]:
        return self.image_shape

    @property
    def steps_per_level(self) -> tuple[int, ...]:
        """Flow steps of each level: ``first_level_steps`` (or ``num_steps``), then ``num_steps``."""
        first = self.num_steps if self.first_level_steps is None else self.first_level_steps
        return (first,) + (self.num_steps,) * (self.num_levels - 1)

    @property
    def _levels(self) -> list[tuple[Squeeze, Repeat | None, Split | None]]:
        """Per level ``(squeeze, steps or None for a level without steps, split or None on the last)``."""
        levels, shape = [], self.image_shape
        for level, num_steps in enumerate(self.steps_per_level):
            squeeze = Squeeze(shape)
            shape = squeeze.output_shape
            step = FlowStep(shape, self.coupling, self.hidden_channels, self.linear, compute_dtype=self.compute_dtype,
                            conv_impl=self.conv_impl)
            split = (Split(shape, self.split_prior, self.compute_dtype, self.conv_impl, self.split_log_std_floor)
                     if level < self.num_levels - 1 else None)
            levels.append((squeeze, Repeat(step, num_steps) if num_steps else None, split))
            if split is not None:
                shape = split.kept_shape
        return levels

    @property
    def latent_shapes(self) -> Latent:
        """The event shapes of the latent's parts (a ``Latent`` of tuples)."""
        levels = self._levels
        splits = tuple(split.split_shape for _, _, split in levels if split is not None)
        return Latent(levels[-1][0].output_shape, splits)

    @property
    def num_dims(self) -> int:
        return math.prod(self.image_shape)

    def init(self, key: Array, x: Array) -> dict:
        """Random rotations and conditioners from ``key``; ActNorm statistics from ``x: (B, H, W, C)``."""
        checks.key("Glow.init", key)
        check_batch(x, self.image_shape, "Glow.init")
        params = {"levels": []}
        for (squeeze, steps, split), k in zip(self._levels, jax.random.split(key, self.num_levels)):
            k_steps, k_split = jax.random.split(k)
            x, _ = squeeze.forward({}, x)
            level = {}
            if steps is not None:
                level["steps"] = steps.init(k_steps, x)
                x, _ = steps.forward(level["steps"], x)
            if split is not None:
                level["split"] = split.init(k_split, x)
                (x, _), _ = split.forward(level["split"], x)
            params["levels"].append(level)
        if self.top_prior == "learned":  # per-element statistics: ActNorm on the flattened top latent
            flat = x.reshape(x.shape[0], -1)
            stats = ActNorm(flat.shape[1:]).init(None, flat)
            params["top"] = {"mean": -stats["bias"].reshape(x.shape[1:]),
                             "log_std": -stats["log_scale"].reshape(x.shape[1:])}
        return params

    def forward(self, params: dict, x: Array) -> tuple[Latent, Array]:
        """``x: (B, H, W, C) -> (Latent, log|det dz/dx|: (B,))``."""
        check_batch(x, self.image_shape, "Glow.forward")
        log_det = jnp.zeros(x.shape[:1], x.dtype)
        splits = []
        for (squeeze, steps, split), level in zip(self._levels, params["levels"]):
            x, _ = squeeze.forward({}, x)
            if steps is not None:
                x, ld = steps.forward(level["steps"], x)
                log_det = log_det + ld
            if split is not None:
                (x, eps), ld = split.forward(level["split"], x)
                log_det = log_det + ld
                splits.append(eps)
        if self.top_prior == "learned":
            top = params["top"]
            x = (x - top["mean"]) * jnp.exp(-top["log_std"])
            log_det = log_det - jnp.sum(top["log_std"])
        return Latent(x, tuple(splits)), log_det

    def inverse(self, params: dict, latent: Latent) -> tuple[Array, Array]:
        """``Latent -> (x: (B, H, W, C), log|det dx/dz|: (B,))``."""
        latent_lib.check_latent(latent, "Glow.inverse")
        shapes = self.latent_shapes
        if len(latent.splits) != len(shapes.splits):
            raise ValueError(
                f"Glow.inverse: expected {len(shapes.splits)} split-off parts, got {len(latent.splits)}"
            )
        x = latent.top
        check_batch(x, shapes.top, "Glow.inverse (top-level latent)")
        log_det = jnp.zeros(x.shape[:1], x.dtype)
        if self.top_prior == "learned":
            top = params["top"]
            x = x * jnp.exp(top["log_std"]) + top["mean"]
            log_det = log_det + jnp.sum(top["log_std"])
        splits = list(latent.splits)
        for (squeeze, steps, split), level in reversed(list(zip(self._levels, params["levels"]))):
            if split is not None:
                x, ld = split.inverse(level["split"], (x, splits.pop()))
                log_det = log_det + ld
            if steps is not None:
                x, ld = steps.inverse(level["steps"], x)
                log_det = log_det + ld
            x, _ = squeeze.inverse({}, x)
        return x, log_det
