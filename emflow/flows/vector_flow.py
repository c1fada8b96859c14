"""A RealNVP-style flow for vectors (tabular data, 2-D toys).

``num_steps`` steps of ActNorm -> invertible dense layer (LU or plain) or a
fixed reversal -> affine, additive or rational-quadratic spline coupling with an MLP conditioner, with their
params stacked (``Repeat``). ``x: (B, D) -> Latent(top=(B, D), splits=())``.
"""
from __future__ import annotations

import dataclasses

from emflow import checks
from emflow.bijectors.coupling import CouplingKind
from emflow.bijectors.flow_step import FlowStep, LinearKind, Repeat
from emflow.flows.flow import StackedVectorFlow


@dataclasses.dataclass(frozen=True)
class VectorFlow(StackedVectorFlow):
    """Static configuration of a vector flow, and its pure functions.

    Attributes:
      num_features: D >= 2.
      num_steps: number of flow steps.
      hidden: width of the MLP conditioners.
      num_hidden_layers: hidden layers per conditioner.
      coupling: ``"affine"``, ``"additive"`` or ``"spline"`` (Neural Spline Flows' rational-quadratic
        splines, ``spline_bins`` bins on ``[-tail_bound, tail_bound]``, the identity outside).
      linear: ``"lu"``, ``"plain"`` or ``"reverse"``.
      compute_dtype: dtype of the conditioner MLPs' arithmetic (mixed precision).
      unroll_steps: apply the steps as straight-line code (``Repeat(unroll=True)``) instead of one
        ``lax.scan`` over them (the default: compiled once, whatever the depth; see the benchmarks page).

    Params: ``{"steps": <FlowStep params stacked over num_steps>}``.
    """

    num_features: int
    num_steps: int = 8
    hidden: int = 64
    num_hidden_layers: int = 2
    coupling: CouplingKind = "affine"
    linear: LinearKind = "lu"
    compute_dtype: str = "float32"
    spline_bins: int = 8
    tail_bound: float = 4.0
    unroll_steps: bool = False

    def __post_init__(self):
        checks.integer("VectorFlow", "num_features", self.num_features, 2)
        for name in ("num_steps", "hidden", "num_hidden_layers"):
            checks.integer("VectorFlow", name, getattr(self, name), 1)
        _ = self._steps  # builds every layer now, so a bad configuration fails here

    @property
    def _steps(self) -> Repeat:
        step = FlowStep(self.event_shape, self.coupling, self.hidden, self.linear, self.num_hidden_layers,
                        self.compute_dtype, spline_bins=self.spline_bins, tail_bound=self.tail_bound)
        return Repeat(step, self.num_steps, unroll=self.unroll_steps)
