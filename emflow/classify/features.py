"""Features for the classifier: the fitted preprocessor, feature symmetries and the per-class log density."""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Literal

import jax
import jax.numpy as jnp
import numpy as np

from emflow import checks
from emflow import data

Array = jax.Array
Preprocessing = Literal["dequantize", "standardize", "none"]


@dataclasses.dataclass(frozen=True, eq=False)
class FeaturePreprocessor:
    """Raw features -> the flows' input, ``z = (x + u - mean) / scale``, fitted on a training set.

    Modes:

    - ``"dequantize"``: integer features; ``u ~ U[0, noise)`` while training (uniform
      dequantization: the flow then models the probability mass of each integer
      cell), and at prediction ``u = noise / 2`` (the cell's centre) or, with
      ``eval_samples = S > 0``, ``log p`` averaged in probability over S draws of ``u``
      (a Monte-Carlo estimate of the cell's mass, the same draws for every class).
    - ``"standardize"``: ``u = 0``.
    - ``"none"``: ``u = 0``, ``mean = 0``, ``scale = 1``.

    ``mean`` and ``scale`` are the training set's (after adding ``noise / 2`` where
    dequantizing). ``log_det = -sum(log scale)`` converts a density of ``z`` back to
    one of the original features, ``log p(x) = log p(z) + log_det``; it is the same
    for every class (one preprocessor for all), so it never changes a prediction,
    but it keeps ``log_likelihood`` in the units of the original features.

    Attributes:
      mode: ``"dequantize"``, ``"standardize"`` or ``"none"``.
      mean, scale: ``(D,)`` float32.
      noise: width of the dequantization noise, in feature units (1 for integers).
    """

    mode: Preprocessing
    mean: np.ndarray
    scale: np.ndarray
    noise: float = 1.0

    def __post_init__(self):
        one_of = ("dequantize", "standardize", "none")
        if self.mode not in one_of:
            raise ValueError(f"FeaturePreprocessor: mode must be one of {one_of}, got {self.mode!r}")
        mean, scale = np.asarray(self.mean), np.asarray(self.scale)
        if mean.ndim != 1 or scale.shape != mean.shape:
            raise ValueError(f"FeaturePreprocessor: mean and scale must both have shape (D,), got {mean.shape} and "
                             f"{scale.shape}")
        if not np.all(np.isfinite(scale) & (scale > 0)):
            raise ValueError(f"FeaturePreprocessor: scale must be finite and > 0 everywhere, got {scale.tolist()[:8]}")
        checks.number("FeaturePreprocessor", "noise", self.noise, 0.0)

    @classmethod
    def fit(cls, x: np.ndarray, mode: Preprocessing = "dequantize", noise: float = 1.0) -> "FeaturePreprocessor":
        """Statistics of ``x: (N, D)`` (an unknown ``mode`` is refused when the result is built)."""
        x = np.asarray(x, np.float64)
        d = x.shape[1]
        if mode == "none":
            return cls(mode, np.zeros(d, np.float32), np.ones(d, np.float32), 0.0)
        shift = noise / 2 if mode == "dequantize" else 0.0
        # Var(x + u) = Var(x) + noise^2 / 12 for the dequantized features.
        var = x.var(axis=0) + (noise**2 / 12 if mode == "dequantize" else 0.0)
        scale = np.sqrt(np.maximum(var, 1e-12))
        return cls(mode, (x.mean(axis=0) + shift).astype(np.float32), scale.astype(np.float32),
                   float(noise) if mode == "dequantize" else 0.0)

    @property
    def num_features(self) -> int:
        return int(self.mean.shape[0])

    @property
    def log_det(self) -> float:
        """``log |dz/dx|`` of the affine map, a constant."""
        return float(-np.sum(np.log(self.scale.astype(np.float64))))

    def train_transform(self, key: Array, x: Array) -> Array:
        """``(B, D)`` raw -> ``(B, D)`` flow input with fresh noise."""
        u = self.noise * jax.random.uniform(key, x.shape) if self.mode == "dequantize" else 0.0
        return (x + u - self.mean) / self.scale

    def eval_transform(self, x: Array, u: Array | float | None = None) -> Array:
        """``(B, D)`` raw -> flow input at the noise ``u`` (default: the cell centres)."""
        if u is None:
            u = self.noise / 2
        if self.mode != "dequantize":
            u = 0.0
        return (x + u - self.mean) / self.scale


