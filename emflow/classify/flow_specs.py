"""The flow each class of a classifier gets, as one setting: a spec that builds the flow once the feature count is known.

``MixtureClassifier(flow=...)`` and ``SemiSupervisedMixtureClassifier(flow=...)`` take ``"vector"``,
``"glow"`` (their defaults) or a spec with its own sizes, e.g.
``VectorFlowSpec(num_steps=6, hidden=64, coupling="spline")``. A spec is a frozen dataclass, so a
classifier holding one clones, pickles and compares as scikit-learn expects, and ``as_dict`` writes
it into a results file.
"""
from __future__ import annotations

import dataclasses
import math

from emflow import checks
from emflow.bijectors import rational_quadratic as rq
from emflow.bijectors.coupling import COUPLING_KINDS
from emflow.classify.features import glow_image_shape
from emflow.flows.glow import Glow
from emflow.flows.vector_flow import VectorFlow


def _check_sizes(spec, names) -> None:
    for name in names:
        value = getattr(spec, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{type(spec).__name__}: {name} must be an integer >= 1, got {value!r}")
    if spec.coupling not in COUPLING_KINDS:
        raise ValueError(f"{type(spec).__name__}: coupling must be one of {COUPLING_KINDS}, got {spec.coupling!r}")


@dataclasses.dataclass(frozen=True)
class VectorFlowSpec:
    """``VectorFlow(D, num_steps, hidden, coupling=coupling, spline_bins=..., tail_bound=...)`` on the D
    features (the spline settings act with ``coupling="spline"`` only)."""

    num_steps: int = 6
    hidden: int = 64
    coupling: str = "affine"
    spline_bins: int = 8
    tail_bound: float = 4.0

    def __post_init__(self):
        _check_sizes(self, ("num_steps", "hidden"))
        rq.check_settings("VectorFlowSpec", self.spline_bins, self.tail_bound)

    def build(self, num_features: int) -> VectorFlow:
        return VectorFlow(num_features, num_steps=self.num_steps, hidden=self.hidden, coupling=self.coupling,
                          spline_bins=self.spline_bins, tail_bound=self.tail_bound)


@dataclasses.dataclass(frozen=True)
class GlowSpec:
    """A ``Glow`` on the D features reshaped to ``image_shape`` (None: the square ``(s, s, 1)``, the paper's
    choice: 4x4x1 for Letter, 6x6x1 for Satimage; NORB: ``(32, 64, 1)``), ``num_levels`` levels of
    ``num_steps`` steps, ``hidden`` channels (defaults: the paper code's 1 x 12 x 8)."""

    num_steps: int = 12
    hidden: int = 8
    num_levels: int = 1
    image_shape: tuple[int, int, int] | None = None
    coupling: str = "affine"

    def __post_init__(self):
        _check_sizes(self, ("num_steps", "hidden", "num_levels"))
        if self.image_shape is not None:
            object.__setattr__(self, "image_shape",
                               checks.event_shape("GlowSpec", "image_shape (H, W, C) or None", self.image_shape, 3))

    def build(self, num_features: int) -> Glow:
        shape = self.image_shape if self.image_shape is not None else glow_image_shape(num_features)
        if math.prod(shape) != num_features:
            raise ValueError(f"GlowSpec: image_shape {shape} holds {math.prod(shape)} values, "
                             f"but X has {num_features} features")
        return Glow(shape, num_levels=self.num_levels, num_steps=self.num_steps, hidden_channels=self.hidden,
                    coupling=self.coupling)


FlowSpec = VectorFlowSpec | GlowSpec
FLOW_NAMES = {"vector": VectorFlowSpec(), "glow": GlowSpec()}


def flow_spec(flow, owner: str) -> FlowSpec:
    """The spec of a classifier's ``flow`` setting: a name of ``FLOW_NAMES`` or a spec; a ``ValueError`` naming
    ``owner`` otherwise."""
    if isinstance(flow, (VectorFlowSpec, GlowSpec)):
        return flow
    if isinstance(flow, str) and flow in FLOW_NAMES:
        return FLOW_NAMES[flow]
    raise ValueError(f"{owner}: flow must be 'vector', 'glow', a VectorFlowSpec or a GlowSpec, got {flow!r}")


def as_dict(flow) -> dict | str:
    """A JSON-able record of a ``flow`` setting: the name as given, or the spec's fields and kind."""
    if isinstance(flow, str):
        return flow
    return {"kind": type(flow).__name__, **dataclasses.asdict(flow)}


_SPECS = {cls.__name__: cls for cls in (VectorFlowSpec, GlowSpec)}


def from_dict(record: dict | str) -> FlowSpec | str:
    """The ``flow`` setting ``as_dict`` recorded: a name as it is, a ``{"kind": ..., field: value}`` record as
    its spec (fields left out take their defaults); a ``ValueError`` for an unknown kind."""
    if isinstance(record, str):
        return record
    fields = dict(record)
    kind = fields.pop("kind", None)
    if kind not in _SPECS:
        raise ValueError(f"flow_specs.from_dict: kind must be one of {sorted(_SPECS)}, got {kind!r}")
    if fields.get("image_shape") is not None:
        fields["image_shape"] = tuple(fields["image_shape"])
    return _SPECS[kind](**fields)
