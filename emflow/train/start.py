"""A run's start: its inputs checked, its parameters initialised from a partition of the training data."""
from __future__ import annotations

import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from emflow import checks
from emflow.mixtures import partition as partition_lib
from emflow.parallel import sharding
from emflow.batches import map_batches
from emflow.interfaces import CheckedPreprocessor, InputPartitioner, LatentPlacer, PartitionedMixture
from emflow.train.config import TrainConfig, check_config

Array = jax.Array


def check_finite_data(x: np.ndarray | Array, name: str) -> None:
    """Refuse data with NaN or Inf before any training starts (a ``jax.Array`` is checked where it lies)."""
    if not np.issubdtype(x.dtype if isinstance(x, jax.Array) else np.asarray(x).dtype, np.floating):
        return
    bad = (int(jax.jit(lambda a: jnp.sum(~jnp.isfinite(a)))(x)) if isinstance(x, jax.Array) else
           int(np.sum(~np.isfinite(x))))
    if bad:
        raise ValueError(f"{name}: {bad} values are NaN or Inf; expected finite data")


def identity_preprocess(key: Array, x: Array) -> Array:
    """Use continuous data as they are (numbers as float32)."""
    checks.numbers("identity_preprocess", "x", x)
    del key
    return jnp.asarray(x, jnp.float32)


def features_of_more_examples(model, params: dict | None, data: Array, subset_key: Array, noise_key: Array,
                              preprocess, config: TrainConfig, features_fn=None):
    """``model.partition_features`` of ``config.partition_size`` examples: ``(M, F)``.

    The examples: a random subset (``subset_key``) of the raw ``data (N, ...)`` (all of it if ``N`` is
    smaller), preprocessed with their own noise (``noise_key``), in batches of ``config.eval_batch_size``;
    ``params`` are the model's where its features depend on them (LatMM's latents), else None (GenMM's input).
    ``features_fn(params, x)``: what to compute instead of ``model.partition_features`` (any pytree of
    ``(B, ...)`` arrays, concatenated over the batches).
    """
    check_model_and_config("features_of_more_examples", model, config)
    n = data.shape[0]
    raw = data[jax.random.permutation(subset_key, n)[: min(config.partition_size, n)]]
    features_fn = features_fn or model.partition_features
    features = jax.jit(lambda p, r, k: features_fn(p, preprocess(k, r)))
    return map_batches(features, params, raw, noise_key, config.eval_batch_size)


def place_on_more_examples(model, params: dict, data: Array, key: Array, preprocess,
                           config: TrainConfig) -> tuple[dict, partition_lib.Partition]:
    """LatMM's latent Gaussians re-placed at a k-means partition of ``config.partition_size`` examples.

    Their latents under the initialised flow, and their ``partition_features`` where the model
    partitions an input space (``features_of_more_examples``). Returns ``(params, partition)`` as
    ``model.place_latent_gaussians`` does; deterministic for ``key``.
    """
    check_model_and_config("place_on_more_examples", model, config)
    def latents_and_features(p, x):
        z = model.top_latents(p, x)
        return z, (None if model.partition_space == "latent" else model.partition_features(p, x))

    k_subset, k_noise, k_means = jax.random.split(key, 3)
    z, features = features_of_more_examples(model, params, data, k_subset, k_noise, preprocess, config,
                                            latents_and_features)
    return jax.jit(model.place_latent_gaussians)(k_means, params, z, features)


def partition_centroids(model, data: Array, key: Array, preprocess, config: TrainConfig) -> Array:
    """GenMM: the centroids ``(K, N)`` of a k-means partition of ``config.partition_size`` examples' input
    (``model.partition_features``: the input in its ``partition_space``).

    ``model.init_with_partition(key, x, centroids)`` then splits the init batch by them, so that
    the generators start from the parts of many examples rather than of the init batch alone.
    """
    check_model_and_config("partition_centroids", model, config)
    k_subset, k_noise, k_means = jax.random.split(key, 3)
    features = features_of_more_examples(model, None, data, k_subset, k_noise, preprocess, config)
    return jax.jit(model.kmeans)(k_means, features).centroids


