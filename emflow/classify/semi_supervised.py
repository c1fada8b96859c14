"""A semi-supervised classifier: one mixture for all classes, learned by EM from labelled and unlabelled data.

    clf = SemiSupervisedMixtureClassifier(model="latmm", components_per_class=1)
    clf.fit(X, y)               # y: (N,) labels, -1 where unlabelled (scikit-learn's sklearn.semi_supervised)
    clf.predict(X_test)         # argmax_c P(c | x) = sum of the posterior of class c's components

Each class owns ``components_per_class`` components of one GenMM or LatMM over a vector flow. EM
fixes a labelled example's responsibilities to its class's components
(``emflow.em.semi_supervised``) and gives an unlabelled one its exact posterior, so the unlabelled
data shape the flow and the components too. The components start where the labels put them: LatMM's
latent Gaussians at the labelled examples' latents of their class (k-means within the class for more
than one), GenMM's generators initialised on their class's labelled examples. With ``num_restarts``
independent EM runs, the class densities are averaged (in probability) before predicting.
"""
from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import sklearn.base
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import validate_data

from emflow import train
from emflow.classify.estimator import NotFittedError
from emflow.classify.features import FeaturePreprocessor, Preprocessing, feature_permutations, orbit
from emflow.em import e_steps
from emflow.em.semi_supervised import UNLABELLED, semi_supervised
from emflow.classify.flow_specs import VectorFlowSpec, flow_spec
from emflow.mixtures import partition as partition_lib
from emflow.mixtures.genmm import GenMM
from emflow.batches import map_batches
from emflow.mixtures.latmm import LatMM, part_gaussians
from emflow.mixtures.mixture import uniform_log_pi

Array = jax.Array


def labelled_init(model, key: Array, x: Array, component_of: Array, labelled: Array) -> dict:
    """Parameters of ``model`` (GenMM or LatMM, K components) started from labelled examples.

    ``x: (N, D)`` flow inputs; ``labelled: (L,)`` rows of ``x`` that carry a label and ``component_of: (L,)``
    the component each of them starts in. LatMM: the flow initialised on all of ``x``, latent Gaussian k at
    the mean and std of its examples' latents (``LatMM.place_latent_gaussians`` with those parts). GenMM:
    generator k initialised on its own examples (``partition.draw_from_parts``). pi uniform.
    """
    k = model.num_components
    k_flow, k_draw = jax.random.split(key)
    if isinstance(model, LatMM):
        params = {"log_pi": uniform_log_pi(k), "flow": model.flow.init(k_flow, x),
                  "means": jnp.zeros((k, model.top_size)), "log_stds": jnp.zeros((k, model.top_size))}
        means, log_stds = part_gaussians(model.top_latents(params, x[labelled]), component_of, k)
        return {**params, "means": means, "log_stds": log_stds}
    size = min(int(x.shape[0]), 512)
    index = partition_lib.draw_from_parts(k_draw, component_of, k, size)          # (K, size) rows of x[labelled]
    flows = jax.vmap(model.flow.init)(jax.random.split(k_flow, k), x[labelled][index])
    return {"log_pi": uniform_log_pi(k), "flows": flows}