def orbit(x: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """``x: (N, D)`` -> ``(G * N, D)``: every row permuted by each of ``perms: (G, D)`` (augmentation)."""
    if np.ndim(x) != 2 or np.ndim(perms) != 2 or np.shape(perms)[1] != np.shape(x)[1]:
        raise ValueError(f"orbit: expected x (N, D) and perms (G, D), got shapes {np.shape(x)} and {np.shape(perms)}")
    return np.concatenate([x[:, perm] for perm in perms])


SYMMETRY_STREAM = 7919  # fold_in index of the random symmetries' PRNG stream


def class_log_prob(model: Any, pre: FeaturePreprocessor, perms: np.ndarray | None, samples: int
                   ) -> Callable[[dict, Array, Array], Array]:
    """``(params, raw: (n, D), key) -> (n,)`` log p(raw; params) of one class's model on the flows' input scale.

    The input is ``pre.eval_transform(raw)`` (the cell centres), or with ``samples > 0`` (and
    dequantizing) ``log p`` averaged in probability over ``samples`` draws of the noise; with
    ``perms: (G, D)`` the symmetrised density ``(1/G) sum_g p(raw[:, perm_g])``. The
    preprocessor's constant log-det is not included.
    """
    checks.mixture("class_log_prob", model)
    checks.integer("class_log_prob", "samples", samples, 0)
    event = tuple(model.event_shape)
    perms = None if perms is None else jnp.asarray(perms)

    def unsymmetrised(params, raw, key):
        if samples <= 0 or pre.mode != "dequantize":
            return model.log_prob(params, pre.eval_transform(raw).reshape((-1,) + event))
        u = pre.noise * jax.random.uniform(key, (samples,) + raw.shape)
        z = jax.vmap(lambda us: pre.eval_transform(raw, us))(u).reshape((-1,) + event)
        lp = model.log_prob(params, z).reshape(samples, raw.shape[0])
        return jax.nn.logsumexp(lp, axis=0) - math.log(samples)

    def per_class(params, raw, key):
        if perms is None:
            return unsymmetrised(params, raw, key)
        lp = jax.vmap(lambda perm: unsymmetrised(params, raw[:, perm], key))(perms)  # (G, n)
        return jax.nn.logsumexp(lp, axis=0) - math.log(perms.shape[0])

    return per_class


# Named feature symmetries for ``MixtureClassifier(feature_symmetries=...)``: name -> () -> (G, D) permutations.
SYMMETRIES: dict[str, Callable[[], np.ndarray]] = {
    "satimage_dihedral": data.satimage_dihedral_permutations,
}


def feature_permutations(symmetries: str | np.ndarray | None, num_features: int) -> np.ndarray | None:
    """``feature_symmetries`` (None, a name from ``SYMMETRIES`` or a ``(G, D)`` array) as checked int32 permutations."""
    if symmetries is None:
        return None
    if isinstance(symmetries, str):
        if symmetries not in SYMMETRIES:
            raise ValueError(f"unknown feature_symmetries {symmetries!r}; known: {sorted(SYMMETRIES)}")
        symmetries = SYMMETRIES[symmetries]()
    perms = np.asarray(symmetries)
    if perms.ndim != 2 or perms.shape[1] != num_features or not np.issubdtype(perms.dtype, np.integer):
        raise ValueError(
            f"feature_symmetries must be integer permutations of shape (G, {num_features}), "
            f"got {perms.dtype} of shape {perms.shape}")
    bad = [g for g, row in enumerate(perms) if not np.array_equal(np.sort(row), np.arange(num_features))]
    if bad:
        raise ValueError(f"feature_symmetries rows {bad[:5]} are not permutations of 0..{num_features - 1}")
    return perms.astype(np.int32)


def glow_image_shape(num_features: int) -> tuple[int, int, int]:
    """``D -> (s, s, 1)`` for a square ``D = s^2`` with even ``s`` (4x4x1 for Letter, 6x6x1 for Satimage)."""
    checks.integer("glow_image_shape", "num_features", num_features, 1)
    s = int(round(math.sqrt(num_features)))
    if s * s != num_features or s % 2:
        raise ValueError(
            f"flow='glow' reshapes the features to an (s, s, 1) image with even s; {num_features} features "
            "is not such a square (use flow='vector')")
    return (s, s, 1)