def init_params(model, key: Array, init_x: Array, data: Array, preprocess, config: TrainConfig,
                log: Callable[[str], None]) -> tuple[dict, partition_lib.Partition | None]:
    """``(params, partition)`` of a new run from the init batch ``init_x``; the partition is None without one.

    When ``config.partition_size`` exceeds the init batch, the partition is one of that many
    training examples (``data``, raw): a model that partitions its input (``partitions_input``: GenMM)
    starts on the init batch split by it (``partition_centroids``); LatMM's latent Gaussians are placed
    at it after the flow's init (``place_on_more_examples``). One component (a plain flow fit) has no
    partition: ``model.init`` on the init batch.
    """
    check_model_and_config("init_params", model, config)
    if not isinstance(model, PartitionedMixture) or model.num_components == 1:
        return jax.jit(model.init)(key, init_x), None
    size = min(config.partition_size, data.shape[0])
    more = size > init_x.shape[0]
    started = time.time()
    if more and isinstance(model, InputPartitioner) and model.partitions_input:
        centroids = partition_centroids(model, data, jax.random.fold_in(key, 3), preprocess, config)
        params, part = jax.jit(model.init_with_partition)(key, init_x, centroids)
        log(f"generators initialised on the parts of a k-means partition of {size} examples "
            f"({time.time() - started:.1f} s)")
        return params, part
    params, part = jax.jit(model.init_with_partition)(key, init_x)
    if more and part is not None and isinstance(model, LatentPlacer):
        params, part = place_on_more_examples(model, params, data, jax.random.fold_in(key, 3), preprocess, config)
        space = model.partition_space
        log(f"latent Gaussians placed at a k-means partition of {size} examples' "
            f"{'latents' if space == 'latent' else space + ' features'} "
            f"({time.time() - started:.1f} s)")
    return params, part


def check_model_and_config(where: str, model, config) -> None:
    """A mixture model and a ``TrainConfig``, or a ``TypeError`` naming which is not."""
    checks.mixture(where, model)
    check_config(where, config)


def check_arguments(model, config, preprocess, workdir, hooks, optimizer, e_step_of_round) -> None:
    """Refuse, by name, ``fit``'s arguments of the wrong kind: a model that is not a mixture, a config that
    is not a ``TrainConfig``, a ``preprocess``/``e_step_of_round`` that cannot be called, a ``workdir`` that is
    not a path, ``hooks`` that are not a sequence of hooks, an ``optimizer`` that is not an optax transformation."""
    check_model_and_config("fit", model, config)
    if preprocess is not None:
        checks.callable_("fit", "preprocess", preprocess, "None or a function (key, raw batch) -> model input")
    if e_step_of_round is not None:
        checks.callable_("fit", "e_step_of_round", e_step_of_round, "None or a function em_round -> EStep")
    if workdir is not None:
        checks.path("fit", workdir, "workdir")
    checks.hooks("fit", hooks)
    if optimizer is not None:
        checks.transformation("fit", optimizer)