def components_of_labelled(x: np.ndarray, codes: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """The component ``c * per_class + j`` each labelled example ``x: (L, D)`` of class ``codes: (L,)`` starts in:
    ``j`` its part of a ``per_class``-means partition of its class's labelled examples (0 for one per class)."""
    out = codes.astype(np.int32) * per_class
    if per_class == 1:
        return out
    for c in np.unique(codes):
        rows = np.flatnonzero(codes == c)
        part = partition_lib.kmeans(jax.random.PRNGKey(seed + int(c)), jnp.asarray(x[rows]), per_class)
        out[rows] += np.asarray(part.labels, np.int32)
    return out


@functools.partial(jax.jit, static_argnums=(0, 1))
def _class_joint(model, pre: FeaturePreprocessor, params: dict, owner: Array, raw: Array) -> Array:
    """``(B, C)`` log of the mass of each class's components (``owner: (K, C)``) at the raw rows ``raw: (B, D)``."""
    joint = model.component_log_prob(params, pre.eval_transform(raw.astype(jnp.float32)))        # (B, K)
    return jax.nn.logsumexp(jnp.where(owner[None], joint[:, :, None], -jnp.inf), axis=1)


EVAL_BATCH = 256  # rows per likelihood evaluation: one compiled shape, so a row's result does not depend on the call


class SemiSupervisedMixtureClassifier(sklearn.base.ClassifierMixin, sklearn.base.BaseEstimator):
    """One GenMM or LatMM whose components belong to the classes, learned by semi-supervised EM.

    A scikit-learn estimator in ``sklearn.semi_supervised``'s convention: ``fit(X, y)`` with ``y = -1`` for
    an unlabelled example; ``predict``, ``predict_proba``, ``score``; ``clone``, ``GridSearchCV`` and
    ``Pipeline`` work with it. With no ``-1`` in ``y`` it is a supervised generative classifier (one mixture,
    the class of each component known); an all-unlabelled ``y`` is refused (use ``emflow.GenMM`` /
    ``emflow.LatMM`` with ``train.fit``).

    Args:
      model: ``"latmm"`` (one flow, a latent Gaussian per component: FlowGMM's model, learned by EM) or
        ``"genmm"`` (a flow per component).
      components_per_class: components each class owns; every class needs at least that many labelled examples.
      flow: the flow, ``"vector"`` or a ``VectorFlowSpec`` (``emflow.classify.flow_specs``; default 6 steps x 64).
      preprocessing, noise: see ``FeaturePreprocessor`` (``"standardize"`` for continuous features,
        ``"dequantize"`` for integers).
      feature_symmetries: None, a ``(G, D)`` integer array of feature permutations (row 0 the identity) under
        which every class's distribution is invariant, or a name from ``emflow.classify.features.SYMMETRIES``
        (``"satimage_dihedral"``). EM runs on the orbit (each example, labelled or not, under each of the G
        permutations, with its label: ``G * N`` rows), and a class's mass is the symmetrised
        ``(1/G) sum_g p(c, x[perm_g])``, as in ``MixtureClassifier``.
      epochs, batch_size, learning_rate, warmup_steps, em_every: EM training (``emflow.train.TrainConfig``);
        the E-step is cached once per EM round; an epoch is one pass over the orbit with ``feature_symmetries``.
      num_restarts: independent EM runs (seeds ``seed, seed + 1, ...``) whose class densities are averaged.
      unlabelled_weight: in [0, 1], the weight of an unlabelled example in the M-step and pi's update
        (EM-lambda; ``emflow.em.semi_supervised``): 1 is EM on the joint likelihood, 0 the labelled part alone.
      labelled_epochs: 0, or first train this many epochs on the labelled examples alone (the supervised model,
        Nigam et al.'s start for EM with unlabelled data), then ``epochs`` on all of them from there.
      seed: every random number comes from it.
      verbose: print training progress.

    Fitted attributes: ``classes_`` (C,), ``n_labelled_`` (the labelled examples used), ``symmetries_`` (``(G, D)``
    or None), ``preprocessor_``,
    ``model_``, ``params_`` (one parameter tree per restart), ``component_classes_`` (K,), ``fit_seconds_``.
    """

    def __init__(self, model: str = "latmm", components_per_class: int = 1, flow: str | VectorFlowSpec = "vector",
                 preprocessing: Preprocessing = "standardize", noise: float = 1.0,
                 feature_symmetries: str | np.ndarray | None = None, epochs: int = 30,
                 batch_size: int = 64, learning_rate: float = 2e-3, warmup_steps: int = 100, em_every: int = 1,
                 num_restarts: int = 1, unlabelled_weight: float = 1.0, labelled_epochs: int = 0, seed: int = 0,
                 verbose: bool = False):
        self.model = model
        self.components_per_class = components_per_class
        self.flow = flow
        self.preprocessing = preprocessing
        self.noise = noise
        self.feature_symmetries = feature_symmetries
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.warmup_steps = warmup_steps
        self.em_every = em_every
        self.num_restarts = num_restarts
        self.unlabelled_weight = unlabelled_weight
        self.labelled_epochs = labelled_epochs
        self.seed = seed
        self.verbose = verbose

    def _check_settings(self) -> None:
        if self.model not in ("latmm", "genmm"):
            raise ValueError(f"SemiSupervisedMixtureClassifier: model must be 'latmm' or 'genmm', got {self.model!r}")
        if not isinstance(flow_spec(self.flow, "SemiSupervisedMixtureClassifier"), VectorFlowSpec):
            raise ValueError(f"SemiSupervisedMixtureClassifier: flow must be 'vector' or a VectorFlowSpec, got {self.flow!r}")
        for name, least in (("components_per_class", 1), ("num_restarts", 1), ("labelled_epochs", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise ValueError(f"SemiSupervisedMixtureClassifier: {name} must be an integer >= {least}, got {value!r}")

    def _split_labels(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(classes, codes)``: the labelled classes and each example's code in them, -1 where unlabelled."""
        numeric = np.issubdtype(y.dtype, np.number)
        if numeric and len(y) and y.min() < UNLABELLED:
            raise ValueError(f"SemiSupervisedMixtureClassifier.fit: numeric labels must be class labels >= 0 or -1 "
                             f"(unlabelled), got {y.min()!r}")
        unlabelled = (y == UNLABELLED) if numeric else np.zeros(len(y), bool)
        if unlabelled.all():
            raise ValueError("SemiSupervisedMixtureClassifier.fit: every example is unlabelled (y == -1); "
                             "a mixture without labels is unsupervised: use emflow.GenMM or emflow.LatMM with train.fit")
        classes = np.unique(y[~unlabelled])
        codes = np.full(len(y), UNLABELLED, np.int32)
        codes[~unlabelled] = np.searchsorted(classes, y[~unlabelled])
        if len(classes) < 2:
            raise ValueError(f"SemiSupervisedMixtureClassifier.fit: need at least 2 classes, got 1 class "
                             f"({classes.tolist()}) among the labelled examples")
        counts = np.bincount(codes[~unlabelled], minlength=len(classes))
        if counts.min() < self.components_per_class:
            small = [(c, int(n)) for c, n in zip(classes.tolist(), counts) if n < self.components_per_class]
            raise ValueError(f"SemiSupervisedMixtureClassifier.fit: every class needs at least "
                             f"components_per_class={self.components_per_class} labelled examples; (class, labelled) "
                             f"below that: {small[:10]}")
        return classes, codes

    def _build(self, num_features: int, num_classes: int):
        flow = flow_spec(self.flow, "SemiSupervisedMixtureClassifier").build(num_features)
        k = num_classes * int(self.components_per_class)
        return LatMM(flow, k) if self.model == "latmm" else GenMM(flow, k, component_axis="vmap")

    def fit(self, X, y) -> "SemiSupervisedMixtureClassifier":
        """EM on ``X: (N, D)`` with ``y: (N,)`` labels, ``-1`` where unlabelled."""
        for name in ("params_", "classes_", "n_features_in_"):
            self.__dict__.pop(name, None)
        self._check_settings()
        x, y = validate_data(self, X, y, dtype=[np.float64, np.float32], ensure_min_features=2)
        check_classification_targets(y)
        if not np.all(np.isfinite(x)):
            raise ValueError("SemiSupervisedMixtureClassifier.fit: X holds NaN or Inf values; expected finite numbers")
        classes, codes = self._split_labels(np.asarray(y))
        n_labelled = int(np.sum(codes >= 0))
        symmetries = feature_permutations(self.feature_symmetries, x.shape[1])
        if symmetries is not None:
            x, codes = orbit(x, symmetries), np.tile(codes, len(symmetries))
        pre = FeaturePreprocessor.fit(x, self.preprocessing, self.noise)
        x = x.astype(np.float32)  # once: every EM run (each restart, the labelled start) trains on these rows
        z = np.asarray(pre.eval_transform(jnp.asarray(x)))
        model = self._build(x.shape[1], len(classes))
        per = int(self.components_per_class)
        component_classes = np.repeat(np.arange(len(classes)), per).astype(np.int32)
        labelled = np.flatnonzero(codes >= 0)
        start = components_of_labelled(z[labelled], codes[labelled], per, int(self.seed))
        t0, params = time.time(), []
        for r in range(int(self.num_restarts)):
            seed = int(self.seed) + r
            init = jax.jit(labelled_init, static_argnums=0)(model, jax.random.PRNGKey(seed), jnp.asarray(z),
                                                             jnp.asarray(start), jnp.asarray(labelled))
            if self.labelled_epochs:
                init = self._em(model, pre, x[labelled], codes[labelled], component_classes, init,
                                int(self.labelled_epochs), seed)
            params.append(self._em(model, pre, x, codes, component_classes, init, int(self.epochs), seed))
        self.fit_seconds_ = time.time() - t0
        self.classes_, self.n_labelled_, self.symmetries_ = classes, n_labelled, symmetries
        self.preprocessor_, self.model_, self.component_classes_ = pre, model, component_classes
        self.params_ = params
        return self

    def _em(self, model, pre: FeaturePreprocessor, x: np.ndarray, codes: np.ndarray, component_classes: np.ndarray,
            init: dict, epochs: int, seed: int) -> dict:
        """The parameters after ``epochs`` of semi-supervised EM from ``init`` on raw float32 ``x: (N, D)`` with class
        codes ``codes: (N,)`` (-1 unlabelled)."""
        e_step = e_steps.cached(semi_supervised(codes, component_classes, self.unlabelled_weight))
        config = train.TrainConfig(epochs=epochs, batch_size=int(min(self.batch_size, len(x))),
                                   em_every=int(self.em_every), learning_rate=float(self.learning_rate),
                                   warmup_steps=int(self.warmup_steps), seed=seed, num_samples=0,
                                   eval_batch_size=min(1000, len(x)), train_eval_size=min(2000, len(x)))
        result = train.fit(model, config, pre.train_transform, x, None, progress=False,
                           log=print if self.verbose else (lambda line: None),
                           e_step_of_round=lambda _: e_step, initial_params=init)
        return result.state.params

    def _check_fitted(self, where: str) -> None:
        if not hasattr(self, "params_"):
            raise NotFittedError(f"SemiSupervisedMixtureClassifier.{where}: not fitted yet; call fit(X, y) first")

    def class_log_joint(self, X) -> np.ndarray:
        """``(n, C)`` log p(c, x) of the flows' input: the mixture mass of class c's components at x, averaged in
        probability over the R restarts and the G feature permutations (G = 1 without ``feature_symmetries``),
        ``log (1/(R G)) sum_r sum_g sum_{k of c} pi_k^r p_k^r(x[perm_g])``."""
        self._check_fitted("class_log_joint")
        x = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        owner = jax.nn.one_hot(jnp.asarray(self.component_classes_), len(self.classes_), dtype=bool)  # (K, C)
        fn = lambda params, raw, key: _class_joint(self.model_, self.preprocessor_, params, owner, raw)
        perms = [None] if self.symmetries_ is None else list(self.symmetries_)
        stacked = np.stack([np.asarray(map_batches(fn, params, jnp.asarray(x if perm is None else x[:, perm]),
                                                   jax.random.PRNGKey(0), EVAL_BATCH))
                            for params in self.params_ for perm in perms]).astype(np.float64)
        return np.logaddexp.reduce(stacked, axis=0) - np.log(len(stacked))

    def predict_log_proba(self, X) -> np.ndarray:
        """``(n, C)`` log P(c | x), from ``class_log_joint``."""
        joint = self.class_log_joint(X)
        return joint - np.logaddexp.reduce(joint, axis=1, keepdims=True)

    def predict_proba(self, X) -> np.ndarray:
        """``(n, C)`` P(c | x), columns in the order of ``classes_``; rows sum to 1."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X) -> np.ndarray:
        """``(n,)`` the most probable class of each row."""
        log_proba = self.predict_log_proba(X)  # checks that the classifier is fitted
        return self.classes_[np.argmax(log_proba, axis=1)]
