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
touched::

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
import time

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

from emflow import train
from emflow.batches import map_batches
from emflow.classify.features import (FeaturePreprocessor, Preprocessing, class_log_prob,
                                      feature_permutations, orbit)
from emflow.classify.flow_specs import FlowSpec
from emflow.classify.models import CLASS_MODEL_SETTINGS, class_model
from emflow.classify.stack import StackTrainer, pad_by_class, stratified_holdout

Array = jax.Array


class NotFittedError(sklearn.exceptions.NotFittedError):
    """The classifier was used before ``fit`` (scikit-learn's ``NotFittedError``: a ValueError and AttributeError)."""


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
      flow: each class's flow: ``"vector"`` (``VectorFlowSpec()``: a ``VectorFlow`` of 6 steps x 64
        on the D features), ``"glow"`` (``GlowSpec()``: a 1-level ``Glow`` of 12 steps x 8 channels on
        the features reshaped to ``(s, s, 1)``, the paper's choice: 4x4x1 for Letter, 6x6x1 for
        Satimage), or a ``VectorFlowSpec`` / ``GlowSpec`` with other sizes, coupling or image shape
        (``emflow.classify.flow_specs``).
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
      num_restarts: independent EM runs (seeds ``seed, seed + 1, ...``) whose class densities are averaged in
        probability: a mixture of ``num_restarts * K`` components per class (Table II's averaged column).
      seed: every random number comes from it.
      verbose: print training progress.

    Fitted attributes: ``classes_`` (C,), ``class_counts_`` (C,), ``preprocessor_``, ``model_``
    (the per-class model), ``params_`` (its params with a leading (C,) axis), ``history_`` (per
    epoch, (C,) training NLL), ``validation_history_`` (the held-out log-loss, the init first;
    empty without early stopping), ``best_epoch_`` (the chosen epoch, 0 the init),
    ``fit_seconds_``.
    """

    def __init__(self, model: str = "genmm", num_components: int = 1, flow: str | FlowSpec = "vector",
                 class_prior: str = "frequency",
                 preprocessing: Preprocessing = "dequantize", noise: float = 1.0, eval_samples: int = 0,
                 feature_symmetries: str | np.ndarray | None = None, ema_decay: float = 0.0,
                 gaussian_start: bool = True, gaussian_reg: float = 0.1, early_stopping: bool = True,
                 validation_fraction: float = 0.1, patience: int = 20, refit: bool = True, epochs: int = 100, batch_size: int = 64, learning_rate: float = 2e-3, warmup_steps: int = 100,
                 min_learning_rate: float = 1e-4, em_every: int = 5, component_axis: str | None = "vmap",
                 eval_batch_size: int = 1000, num_restarts: int = 1, seed: int = 0, verbose: bool = False):
        self.model = model
        self.num_components = num_components
        self.flow = flow
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
        self.num_restarts = num_restarts
        self.seed = seed
        self.verbose = verbose

    # -- configuration ------------------------------------------------------

    def set_params(self, **params) -> "MixtureClassifier":
        """Sets constructor arguments (scikit-learn's ``set_params``); a fitted classifier recompiles its likelihood."""
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
        if self.class_prior not in ("frequency", "uniform"):
            raise ValueError(
                f"MixtureClassifier: class_prior must be 'frequency' or 'uniform', got {self.class_prior!r}")
        return class_model(num_features, **{name: getattr(self, name) for name in CLASS_MODEL_SETTINGS})

    def _train_config(self, seed: int | None = None) -> train.TrainConfig:
        seed = self.seed if seed is None else seed
        return train.TrainConfig(
            epochs=self.epochs, batch_size=self.batch_size, em_every=self.em_every,
            learning_rate=self.learning_rate, warmup_steps=self.warmup_steps,
            min_learning_rate=self.min_learning_rate, seed=seed, num_samples=0,
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

    def _train_classes(self, x: np.ndarray, codes: np.ndarray, class_ids: np.ndarray, seed: int):
        """Train one stack on ``x`` with class codes ``codes`` in ``range(len(class_ids))``;
        class ``j``'s key is ``fold_in(seed, class_ids[j])``. Returns ``(TrainedStack, counts)``,
        the counts of all the examples given (held-out ones included)."""
        num = len(class_ids)
        all_counts = np.bincount(codes, minlength=num).astype(np.int32)
        validation, fit_x, fit_codes = None, x, codes   # fit_*: what the first run trains on
        if self.early_stopping:
            held = stratified_holdout(codes, float(self.validation_fraction), seed + int(class_ids[0]))
            validation = (x[held], codes[held].astype(np.int32), self._log_prior(all_counts).astype(np.float32))
            fit_x, fit_codes = x[~held], codes[~held]
        root = jax.random.PRNGKey(seed)
        keys = jnp.stack([jax.random.fold_in(root, int(c)) for c in class_ids])
        # The whole class initialises its flow (its Gaussian start), not a batch of it; the held-out run
        # and the refit are padded to one shape, so they share one compiled epoch.
        n_max = int(all_counts.max())
        config = dataclasses.replace(self._train_config(seed), init_batch_size=n_max)
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
        if isinstance(self.num_restarts, bool) or not isinstance(self.num_restarts, (int, np.integer)) \
                or self.num_restarts < 1:
            raise ValueError(f"MixtureClassifier: num_restarts must be an integer >= 1, got {self.num_restarts!r}")
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
        for name in ("params_", "more_restart_params_", "classes_", "n_features_in_"):
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
        trained, counts = self._train_classes(x, codes.astype(np.int32), np.arange(len(classes)), int(self.seed))
        self.more_restart_params_ = [  # restarts 1, 2, ...; restart 0 is params_
            self._train_classes(x, codes.astype(np.int32), np.arange(len(classes)), int(self.seed) + r)[0].params
            for r in range(1, int(self.num_restarts))]
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
        if self.num_restarts != 1:
            raise ValueError(f"MixtureClassifier.add_class: needs num_restarts=1 (one model per class), "
                             f"got num_restarts={self.num_restarts}")
        trained, counts = self._train_classes(x, np.zeros(len(x), np.int32), np.asarray([new_id]), int(self.seed))
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
        restarts = [self.params_, *getattr(self, "more_restart_params_", [])]

        def averaged(params, chunk, k):  # the restarts' densities averaged in probability, one compiled shape
            per_restart = jnp.stack([self._log_prob_fn(p, chunk, k) for p in params])
            return jax.nn.logsumexp(per_restart, axis=0) - np.log(len(params))

        out = map_batches(averaged, restarts, jnp.asarray(x), key, int(self.eval_batch_size))
        return np.asarray(out).astype(np.float64) + self.preprocessor_.log_det

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
