"""A masked autoregressive flow for vectors (MAF, with rational-quadratic splines by default).

``num_steps`` steps of ActNorm -> ``MaskedAutoregressive`` (a MADE network giving each feature's
spline or affine map from the features before it) -> a reversal of the features, with their params
stacked (``Repeat``). ``x: (B, D) -> Latent(top=(B, D), splits=())``.

Against ``VectorFlow``'s couplings, every feature is conditioned on all the features before it, not
on a fixed half: the density (``forward``) costs one network pass per step, sampling (``inverse``)
one per feature per step. flowjax's default flow (``masked_autoregressive_flow`` with
``RationalQuadraticSpline``) is the same model with fixed random permutations instead of ActNorm
and reversals.
"""
from __future__ import annotations

import dataclasses

from emflow import checks
from emflow.bijectors.actnorm import ActNorm
from emflow.bijectors.autoregressive import AutoregressiveKind, MaskedAutoregressive
from emflow.bijectors.flow_step import Chain, Repeat
from emflow.bijectors.permute import Reverse
from emflow.flows.flow import StackedVectorFlow


@dataclasses.dataclass(frozen=True)
class AutoregressiveStep(Chain):
    """ActNorm -> ``MaskedAutoregressive`` -> reversal, on ``(B, D)``. Params: ``{"actnorm", "made", "reverse"}``."""

    made: MaskedAutoregressive

    @property
    def event_shape(self) -> tuple[int]:
        return self.made.event_shape

    @property
    def layers(self) -> dict:
        return {"actnorm": ActNorm(self.event_shape), "made": self.made, "reverse": Reverse(self.event_shape)}


@dataclasses.dataclass(frozen=True)
class AutoregressiveFlow(StackedVectorFlow):
    """Static configuration of a masked autoregressive flow, and its pure functions.

    Attributes:
      num_features: D >= 2.
      num_steps: number of flow steps.
      hidden: width of each MADE network's hidden layers.
      num_hidden_layers: hidden layers per MADE network.
      kind: each feature's map, ``"spline"`` (``spline_bins`` bins on ``[-tail_bound, tail_bound]``, the
        identity outside) or ``"affine"``.
      unroll_steps: apply the steps as straight-line code instead of one ``lax.scan`` over them.

    The defaults are flowjax's ``masked_autoregressive_flow`` with ``RationalQuadraticSpline(knots=8,
    interval=4)``: 8 steps, one hidden layer of 50.

    ``inverse`` (sampling) solves the features in turn: ``D`` network passes per step.

    Params: ``{"steps": <AutoregressiveStep params stacked over num_steps>}``.
    """

    num_features: int
    num_steps: int = 8
    hidden: int = 50
    num_hidden_layers: int = 1
    kind: AutoregressiveKind = "spline"
    spline_bins: int = 8
    tail_bound: float = 4.0
    unroll_steps: bool = False

    def __post_init__(self):
        checks.integer("AutoregressiveFlow", "num_features", self.num_features, 2)
        checks.integer("AutoregressiveFlow", "num_steps", self.num_steps, 1)
        _ = self._steps  # builds every layer now, so a bad configuration fails here

    @property
    def _steps(self) -> Repeat:
        made = MaskedAutoregressive(self.event_shape, self.kind, self.hidden, self.num_hidden_layers,
                                    self.spline_bins, self.tail_bound)
        return Repeat(AutoregressiveStep(made), self.num_steps, unroll=self.unroll_steps)