def check_inputs(config, preprocess, x_train, x_test, y_test) -> None:
    """Refuse, before anything compiles, data a run cannot use: non-finite values, the wrong kind for
    ``preprocess`` (``preprocess.check``, e.g. a ``Dequantizer``'s uint8 of its shape), a test set of
    another example shape than the training set, test labels that are not one integer per test
    example, a batch larger than the training set."""
    for name, data in (("x_train", x_train), ("x_test", x_test)):
        if data is None:
            continue
        check_finite_data(data, name)
        if isinstance(preprocess, CheckedPreprocessor):
            preprocess.check(data)
    if x_test is not None and tuple(np.shape(x_test)[1:]) != tuple(np.shape(x_train)[1:]):
        raise ValueError(f"fit: x_test must hold examples of x_train's shape {tuple(np.shape(x_train)[1:])}, got "
                         f"x_test of shape {tuple(np.shape(x_test))}")
    if y_test is not None:
        if x_test is None or np.shape(y_test) != (len(x_test),):
            raise ValueError(f"fit: y_test must hold one label per test example, (N_test,) = "
                             f"({None if x_test is None else len(x_test)},), got shape {np.shape(y_test)}")
        if not np.issubdtype(np.asarray(y_test).dtype if not isinstance(y_test, jax.Array) else y_test.dtype,
                             np.integer):
            raise TypeError(f"fit: y_test must hold integer class labels 0..C-1, got dtype {np.asarray(y_test).dtype}")
    if len(x_train) // config.batch_size < 1:
        raise ValueError(f"fit: batch_size {config.batch_size} is larger than the training set ({len(x_train)} examples)")


def check_event_shape(model, preprocess, x_train, x_test) -> None:
    """Without a preprocessor, refuse examples that are not of the model's event shape (before anything compiles)."""
    if preprocess is not identity_preprocess:
        return
    for name, data in (("x_train", x_train), ("x_test", x_test)):
        if data is not None and tuple(np.shape(data)[1:]) != tuple(model.event_shape):
            raise ValueError(f"fit: {name} must hold examples of the model's event shape (N, "
                             f"{', '.join(map(str, model.event_shape))}), got shape {tuple(np.shape(data))}")


def place_data(x_train, x_test, mesh) -> tuple[Array, Array | None]:
    """The raw data on the device(s): a ``jax.Array`` as placed by the caller; numpy copied to the
    default device, or to every device of ``mesh`` (replicated)."""
    if isinstance(x_train, jax.Array):  # placed by the caller (e.g. each process's own examples)
        train_data = x_train
    else:
        train_data = jnp.asarray(x_train) if mesh is None else jax.device_put(x_train, sharding.replicated(mesh))
    test_data = None if x_test is None else x_test if isinstance(x_test, jax.Array) else jnp.asarray(x_test)
    return train_data, test_data


def start_params(model, key: Array, data: Array, preprocess, config, log: Callable[[str], None],
                 initial_params: dict | None = None) -> tuple[dict, partition_lib.Partition | None, Array | None]:
    """``(params, partition, part_labels)`` of a new run: ``start_from(model, initial_params)`` when given.

    The init batch: ``config.init_batch_size`` random training examples (``key``); ``init_params``
    initialises from it. ``part_labels: (N,)`` int32, each training example's part of the partition
    (its nearest centroid), for the warm start; None without a partition or without warm-start rounds.
    """
    check_model_and_config("start_params", model, config)
    if initial_params is not None:
        return start_from(model, initial_params)
    n = data.shape[0]
    init_raw = data[jax.random.permutation(key, n)[: config.init_batch_size]]
    init_x = preprocess(jax.random.fold_in(key, 1), init_raw)
    params, part = init_params(model, key, init_x, data, preprocess, config, log)
    checks.remember_init_params(model, params)
    if part is None or config.warm_start_rounds == 0:
        return params, part, None
    distances = jax.jit(lambda p, raw, k: partition_lib.squared_distances(
        model.partition_features(p, preprocess(k, raw)), part.centroids))
    d2 = map_batches(distances, params, data, jax.random.fold_in(key, 2), config.eval_batch_size)
    return params, part, jnp.argmin(d2, axis=1).astype(jnp.int32)


def start_from(model, params: dict) -> tuple[dict, None, None]:
    """``(params, None, None)``: a run that starts from given parameters (``fit(initial_params=...)``), checked
    to be the tree ``model.init`` gives (a ``ValueError`` naming the leaf otherwise); no partition, no warm start."""
    checks.params_fit("fit initial_params", model, params)
    return params, None, None
