"""Sample-quality metrics on feature arrays (the paper's Figs. 4-5): IS, FID, MMD and 1-NN.

    mean, std = inception_score(probs)             # probs: (n, C) class probabilities
    fid = frechet_distance(real, fake)              # features: (n, F), (m, F)
    fid = frechet_distance_from_statistics(mu1, s1, mu2, s2)
    mmd_value = mmd(real, fake)                     # sqrt of the biased MMD^2, Gaussian kernel
    acc = one_nn_accuracy(real, fake)               # leave-one-out 1-NN over real ∪ fake; 0.5 is ideal

Conventions are those of the framework the paper used (Xu et al. 2018, xuqiantong/GAN-Metrics):
the MMD kernel's bandwidth is scaled by the mean real-real squared distance, and the MMD
reported is the square root of the biased estimate. Pairwise distances are computed in
row blocks of ``block_size`` (``block_size x (n + m)`` numbers at a time), so that 10k x 10k
distance matrices never sit in memory. Every function is a pure JAX function and runs under
``jit`` (with ``block_size`` and ``num_splits`` static); the input checks that need values (NaN,
probabilities that do not sum to 1) run when the inputs are concrete arrays.
"""
from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import jax.scipy.special
import numpy as np

from emflow import checks
from emflow.bijectors.base import Array

HIGHEST = jax.lax.Precision.HIGHEST
DEFAULT_BLOCK = 1024


def _concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_features(name: str, *arrays) -> None:
    """Refuse feature arrays that are not 2-D, have fewer than 2 rows, differ in width, or hold NaN/Inf."""
    widths = set()
    for i, a in enumerate(arrays):
        shape = np.shape(a)
        if len(shape) != 2:
            raise ValueError(f"{name}: features must be a 2-D array (n, F), got shape {shape} for argument {i}")
        if shape[0] < 2:
            raise ValueError(f"{name}: needs at least 2 samples per set, got {shape[0]} for argument {i}")
        widths.add(shape[1])
        if _concrete(a) and not np.all(np.isfinite(np.asarray(a))):
            raise ValueError(f"{name}: features hold NaN or Inf (argument {i})")
    if len(widths) > 1:
        raise ValueError(f"{name}: feature arrays must have the same width, got {sorted(widths)}")


# ---------------------------------------------------------------------------------------------- IS


def inception_score(probs: Array, num_splits: int = 10) -> tuple[Array, Array]:
    """``exp(E_x KL(p(y|x) || p(y)))`` over ``num_splits`` equal splits of ``probs: (n, C)``: ``(mean, std)``.

    ``p(y)`` is each split's mean row. Identical rows give exactly 1; one-hot rows of C
    distinct classes, equally often, give C. Rows must be probabilities (non-negative,
    summing to 1 within 1e-3); ``0 log 0 = 0``. A remainder of ``n mod num_splits`` rows is dropped.
    """
    shape = np.shape(probs)
    if len(shape) != 2 or shape[0] < 2:
        raise ValueError(f"inception_score: probs must have shape (n >= 2, C), got {shape}")
    if not 1 <= num_splits <= shape[0]:
        raise ValueError(f"inception_score: num_splits must lie in [1, n = {shape[0]}], got {num_splits}")
    if _concrete(probs):
        p = np.asarray(probs, np.float64)
        if not np.all(np.isfinite(p)):
            raise ValueError("inception_score: probs hold NaN or Inf")
        sums = p.sum(axis=1)
        if np.any(p < 0) or np.max(np.abs(sums - 1.0)) > 1e-3:
            raise ValueError(f"inception_score: every row of probs must be a probability vector (>= 0, summing "
                             f"to 1); row sums range over [{sums.min():.6g}, {sums.max():.6g}], min entry {p.min():.3g}")
    return _inception_score(jnp.asarray(probs, jnp.float32), num_splits)


@functools.partial(jax.jit, static_argnums=1)
def _inception_score(probs: Array, num_splits: int) -> tuple[Array, Array]:
    per = probs.shape[0] // num_splits
    splits = probs[: per * num_splits].reshape(num_splits, per, -1)
    marginal = jnp.mean(splits, axis=1, keepdims=True)
    # xlogy(0, .) = 0: a class a row gives no probability adds nothing
    kl = jnp.sum(jax.scipy.special.xlogy(splits, splits) - jax.scipy.special.xlogy(splits, marginal), axis=2)
    scores = jnp.exp(jnp.mean(kl, axis=1))
    return jnp.mean(scores), jnp.std(scores)


