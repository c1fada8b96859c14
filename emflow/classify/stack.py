"""Per-class EM for the classifier: C models of one configuration trained as one stacked, vmapped program."""
from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from emflow import checks
from emflow import train
from emflow.classify.features import SYMMETRY_STREAM, FeaturePreprocessor, class_log_prob

Array = jax.Array


def class_permutation(key: Array, n: Array, size: int) -> Array:
    """``(size,)`` int32 whose first ``n`` entries are a random permutation of ``0..n-1`` (``n`` traced)."""
    checks.integer("class_permutation", "size", size, 1)
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

    def __post_init__(self):
        checks.mixture("StackTrainer", self.model)
        checks.instance("StackTrainer", "config", self.config, train.TrainConfig, "an emflow.train.TrainConfig")
        checks.instance("StackTrainer", "preprocessor", self.preprocessor, FeaturePreprocessor, "a FeaturePreprocessor")
        checks.number("StackTrainer", "ema_decay", self.ema_decay, 0.0, 1.0, high_open=True)

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
        g = jax.random.randint(jax.random.fold_in(key, SYMMETRY_STREAM), raw.shape[:-1], 0, perms.shape[0])
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
    checks.number("stratified_holdout", "fraction", fraction, 0.0, 1.0, low_open=True, high_open=True)
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
    if np.ndim(x) != 2 or np.shape(codes) != (np.shape(x)[0],):
        raise ValueError(f"pad_by_class: expected x (N, D) and codes (N,), got shapes {np.shape(x)} and "
                         f"{np.shape(codes)}")
    num = checks.integer("pad_by_class", "num", num, 1)
    if len(codes) and (np.min(codes) < 0 or np.max(codes) >= num):
        raise ValueError(f"pad_by_class: codes must lie in [0, num) = [0, {num}), got [{np.min(codes)}, {np.max(codes)}]")
    counts = np.bincount(codes, minlength=num).astype(np.int32)
    padded = np.zeros((num, int(counts.max()) if n_max is None else n_max, x.shape[1]), np.float32)
    for j in range(num):
        padded[j, : counts[j]] = x[codes == j]
    return padded, counts
