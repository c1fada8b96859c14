"""Maximum-likelihood classification with one GenMM / LatMM per class (the paper's section IV-D).

    fit:      Phi_y  <- EM on the training examples of class y, for every class y
    predict:  argmax_y  log p(x; Phi_y) + log P(y)

All classes share one model configuration, so their parameters are stacked on a
leading class axis ``(C, ...)`` and trained as one jitted program: every
gradient step draws one batch of the same size from *each* class and applies
``emflow.train.train_step`` to every class through ``jax.vmap``; an epoch is one
``lax.scan`` over ``ceil(max_class_size / batch_size)`` steps (a smaller class
wraps around its own permutation, so every class sees every one of its
examples at least once per epoch). The EM prior update of each class uses that
class's own responsibilities. ``add_class`` trains a new stack of one class
with the same program and appends it: the other classes' parameters are not
touched.

    clf = MixtureClassifier(model="genmm", num_components=4, epochs=60)
    clf.fit(x_train, y_train)                      # x: (N, D) numbers, y: (N,) labels
    clf.predict(x_test)                            # (n,) labels from clf.classes_
    clf.log_likelihood(x_test)                     # (n, C) log p(x; Phi_y), nats
    clf.add_class(x_new, "new label")              # trains only the new class

Features go through a ``FeaturePreprocessor`` fitted on the whole training set
(shared by every class, fixed by ``fit``; ``add_class`` reuses it), see there.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, Callable, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

try:
    import sklearn.base
    import sklearn.exceptions
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import validate_data
except ImportError as err:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError("emflow.classify needs scikit-learn (its estimator API): pip install 'emflow[classify]'") from err

from emflow import data, train
from emflow.flow import Whitened
from emflow.genmm import GenMM
from emflow.glow import Glow
from emflow.latmm import LatMM
from emflow.vector_flow import VectorFlow

Array = jax.Array
Preprocessing = Literal["dequantize", "standardize", "none"]


class NotFittedError(sklearn.exceptions.NotFittedError):
    """The classifier was used before ``fit`` (scikit-learn's ``NotFittedError``: a ValueError and AttributeError)."""


# ---------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class FeaturePreprocessor:
    """Raw features -> the flows' input, ``z = (x + u - mean) / scale``, fitted on a training set.

    Modes:
      ``"dequantize"``: integer features; ``u ~ U[0, noise)`` while training (uniform
        dequantization: the flow then models the probability mass of each integer
        cell), and at prediction ``u = noise / 2`` (the cell's centre) or, with
        ``eval_samples = S > 0``, ``log p`` averaged in probability over S draws of ``u``
        (a Monte-Carlo estimate of the cell's mass, the same draws for every class).
      ``"standardize"``: ``u = 0``.
      ``"none"``: ``u = 0``, ``mean = 0``, ``scale = 1``.

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

    @classmethod
    def fit(cls, x: np.ndarray, mode: Preprocessing = "dequantize", noise: float = 1.0) -> "FeaturePreprocessor":
        """Statistics of ``x: (N, D)``."""
        if mode not in ("dequantize", "standardize", "none"):
            raise ValueError(f"FeaturePreprocessor: mode must be 'dequantize', 'standardize' or 'none', got {mode!r}")
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
    return np.concatenate([x[:, perm] for perm in perms])


_SYMMETRY_STREAM = 7919  # fold_in index of the random symmetries' PRNG stream


def class_log_prob(model: Any, pre: FeaturePreprocessor, perms: np.ndarray | None, samples: int
                   ) -> Callable[[dict, Array, Array], Array]:
    """``(params, raw: (n, D), key) -> (n,)`` log p(raw; params) of one class's model on the flows' input scale.

    The input is ``pre.eval_transform(raw)`` (the cell centres), or with ``samples > 0`` (and
    dequantizing) ``log p`` averaged in probability over ``samples`` draws of the noise; with
    ``perms: (G, D)`` the symmetrised density ``(1/G) sum_g p(raw[:, perm_g])``. The
    preprocessor's constant log-det is not included.
    """
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


# ---------------------------------------------------------------------------
# Batched per-class EM
# ---------------------------------------------------------------------------


def class_permutation(key: Array, n: Array, size: int) -> Array:
    """``(size,)`` int32 whose first ``n`` entries are a random permutation of ``0..n-1`` (``n`` traced)."""
    u = jax.random.uniform(key, (size,))
    u = jnp.where(jnp.arange(size) < n, u, 2.0)
    return jnp.argsort(u).astype(jnp.int32)


@dataclasses.dataclass(frozen=True, eq=False)
class StackTrainer:
    """Trains C models of one configuration at once, each on its own class's data.

    Attributes:
      model: a ``GenMM`` or ``LatMM`` on ``event_shape``.
      config: the ``TrainConfig`` (epochs, batch_size, em_every, learning rate schedule, ...).
      preprocessor: the fitted ``FeaturePreprocessor``.
      symmetries: ``(G, D)`` feature permutations the class densities should be invariant
        to, or None; every training example is permuted by one of them drawn at random
        (data augmentation), see ``MixtureClassifier``'s ``feature_symmetries``.
      ema_decay: 0 (off) or the decay ``d`` of an exponential moving average of the flows'
        parameters over the gradient steps (Polyak averaging), used for prediction. Step
        ``t`` (from 0) uses ``min(d, (1 + t) / (10 + t))``, so the average forgets the
        initial parameters quickly. The mixture weights are EM's own, never averaged.

    Data: ``x: (C, N_max, D)`` float32, class ``c``'s examples in rows ``< counts[c]``
    (the rest padding, never read), ``counts: (C,)`` int32 >= 1.
    """

    model: Any
    config: train.TrainConfig
    preprocessor: FeaturePreprocessor
    symmetries: np.ndarray | None = None
    ema_decay: float = 0.0

    @property
    def optimizer(self):
        return train.make_optimizer(self.config)

    def steps_per_epoch(self, n_max: int) -> int:
        return int(math.ceil(n_max / self.config.batch_size))

    def _to_event(self, x: Array) -> Array:
        return x.reshape(x.shape[:-1] + tuple(self.model.event_shape))

    def _random_symmetry(self, key: Array, raw: Array) -> Array:
        """``raw: (..., D)`` with every row permuted by a random one of ``symmetries`` (unchanged if None).

        Draws from ``key``'s own symmetry stream, so the other streams of ``key`` are the same with
        and without symmetries.
        """
        if self.symmetries is None:
            return raw
        perms = jnp.asarray(self.symmetries)
        g = jax.random.randint(jax.random.fold_in(key, _SYMMETRY_STREAM), raw.shape[:-1], 0, perms.shape[0])
        return jnp.take_along_axis(raw, perms[g], axis=-1)

    def init_class(self, key: Array, xc: Array, n: Array) -> train.EMState:
        """One class's ``EMState`` from ``key``, ActNorm on its own examples ``xc[:n]`` (``xc``: padded ``(N_max, D)``)."""
        size = min(self.config.init_batch_size, xc.shape[0])
        k_perm, k_init, k_noise = jax.random.split(key, 3)
        idx = class_permutation(k_perm, n, xc.shape[0])[jnp.arange(size) % n]
        raw = self._random_symmetry(key, xc[idx])
        batch = self._to_event(self.preprocessor.train_transform(k_noise, raw))
        params = self.model.init(k_init, batch)
        return train.init_state(self.model, self.optimizer, params)

    def init(self, keys: Array, x: Array, counts: Array) -> train.EMState:
        """Stacked ``EMState`` ``(C, ...)``; class ``c`` from ``keys[c]``, ActNorm on its own examples.

        One compiled program, vmapped over the classes. (It used to run eagerly, class by class,
        because the LU layers' random rotations were LAPACK QR/LU custom calls, whose batched
        CPU kernel deadlocked its thread pool; ``bijectors.small_linalg`` removed those calls.
        ``python -m benchmarks.classifier_init`` measures the two.)
        """
        return self._compiled_init(keys, x, counts)

    @functools.cached_property
    def _compiled_init(self):
        return jax.jit(jax.vmap(self.init_class))

    @functools.cached_property
    def _compiled_epoch(self):  # one per trainer: a refit on data of the same padded shape reuses it
        return jax.jit(self.epoch)

    def _update_average(self, average: dict, params: dict, step: Array) -> dict:
        """One step of the parameters' moving average (``ema_decay``; a no-op when it is 0)."""
        if not self.ema_decay:
            return average
        d = jnp.minimum(self.ema_decay, (1.0 + step) / (10.0 + step))
        return jax.tree.map(lambda a, p: d * a + (1.0 - d) * p, average, params)

    def epoch(self, state: train.EMState, average: dict, keys: Array, x: Array, counts: Array, epoch: Array
              ) -> tuple[train.EMState, dict, Array]:
        """One epoch for every class: ``steps_per_epoch`` vmapped ``train_step``s in one ``lax.scan``.

        Returns the new state, the parameters' moving average (``ema_decay``) and ``(C,)`` the
        epoch's mean ``-log p(z; Phi_old)`` per class. Ends with an EM update (pi <- mean gamma,
        Phi_old <- Phi) every ``em_every`` epochs and after the last epoch.
        """
        cfg = self.config
        num_classes, n_max = x.shape[:2]
        batch = cfg.batch_size
        optimizer = self.optimizer
        state = jax.vmap(train.start_epoch)(state)
        data_keys = jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(k, 1), epoch))(keys)
        noise_keys = jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(k, 2), epoch))(keys)
        perms = jax.vmap(lambda k, n: class_permutation(k, n, n_max))(data_keys, counts)  # (C, N_max)
        rows = jnp.arange(num_classes)[:, None]

        def body(carry, i):
            state, average = carry
            positions = (i * batch + jnp.arange(batch))[None, :] % counts[:, None]  # (C, B)
            raw = x[rows, perms[rows, positions]]                                    # (C, B, D)
            step_keys = jax.vmap(lambda k: jax.random.fold_in(k, i))(noise_keys)
            raw = jax.vmap(self._random_symmetry)(step_keys, raw)
            inputs = self._to_event(jax.vmap(self.preprocessor.train_transform)(step_keys, raw))
            state, metrics = jax.vmap(lambda s, xb: train.train_step(self.model, optimizer, s, xb))(state, inputs)
            average = self._update_average(average, state.params, epoch * self.steps_per_epoch(n_max) + i)
            return (state, average), metrics["nll"]

        (state, average), _ = jax.lax.scan(body, (state, average), jnp.arange(self.steps_per_epoch(n_max)))
        mean_nll = state.nll_sum / state.gamma_count
        em_round = ((epoch + 1) % cfg.em_every == 0) | (epoch + 1 == cfg.epochs)
        state = jax.lax.cond(em_round, jax.vmap(train.em_update), lambda s: s, state)
        return state, average, mean_nll

    def held_out_loss(self, params: dict, x_val: Array, codes_val: Array, log_prior: Array) -> Array:
        """The early-stopping criterion on held-out examples ``x_val: (V, D)`` of classes ``codes_val: (V,)``.

        With C >= 2 classes: the classifier's mean log-loss ``-log P(y | x)``, from every class's
        density (the one ``MixtureClassifier`` predicts with, see ``class_log_prob``) and the
        class prior ``log_prior: (C,)``. One epoch is chosen for all the classes together, so
        their densities stay comparable. With one class (``add_class``): its mean ``-log p(x)``
        per flow-input dimension. A scalar.
        """
        per_class = class_log_prob(self.model, self.preprocessor, self.symmetries, 0)
        lp = jax.vmap(per_class, in_axes=(0, None, None))(params, x_val, jax.random.PRNGKey(0))  # (C, V)
        if lp.shape[0] == 1:
            return -jnp.mean(lp) / self.preprocessor.num_features
        log_posterior = jax.nn.log_softmax(lp + log_prior[:, None], axis=0)
        return -jnp.mean(jnp.take_along_axis(log_posterior, codes_val[None, :], axis=0))

    def _prediction_params(self, state: train.EMState, average: dict) -> dict:
        return {**average, "log_pi": state.params["log_pi"]} if self.ema_decay else state.params

    def fit(self, keys: Array, x: np.ndarray, counts: np.ndarray, log: Callable[[str], None] | None = None,
            validation: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None, patience: int | None = None,
            num_epochs: int | None = None) -> "TrainedStack":
        """Train the stack for up to ``config.epochs`` epochs: one compiled epoch program, called once per epoch.

        With ``validation = (x_val: (V, D), codes_val: (V,), log_prior: (C,))`` (early stopping),
        ``held_out_loss`` is measured at the start (the init) and after every epoch, and the
        parameters of the best epoch are kept (for all the classes together); training stops
        once it has not improved for ``patience`` epochs (None: never early). Without it, the
        last epoch's parameters. ``num_epochs`` (<= ``config.epochs``) stops after that many
        epochs, with the learning-rate schedule of ``config.epochs`` (a refit to a chosen epoch).

        Returns a ``TrainedStack``: the parameters to predict with (``state.params``, or with
        ``ema_decay`` their moving average with EM's ``log_pi``), the per-epoch ``(C,)`` mean
        training NLL (nats per flow-input dimension, of the standardized features), the
        held-out loss (epoch 0 first) and the chosen epoch (0: the init).

        Raises:
          NonFiniteLossError: a class met a NaN/Inf loss or gradient.
        """
        x = jnp.asarray(x, jnp.float32)
        counts = jnp.asarray(counts, jnp.int32)
        state = self.init(keys, x, counts)
        average = state.params if self.ema_decay else {}
        epoch_fn = self._compiled_epoch
        dims = self.preprocessor.num_features
        history, val_history, best_epoch = [], [], None
        if validation is not None:
            held_out = tuple(jnp.asarray(v) for v in validation)
            loss_fn = jax.jit(self.held_out_loss)
            best, best_epoch = self._prediction_params(state, average), 0
            val_history.append(float(loss_fn(best, *held_out)))
        t0 = time.time()
        for e in range(self.config.epochs if num_epochs is None else min(num_epochs, self.config.epochs)):
            state, average, nll = epoch_fn(state, average, keys, x, counts, jnp.asarray(e, jnp.int32))
            history.append(np.asarray(nll) / dims)
            stop = False
            if validation is not None:
                current = self._prediction_params(state, average)
                val_history.append(float(loss_fn(current, *held_out)))
                if val_history[-1] < val_history[best_epoch]:   # NaN is never better
                    best, best_epoch = current, e + 1
                stop = patience is not None and e + 1 - best_epoch >= patience
            if log is not None and (stop or e == 0 or (e + 1) % max(1, self.config.epochs // 10) == 0):
                held = f"  held-out loss {val_history[-1]:.4f}" if validation is not None else ""
                log(f"epoch {e + 1}/{self.config.epochs}: train NLL (nats/dim, standardized) "
                    f"mean over classes {float(np.mean(history[-1])):.4f}{held}  {time.time() - t0:.1f}s")
            if stop:
                if log is not None:
                    log(f"early stop after epoch {e + 1}: the held-out loss has not improved for {patience} epochs "
                        f"(best: epoch {best_epoch})")
                break
        bad = np.flatnonzero(np.asarray(state.nonfinite))
        if bad.size:
            raise train.NonFiniteLossError(
                f"non-finite loss or gradient while training class index(es) {bad.tolist()}: lower the "
                "learning rate or check the data")
        if validation is None:
            best, best_epoch = self._prediction_params(state, average), len(history)
        return TrainedStack(best, history, val_history, best_epoch)


class TrainedStack(NamedTuple):
    """What ``StackTrainer.fit`` returns.

    Attributes:
      params: the stacked ``(C, ...)`` parameters to predict with.
      history: per epoch, ``(C,)`` mean training NLL (nats per flow-input dimension).
      validation_history: the held-out loss at the init and after each epoch (empty without validation).
      best_epoch: the epoch ``params`` come from (0: the init).
    """

    params: dict
    history: list
    validation_history: list
    best_epoch: int


def stratified_holdout(codes: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """``(N,)`` bool, True for the held-out examples: ``max(1, round(fraction * n_c))`` of each class ``c``, at random.

    Args:
      codes: ``(N,)`` class codes.
      fraction: in (0, 1).
      seed: the draw's seed (the same split for the same seed and codes).
    """
    rng = np.random.default_rng(seed)
    held = np.zeros(len(codes), bool)
    for c in np.unique(codes):
        rows = np.flatnonzero(codes == c)
        held[rng.choice(rows, max(1, int(round(fraction * len(rows)))), replace=False)] = True
    return held


def pad_by_class(x: np.ndarray, codes: np.ndarray, num: int, n_max: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``x: (N, D)``, ``codes: (N,)`` in ``range(num)`` -> ``(num, n_max, D)`` float32 (class rows first, zeros
    after; ``n_max`` default: the largest class), ``(num,)`` int32 counts."""
    counts = np.bincount(codes, minlength=num).astype(np.int32)
    padded = np.zeros((num, int(counts.max()) if n_max is None else n_max, x.shape[1]), np.float32)
    for j in range(num):
        padded[j, : counts[j]] = x[codes == j]
    return padded, counts


# ---------------------------------------------------------------------------
# The estimator
# ---------------------------------------------------------------------------

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
    s = int(round(math.sqrt(num_features)))
    if s * s != num_features or s % 2:
        raise ValueError(
            f"flow='glow' reshapes the features to an (s, s, 1) image with even s; {num_features} features "
            "is not such a square (use flow='vector')")
    return (s, s, 1)


class MixtureClassifier(sklearn.base.ClassifierMixin, sklearn.base.BaseEstimator):
    """Generative classifier: one GenMM or LatMM per class, ``argmax_y log p(x; Phi_y) + log P(y)``.

    A scikit-learn estimator (``BaseEstimator``, ``ClassifierMixin``; it passes
    ``sklearn.utils.estimator_checks``, see ``tests/test_classify_sklearn.py``): ``fit(X, y)``,
    ``predict``, ``predict_proba``, ``score``, fitted attributes ending in ``_``, constructor
    arguments stored as given, so ``clone``, ``GridSearchCV``, ``Pipeline`` and
    ``cross_val_score`` work with it.

    Args:
      model: ``"genmm"`` or ``"latmm"``.
      num_components: K.
      flow: ``"vector"`` (``VectorFlow`` on the D features) or ``"glow"`` (1-level ``Glow`` on
        the features reshaped to ``(s, s, 1)``, the paper's choice: 4x4x1 for Letter, 6x6x1 for
        Satimage).
      flow_steps, hidden: depth and width of the flow (defaults: vector 6 x 64, glow 12 x 8 as
        the paper's code).
      image_shape, glow_levels: the Glow's ``(H, W, C)`` (default: the square ``(s, s, 1)``; NORB:
        ``(32, 64, 1)``) and number of levels.
      class_prior: ``"frequency"`` (training frequencies) or ``"uniform"``.
      preprocessing, noise: see ``FeaturePreprocessor``.
      eval_samples: noise draws per example at prediction (0: the cell centre).
      feature_symmetries: None, a ``(G, D)`` integer array whose rows are permutations of the
        D features (row 0 the identity) under which each class's distribution is known to be
        invariant, or a name from ``SYMMETRIES`` (``"satimage_dihedral"``: rotations and
        mirrors of Satimage's 3x3 pixel neighbourhood). Training permutes every example by a
        random one of them (augmentation; the preprocessor's statistics are those of the
        augmented set), and the class density is the symmetrised
        ``p_sym(x) = (1/G) sum_g p(x[perm_g])``, a proper density because a permutation has
        unit Jacobian, and exactly invariant when the rows form a group.
      ema_decay: 0, or predict with a moving average of the flows' parameters over the
        gradient steps (Polyak averaging; see ``StackTrainer``), e.g. 0.99.
      gaussian_start: each class's flow ends with a whitening layer fitted at init
        (``emflow.Whitened``) and the mixtures use their partition init, so a class's model
        starts at its fitted Gaussian (K = 1) or at the Gaussians of the K k-means parts of
        its examples (GenMM: one per generator; LatMM: the latent means at the parts). False:
        the paper's start (ActNorm only, every generator on the whole class). Needs a flow
        with a single latent (``flow="vector"`` or a one-level Glow).
      gaussian_reg: the whitening layer's regulariser, added to the covariance's diagonal in the
        flow's standardized coordinates (the features' scale is 1 there).
      early_stopping: hold out ``validation_fraction`` of each class's training examples
        (stratified, drawn from ``seed``), measure the classifier's held-out log-loss
        ``-log P(y | x)`` at the init and after every epoch, keep the best epoch's parameters
        (the init included; one epoch for all the classes, so that their densities stay
        comparable), and stop once it has not improved for ``patience`` epochs. The
        held-out examples are not trained on. (``add_class`` holds out part of the new
        class and judges it by its own held-out NLL.)
      refit: with early stopping, train again on all the examples (held-out ones included),
        from the same keys and with the same schedule, for the chosen number of epochs, and
        predict with that (``best_epoch_`` stays the chosen epoch).
      epochs, batch_size, learning_rate, warmup_steps, min_learning_rate, em_every: EM training
        (``emflow.train.TrainConfig``); ``batch_size`` examples of *each* class per step.
      component_axis: how GenMM maps over its K generators (default ``"vmap"``: the fastest
        compile for large K).
      eval_batch_size: examples per compiled likelihood evaluation.
      seed: every random number comes from it.
      verbose: print training progress.

    Fitted attributes: ``classes_`` (C,), ``class_counts_`` (C,), ``preprocessor_``, ``model_``
    (the per-class model), ``params_`` (its params with a leading (C,) axis), ``history_`` (per
    epoch, (C,) training NLL), ``validation_history_`` (the held-out log-loss, the init first;
    empty without early stopping), ``best_epoch_`` (the chosen epoch, 0 the init),
    ``fit_seconds_``.
    """

    def __init__(self, model: str = "genmm", num_components: int = 1, flow: str = "vector",
                 flow_steps: int | None = None, hidden: int | None = None,
                 image_shape: tuple[int, int, int] | None = None, glow_levels: int = 1, class_prior: str = "frequency",
                 preprocessing: Preprocessing = "dequantize", noise: float = 1.0, eval_samples: int = 0,
                 feature_symmetries: str | np.ndarray | None = None, ema_decay: float = 0.0,
                 gaussian_start: bool = True, gaussian_reg: float = 0.1, early_stopping: bool = True,
                 validation_fraction: float = 0.1, patience: int = 20, refit: bool = True, epochs: int = 100, batch_size: int = 64, learning_rate: float = 2e-3, warmup_steps: int = 100,
                 min_learning_rate: float = 1e-4, em_every: int = 5, component_axis: str | None = "vmap",
                 eval_batch_size: int = 1000, seed: int = 0, verbose: bool = False):
        self.model = model
        self.num_components = num_components
        self.flow = flow
        self.flow_steps = flow_steps
        self.hidden = hidden
        self.image_shape = image_shape
        self.glow_levels = glow_levels
        self.class_prior = class_prior
        self.preprocessing = preprocessing
        self.noise = noise
        self.eval_samples = eval_samples
        self.feature_symmetries = feature_symmetries
        self.ema_decay = ema_decay
        self.gaussian_start = gaussian_start
        self.gaussian_reg = gaussian_reg
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.refit = refit
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.warmup_steps = warmup_steps
        self.min_learning_rate = min_learning_rate
        self.em_every = em_every
        self.component_axis = component_axis
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.verbose = verbose

    # -- configuration ------------------------------------------------------

    def set_params(self, **params) -> "MixtureClassifier":
        super().set_params(**params)
        if hasattr(self, "params_"):  # the likelihood was compiled for the old settings (e.g. eval_samples)
            self._log_prob_fn = self._batch_log_prob()
        return self

    def __getstate__(self):  # a compiled function does not pickle; it is rebuilt on load
        state = dict(super().__getstate__())  # a copy: object.__getstate__ may return __dict__ itself
        state.pop("_log_prob_fn", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if hasattr(self, "params_"):
            self._log_prob_fn = self._batch_log_prob()

    def _build_model(self, num_features: int):
        if self.model not in ("genmm", "latmm"):
            raise ValueError(f"MixtureClassifier: model must be 'genmm' or 'latmm', got {self.model!r}")
        if self.class_prior not in ("frequency", "uniform"):
            raise ValueError(
                f"MixtureClassifier: class_prior must be 'frequency' or 'uniform', got {self.class_prior!r}")
        if self.flow == "vector":
            flow = VectorFlow(num_features, num_steps=self.flow_steps or 6, hidden=self.hidden or 64)
        elif self.flow == "glow":
            shape = tuple(self.image_shape) if self.image_shape is not None else glow_image_shape(num_features)
            if math.prod(shape) != num_features:
                raise ValueError(f"MixtureClassifier: image_shape {shape} holds {math.prod(shape)} values, "
                                 f"but X has {num_features} features")
            flow = Glow(shape, num_levels=self.glow_levels, num_steps=self.flow_steps or 12,
                        hidden_channels=self.hidden or 8)
        else:
            raise ValueError(f"MixtureClassifier: flow must be 'vector' or 'glow', got {self.flow!r}")
        if not self.gaussian_start:  # the paper's start: every component from the whole class
            if self.model == "genmm":
                return GenMM(flow, self.num_components, component_axis=self.component_axis, init_strategy="shared")
            return LatMM(flow, self.num_components, init_strategy="shared")
        if not (math.isfinite(self.gaussian_reg) and self.gaussian_reg > 0):
            raise ValueError(f"MixtureClassifier: gaussian_reg must be a finite number > 0, got {self.gaussian_reg}")
        flow = Whitened(flow, float(self.gaussian_reg))
        if self.model == "genmm":
            return GenMM(flow, self.num_components, component_axis=self.component_axis, init_strategy="partition")
        return LatMM(flow, self.num_components, init_strategy="kmeans")

    def _train_config(self) -> train.TrainConfig:
        return train.TrainConfig(
            epochs=self.epochs, batch_size=self.batch_size, em_every=self.em_every,
            learning_rate=self.learning_rate, warmup_steps=self.warmup_steps,
            min_learning_rate=self.min_learning_rate, seed=self.seed, num_samples=0,
        )

    # -- validation ---------------------------------------------------------

    def _check_fitted(self, where: str) -> None:
        if not hasattr(self, "params_"):
            raise NotFittedError(f"MixtureClassifier.{where}: this classifier is not fitted yet; call fit(X, y) first")

    def _check_x(self, X, where: str, reset: bool, y=None):
        """scikit-learn's ``validate_data`` (2-D, numeric, dense, non-empty; ``n_features_in_``), then finite
        values and at least 2 features. Returns float32 ``X`` (and 1-D ``y`` when given)."""
        kwargs = dict(reset=reset, dtype=[np.float64, np.float32], ensure_all_finite=False)
        x, y = (validate_data(self, X, **kwargs), None) if y is None and not reset else validate_data(self, X, y, **kwargs)
        x = x.astype(np.float32)
        if x.shape[1] < 2:
            raise ValueError(f"MixtureClassifier.{where}: X has {x.shape[1]} feature(s) (shape={x.shape}); "
                             "the per-class flows need n_features >= 2")
        if not np.all(np.isfinite(x)):
            raise ValueError(
                f"MixtureClassifier.{where}: X holds {int(np.sum(~np.isfinite(x)))} NaN or Inf values; "
                "expected finite numbers")
        return x if y is None else (x, y)

    def _check_label_kind(self, labels: np.ndarray, where: str) -> None:
        fitted, given = self.classes_.dtype, np.asarray(labels).dtype
        kind = lambda dt: "number" if (np.issubdtype(dt, np.number) or dt == bool) else (
            "string" if dt.kind in "US" else dt.kind)
        if kind(fitted) != kind(given):
            raise TypeError(
                f"MixtureClassifier.{where}: labels of dtype {given} do not match the labels the classifier "
                f"was fitted with (dtype {fitted}, classes {self.classes_.tolist()[:10]})")

    # -- training -----------------------------------------------------------

    def _train_classes(self, x: np.ndarray, codes: np.ndarray, class_ids: np.ndarray):
        """Train one stack on ``x`` with class codes ``codes`` in ``range(len(class_ids))``;
        class ``j``'s key is ``fold_in(seed, class_ids[j])``. Returns ``(TrainedStack, counts)``,
        the counts of all the examples given (held-out ones included)."""
        num = len(class_ids)
        all_counts = np.bincount(codes, minlength=num).astype(np.int32)
        validation, fit_x, fit_codes = None, x, codes   # fit_*: what the first run trains on
        if self.early_stopping:
            held = stratified_holdout(codes, float(self.validation_fraction), self.seed + int(class_ids[0]))
            validation = (x[held], codes[held].astype(np.int32), self._log_prior(all_counts).astype(np.float32))
            fit_x, fit_codes = x[~held], codes[~held]
        root = jax.random.PRNGKey(self.seed)
        keys = jnp.stack([jax.random.fold_in(root, int(c)) for c in class_ids])
        # The whole class initialises its flow (its Gaussian start), not a batch of it; the held-out run
        # and the refit are padded to one shape, so they share one compiled epoch.
        n_max = int(all_counts.max())
        config = dataclasses.replace(self._train_config(), init_batch_size=n_max)
        trainer = StackTrainer(self.model_, config, self.preprocessor_, self.symmetries_, float(self.ema_decay))
        log = print if self.verbose else None
        padded, counts = pad_by_class(fit_x, fit_codes, num, n_max)
        trained = trainer.fit(keys, padded, counts, log=log, validation=validation,
                              patience=int(self.patience) if self.early_stopping else None)
        if self.early_stopping and self.refit:
            if log is not None:
                log(f"refit on all {len(x)} examples for the chosen {trained.best_epoch} epoch(s)")
            padded, _ = pad_by_class(x, codes, num, n_max)
            refitted = trainer.fit(keys, padded, all_counts, log=log, num_epochs=trained.best_epoch)
            trained = trained._replace(params=refitted.params, history=refitted.history)
        return trained, all_counts

    def _check_training_settings(self) -> None:
        if self.early_stopping:
            if not 0.0 < self.validation_fraction < 1.0:
                raise ValueError("MixtureClassifier: validation_fraction must be in (0, 1), "
                                 f"got {self.validation_fraction}")
            if not (isinstance(self.patience, (int, np.integer)) and self.patience >= 1):
                raise ValueError(f"MixtureClassifier: patience must be an integer >= 1, got {self.patience!r}")

    def _needed_per_class(self) -> int:
        """Examples a class needs: K to train on, and one more to hold out with early stopping."""
        return int(self.num_components) + (1 if self.early_stopping else 0)

    def fit(self, X, y) -> "MixtureClassifier":
        """Fit the preprocessor on ``X: (N, D)`` and one mixture per distinct label of ``y: (N,)``."""
        for name in ("params_", "classes_", "n_features_in_"):
            self.__dict__.pop(name, None)
        x, y = self._check_x(X, "fit", reset=True, y=y)
        check_classification_targets(y)
        classes, codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"MixtureClassifier.fit: need at least 2 classes, got 1 class ({classes.tolist()})")
        counts = np.bincount(codes, minlength=len(classes))
        self._check_training_settings()
        needed = self._needed_per_class()
        if needed > counts.min():
            small = [(c, int(n)) for c, n in zip(classes.tolist(), counts) if n < needed]
            held = " (+ 1 held out for early stopping)" if self.early_stopping else ""
            raise ValueError(f"MixtureClassifier.fit: every class needs at least num_components={self.num_components}"
                             f"{held} examples; (class, n_samples) below that: {small[:10]}")
        self.symmetries_ = feature_permutations(self.feature_symmetries, x.shape[1])
        augmented = x if self.symmetries_ is None else orbit(x, self.symmetries_)
        self.preprocessor_ = FeaturePreprocessor.fit(augmented, self.preprocessing, self.noise)
        self.model_ = self._build_model(x.shape[1])
        t0 = time.time()
        trained, counts = self._train_classes(x, codes.astype(np.int32), np.arange(len(classes)))
        self.fit_seconds_ = time.time() - t0
        self.classes_ = classes
        self.class_counts_ = counts
        self.history_ = trained.history
        self.validation_history_ = trained.validation_history
        self.best_epoch_ = trained.best_epoch
        self.params_ = trained.params
        self._log_prob_fn = self._batch_log_prob()  # compiled here, so that predicting leaves __dict__ as it is
        return self

    def add_class(self, X_new, label) -> "MixtureClassifier":
        """Train a model for a new class on ``X_new: (n, D)`` alone; every other class's parameters stay as they are.

        The preprocessor is the one fitted by ``fit`` (so the old models still see the same
        inputs); the class prior is recomputed from the counts with the new class.
        """
        self._check_fitted("add_class")
        x = self._check_x(X_new, "add_class", reset=False)
        label_arr = np.asarray([label])
        self._check_label_kind(label_arr, "add_class")
        if label in self.classes_.tolist():
            raise ValueError(f"MixtureClassifier.add_class: label {label!r} is already a class")
        if len(x) < self._needed_per_class():
            raise ValueError(f"MixtureClassifier.add_class: the new class needs at least {self._needed_per_class()} "
                             f"examples (num_components={self.num_components}"
                             f"{', + 1 held out for early stopping' if self.early_stopping else ''}), got {len(x)}")
        new_id = len(self.classes_)
        trained, counts = self._train_classes(x, np.zeros(len(x), np.int32), np.asarray([new_id]))
        history = trained.history
        self.params_ = jax.tree.map(lambda old, new: jnp.concatenate([old, new]), self.params_, trained.params)
        self.classes_ = np.concatenate([self.classes_, label_arr.astype(self.classes_.dtype)
                                        if self.classes_.dtype.kind != "U" else label_arr])
        self.class_counts_ = np.concatenate([self.class_counts_, counts])
        self.added_history_ = {**getattr(self, "added_history_", {}), label: history}
        self.added_best_epoch_ = {**getattr(self, "added_best_epoch_", {}), label: trained.best_epoch}
        return self

    # -- prediction ---------------------------------------------------------

    @property
    def class_log_prior_(self) -> np.ndarray:
        """``(C,)`` log P(y)."""
        self._check_fitted("class_log_prior_")
        return self._log_prior(self.class_counts_)

    def _log_prior(self, counts: np.ndarray) -> np.ndarray:
        if self.class_prior == "uniform":
            return np.full(len(counts), -np.log(len(counts)))
        counts = counts.astype(np.float64)
        return np.log(counts / counts.sum())

    def _batch_log_prob(self):
        per_class = class_log_prob(self.model_, self.preprocessor_, self.symmetries_, int(self.eval_samples))
        return jax.jit(lambda params, raw, key: jax.vmap(per_class, in_axes=(0, None, None))(params, raw, key).T)

    def log_likelihood(self, X) -> np.ndarray:
        """``(n, C)`` log p(x; Phi_y) in nats, density of the original features (see ``FeaturePreprocessor``)."""
        self._check_fitted("log_likelihood")
        x = self._check_x(X, "log_likelihood", reset=False)
        key = jax.random.fold_in(jax.random.PRNGKey(self.seed), 10**6)
        b = self.eval_batch_size
        out = []
        for i, start in enumerate(range(0, len(x), b)):
            chunk = x[start: start + b]
            n = len(chunk)
            if n < b:  # one compiled shape; padded rows are discarded
                chunk = np.concatenate([chunk, np.repeat(chunk[:1], b - n, axis=0)])
            out.append(np.asarray(self._log_prob_fn(self.params_, jnp.asarray(chunk), jax.random.fold_in(key, i)))[:n])
        return np.concatenate(out).astype(np.float64) + self.preprocessor_.log_det

    def predict_log_proba(self, X) -> np.ndarray:
        """``(n, C)`` log P(y | x)."""
        joint = self.log_likelihood(X) + self.class_log_prior_[None, :]
        m = joint.max(axis=1, keepdims=True)
        return joint - (m + np.log(np.sum(np.exp(joint - m), axis=1, keepdims=True)))

    def predict_proba(self, X) -> np.ndarray:
        """``(n, C)`` P(y | x), columns in the order of ``classes_``; rows sum to 1."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X) -> np.ndarray:
        """``(n,)`` the most probable labels."""
        joint = self.log_likelihood(X) + self.class_log_prior_[None, :]
        return self.classes_[np.argmax(joint, axis=1)]

    def score(self, X, y) -> float:
        """Accuracy on ``(X, y)``."""
        self._check_fitted("score")
        y = np.asarray(y)
        self._check_label_kind(y, "score")
        pred = self.predict(X)
        if y.shape != pred.shape:
            raise ValueError(f"MixtureClassifier.score: y must have shape {pred.shape}, got {y.shape}")
        return float(np.mean(pred == y))