# --------------------------------------------------------------------------------------------- FID


def feature_statistics(features: Array) -> tuple[Array, Array]:
    """``(mean: (F,), covariance: (F, F))`` of ``features: (n, F)``, the unbiased (n - 1) covariance."""
    check_features("feature_statistics", features)
    return _statistics(jnp.asarray(features))


@jax.jit
def _statistics(features: Array) -> tuple[Array, Array]:
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    f = features.astype(dtype)
    mu = jnp.mean(f, axis=0)
    centred = f - mu
    cov = jnp.matmul(centred.T, centred, precision=HIGHEST) / (f.shape[0] - 1)
    return mu, cov


def frechet_distance_from_statistics(mu1: Array, sigma1: Array, mu2: Array, sigma2: Array) -> Array:
    """``||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)``, the Fréchet distance of two Gaussians.

    The matrix square root comes from symmetric eigendecompositions (``S1^1/2`` of S1, then
    of the symmetric ``S1^1/2 S2 S1^1/2``), which is stable where ``scipy.linalg.sqrtm`` of the
    non-symmetric ``S1 S2`` is not. Eigenvalues that rounding makes slightly negative count as
    0 (the matrices are positive semi-definite). float64 when ``jax_enable_x64`` is on, else
    float32 (against scipy's float64 ``sqrtm`` formula: relative error 2.4e-6 on 64-dimensional
    random features, 2e-8 on 128-dimensional ones; ``tests/test_metrics.py`` bounds it by 1e-4).
    """
    d = np.shape(mu1)
    if len(d) != 1 or np.shape(mu2) != d or np.shape(sigma1) != d * 2 or np.shape(sigma2) != d * 2:
        raise ValueError(f"frechet_distance_from_statistics: expected mu (F,) and sigma (F, F) for both sets, got "
                         f"{np.shape(mu1)}, {np.shape(sigma1)}, {np.shape(mu2)}, {np.shape(sigma2)}")
    return _frechet(jnp.asarray(mu1), jnp.asarray(sigma1), jnp.asarray(mu2), jnp.asarray(sigma2))


def _psd_sqrt(s: Array) -> Array:
    w, v = jnp.linalg.eigh((s + s.T) / 2)
    return jnp.matmul(v * jnp.sqrt(jnp.maximum(w, 0.0))[None, :], v.T, precision=HIGHEST)


@jax.jit
def _frechet(mu1, sigma1, mu2, sigma2) -> Array:
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    mu1, sigma1, mu2, sigma2 = (a.astype(dtype) for a in (mu1, sigma1, mu2, sigma2))
    root1 = _psd_sqrt(sigma1)
    middle = jnp.matmul(jnp.matmul(root1, sigma2, precision=HIGHEST), root1, precision=HIGHEST)
    w = jnp.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = jnp.sum(jnp.sqrt(jnp.maximum(w, 0.0)))
    diff = mu1 - mu2
    return jnp.dot(diff, diff, precision=HIGHEST) + jnp.trace(sigma1) + jnp.trace(sigma2) - 2.0 * trace_sqrt


def frechet_distance(real: Array, fake: Array) -> Array:
    """The Fréchet distance (FID, on a classifier's features) of ``real: (n, F)`` and ``fake: (m, F)``."""
    check_features("frechet_distance", real, fake)
    return _frechet(*_statistics(jnp.asarray(real)), *_statistics(jnp.asarray(fake)))


# ------------------------------------------------------------------------------------ distances


