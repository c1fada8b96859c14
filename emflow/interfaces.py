"""What the trainer and the hooks expect of a mixture or a preprocessor, stated as Protocols.

The trainer asks ``isinstance(obj, Protocol)`` (each is ``runtime_checkable``) instead of
probing attributes one at a time; a new model or preprocessor says what it offers by having
these methods. Shapes: ``B`` examples, ``K`` components.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax

Array = jax.Array


@runtime_checkable
class Mixture(Protocol):
    """A mixture density: ``log_prob (B, *event_shape) -> (B,)``, ``component_log_prob -> (B, K)``."""

    num_components: int
    event_shape: tuple[int, ...]

    def init(self, key: Array, x: Array) -> dict: ...

    def log_prob(self, params: dict, x: Array) -> Array: ...

    def component_log_prob(self, params: dict, x: Array) -> Array: ...


@runtime_checkable
class PartitionedMixture(Protocol):
    """A mixture whose components start apart, from a k-means partition of the init batch."""

    def init_with_partition(self, key: Array, x: Array, *args) -> tuple[dict, Any]: ...

    def partition_features(self, params: dict | None, x: Array) -> Array: ...


@runtime_checkable
class InputPartitioner(Protocol):
    """A partitioned mixture that partitions its input and so can start from centroids fitted elsewhere
    (``init_with_partition(key, x, centroids)``) when ``partitions_input`` is True (GenMM)."""

    partitions_input: bool

    def kmeans(self, key: Array, features: Array) -> Any: ...


@runtime_checkable
class LatentPlacer(Protocol):
    """A mixture whose latent Gaussians can be placed at a partition of many examples' latents (LatMM)."""

    partition_space: str

    def top_latents(self, params: dict, x: Array) -> Array: ...

    def place_latent_gaussians(self, key: Array, params: dict, z: Array, features: Array | None = None) -> Any: ...


@runtime_checkable
class ComponentSampler(Protocol):
    """A mixture that samples each component apart: ``(K, n, *event_shape)``."""

    def component_samples(self, params: dict, key: Array, n: int, temperature: float = 1.0) -> Array: ...


@runtime_checkable
class CheckedPreprocessor(Protocol):
    """A preprocessor that refuses raw data it cannot take, before a run starts (``Dequantizer``)."""

    def __call__(self, key: Array, raw: Array) -> Array: ...

    def check(self, raw) -> None: ...


@runtime_checkable
class LikelihoodUnits(Protocol):
    """A preprocessor that reports a continuous mean ``log p(x)`` in the raw data's units per dimension."""

    def nats_per_dim(self, continuous_log_prob: Array) -> Array: ...

    def bits_per_dim(self, continuous_log_prob: Array) -> Array: ...


@runtime_checkable
class Quantizer(Protocol):
    """A preprocessor that maps model samples back to data (``Dequantizer``: to uint8 images)."""

    def quantize(self, x: Array) -> Array: ...