def _blocks(x: Array, block_size: int) -> tuple[Array, int]:
    """``x: (n, F)`` padded with zero rows to a multiple of ``block_size``, as ``(num_blocks, block_size, F)``."""
    n = x.shape[0]
    num = -(-n // block_size)
    padded = jnp.concatenate([x, jnp.zeros((num * block_size - n, x.shape[1]), x.dtype)])
    return padded.reshape(num, block_size, x.shape[1]), n


def _squared_distances(a: Array, b: Array) -> Array:
    cross = jnp.matmul(a, b.T, precision=HIGHEST)
    return jnp.maximum(jnp.sum(a**2, 1)[:, None] - 2.0 * cross + jnp.sum(b**2, 1)[None, :], 0.0)


def _kernel_sum(a: Array, b: Array, scale: Array, block_size: int) -> Array:
    """``sum_ij exp(-||a_i - b_j||^2 / scale)``, in row blocks of ``a``."""
    blocks, n = _blocks(a, block_size)
    valid = (jnp.arange(blocks.shape[0] * block_size) < n).reshape(blocks.shape[:2])

    def block_sum(args):
        rows, mask = args
        k = jnp.exp(-_squared_distances(rows, b) / scale)
        return jnp.sum(jnp.where(mask[:, None], k, 0.0))

    return jnp.sum(jax.lax.map(block_sum, (blocks, valid)))


# --------------------------------------------------------------------------------------------- MMD


def mmd(real: Array, fake: Array, sigma: float = 1.0, block_size: int = DEFAULT_BLOCK) -> Array:
    """``sqrt(MMD^2_b)``, the square root of the biased MMD estimate, with a Gaussian kernel.

    ``k(x, y) = exp(-||x - y||^2 / (2 sigma^2 s))`` with ``s`` the mean squared distance over
    all pairs of ``real`` (diagonal included), as xuqiantong/GAN-Metrics sets it (sigma 1).
    ``MMD^2_b = mean k(real, real) + mean k(fake, fake) - 2 mean k(real, fake)``, every mean over
    all pairs including ``i = j``. 0 for identical sets; symmetric in the two sets only for
    a fixed bandwidth (``s`` comes from ``real``).
    """
    check_features("mmd", real, fake)
    checks.integer("mmd", "block_size", block_size, 1)
    if not sigma > 0:
        raise ValueError(f"mmd: sigma must be > 0, got {sigma!r}")
    return _mmd(jnp.asarray(real, jnp.float32), jnp.asarray(fake, jnp.float32), sigma, block_size)


@functools.partial(jax.jit, static_argnums=(3,))
def _mmd(real: Array, fake: Array, sigma, block_size: int) -> Array:
    # mean_ij ||r_i - r_j||^2 = 2 (mean ||r_i||^2 - ||mean r||^2): no pairs needed
    mean = jnp.mean(real, axis=0)
    s = 2.0 * (jnp.mean(jnp.sum(real**2, axis=1)) - jnp.dot(mean, mean, precision=HIGHEST))
    scale = 2.0 * sigma**2 * s
    n, m = real.shape[0], fake.shape[0]
    value = (_kernel_sum(real, real, scale, block_size) / n**2 + _kernel_sum(fake, fake, scale, block_size) / m**2
             - 2.0 * _kernel_sum(real, fake, scale, block_size) / (n * m))
    return jnp.sqrt(jnp.maximum(value, 0.0))  # rounding can leave a tiny negative estimate for identical sets


# -------------------------------------------------------------------------------------------- 1-NN


def one_nn_accuracy(real: Array, fake: Array, block_size: int = DEFAULT_BLOCK) -> Array:
    """Leave-one-out 1-nearest-neighbour accuracy over ``real ∪ fake`` (Euclidean): a scalar in [0, 1].

    Every sample is classified as real or fake by its nearest other sample; the accuracy is
    the fraction classified correctly. 0.5 means the sets cannot be told apart (ideal), 1.0
    that every sample's nearest neighbour is from its own set. Ties go to the lower index.
    """
    check_features("one_nn_accuracy", real, fake)
    checks.integer("one_nn_accuracy", "block_size", block_size, 1)
    correct = _one_nn_correct(jnp.asarray(real, jnp.float32), jnp.asarray(fake, jnp.float32), block_size)
    return correct / (np.shape(real)[0] + np.shape(fake)[0])  # a count over n: exactly 1.0 when all are right


@functools.partial(jax.jit, static_argnums=(2,))
def _one_nn_correct(real: Array, fake: Array, block_size: int) -> Array:
    both = jnp.concatenate([real, fake])
    is_real = jnp.arange(both.shape[0]) < real.shape[0]
    blocks, n = _blocks(both, block_size)
    index = jnp.arange(blocks.shape[0] * block_size).reshape(blocks.shape[:2])

    def block_nearest(args):
        rows, idx = args
        d2 = _squared_distances(rows, both)
        d2 = jnp.where(idx[:, None] == jnp.arange(both.shape[0])[None, :], jnp.inf, d2)  # leave one out
        return jnp.argmin(d2, axis=1)

    nearest = jax.lax.map(block_nearest, (blocks, index)).reshape(-1)[:n]
    correct = is_real[nearest] == is_real
    chex.assert_shape(correct, (n,))
    return jnp.sum(correct.astype(jnp.int32))
