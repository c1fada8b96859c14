"""A small ResNet classifier per image dataset: the feature network of the sample-quality metrics.

The paper trains a ResNet on MNIST and on Fashion-MNIST as the feature extractor of its
IS, FID, MMD and 1-NN (Figs. 4-5). ``emflow.evaluation.metrics`` takes its softmax (IS) and its
penultimate-layer features (FID, MMD, 1-NN).

    net = FeatureNet()                                      # static configuration
    trained = train_feature_net(x_train, y_train, x_test, y_test, config)   # -> TrainedFeatureNet
    save(trained, cache_dir("mnist")); trained = load("mnist")
    probs, features = trained.apply(images_uint8)           # (n, 10), (n, width) ; batched, jitted

Images are uint8 ``(n, 28, 28, 1)``, scaled to [0, 1]. The network: a 3x3 stem, then
residual stages of ``blocks_per_stage`` basic blocks (two 3x3 convolutions with batch norm)
at widths ``widths``, the later stages at half the resolution of the one before, global
average pooling, a ``feature_width``-unit dense layer (ReLU: the features) and the class layer.
Trained with AdamW, a one-cycle cosine schedule and random shifts of up to 2 pixels (and, for
Fashion-MNIST, left-right mirroring: ``DATASET_CONFIGS``).

Weights live in a cache folder, ``$EMFLOW_CACHE_DIR/feature_nets/<dataset>`` (default
``~/.cache/emflow``), saved with orbax beside a JSON record of the seed, the settings and the
test accuracy. Nothing is committed: ``python -m experiments.train_feature_net --dataset mnist``
makes them.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import time
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from tqdm.auto import tqdm

from emflow import checks

Array = jax.Array


class MissingFeatureNetError(FileNotFoundError):
    """No trained feature network in the cache; the message says how to make one."""


@dataclasses.dataclass(frozen=True)
class FeatureNetConfig:
    """The network and its training. Defaults: MNIST >= 99.3%, Fashion-MNIST >= 92% on a 2-core CPU in minutes."""

    widths: tuple[int, ...] = (16, 32, 64)
    blocks_per_stage: int = 1
    feature_width: int = 128
    num_classes: int = 10
    epochs: int = 6
    batch_size: int = 128
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    max_shift: int = 2
    horizontal_flip: bool = False
    seed: int = 0

    def __post_init__(self):
        for name in ("blocks_per_stage", "feature_width", "num_classes", "epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"FeatureNetConfig: {name} must be >= 1, got {getattr(self, name)!r}")


class _Block(nn.Module):
    width: int
    stride: int

    @nn.compact
    def __call__(self, x, train: bool):
        norm = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9)
        y = nn.relu(norm()(nn.Conv(self.width, (3, 3), (self.stride, self.stride), use_bias=False)(x)))
        y = norm()(nn.Conv(self.width, (3, 3), use_bias=False)(y))
        if self.stride != 1 or x.shape[-1] != self.width:
            x = norm()(nn.Conv(self.width, (1, 1), (self.stride, self.stride), use_bias=False)(x))
        return nn.relu(x + y)


class ResNet(nn.Module):
    """``(B, H, W, 1)`` in [0, 1] -> ``(logits (B, C), features (B, feature_width))``."""

    widths: tuple[int, ...]
    blocks_per_stage: int
    feature_width: int
    num_classes: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(
            nn.Conv(self.widths[0], (3, 3), use_bias=False)(x)))
        for s, width in enumerate(self.widths):
            for b in range(self.blocks_per_stage):
                x = _Block(width, 2 if (s > 0 and b == 0) else 1)(x, train)
        features = nn.relu(nn.Dense(self.feature_width)(jnp.mean(x, axis=(1, 2))))
        return nn.Dense(self.num_classes)(features), features


# Per dataset. MNIST: 99.39% in 6 epochs. Fashion-MNIST: the MNIST network underfits it (91.83% in 6 epochs,
# 91.91% in 8 with mirrored images, training loss 0.27), so wider later stages, 1-pixel shifts and mirroring.
DATASET_CONFIGS = {
    "mnist": FeatureNetConfig(),
    "fashion_mnist": FeatureNetConfig(widths=(16, 48, 96), max_shift=1, horizontal_flip=True),
}


def build(config: FeatureNetConfig) -> ResNet:
    """The untrained Flax ``ResNet`` that ``config`` describes."""
    checks.instance("feature_net.build", "config", config, FeatureNetConfig, "a FeatureNetConfig")
    return ResNet(config.widths, config.blocks_per_stage, config.feature_width, config.num_classes)


def _scale(images: Array) -> Array:
    return images.astype(jnp.float32) / 255.0


def _flip(key: Array, x: Array) -> Array:
    """Every image mirrored left-right with probability 1/2."""
    flip = jax.random.bernoulli(key, 0.5, (x.shape[0], 1, 1, 1))
    return jnp.where(flip, x[:, :, ::-1], x)


def _shift(key: Array, x: Array, max_shift: int) -> Array:
    """Every image moved by its own random integer shift in [-max_shift, max_shift]^2 (zero padding)."""
    if max_shift == 0:
        return x
    b, h, w, _ = x.shape
    padded = jnp.pad(x, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)))
    offsets = jax.random.randint(key, (b, 2), 0, 2 * max_shift + 1)
    crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, img.shape[-1]))
    return jax.vmap(crop)(padded, offsets)


@dataclasses.dataclass
class TrainedFeatureNet:
    """A trained network: ``variables`` (params and batch statistics), its config and its record."""

    config: FeatureNetConfig
    variables: Any
    record: dict

    def __post_init__(self):
        net = build(self.config)
        self._apply = jax.jit(lambda v, x: _probs_and_features(net, v, x))

    def apply(self, images: np.ndarray, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """``(softmax probabilities (n, C), penultimate features (n, feature_width))`` of uint8 images."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 1 or images.dtype != np.uint8:
            raise ValueError(f"TrainedFeatureNet.apply: expected uint8 images (n, H, W, 1), got "
                             f"{images.dtype} {images.shape}")
        outs = [self._apply(self.variables, images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
        return (np.concatenate([np.asarray(o[0]) for o in outs]), np.concatenate([np.asarray(o[1]) for o in outs]))

    def accuracy(self, images: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean(np.argmax(self.apply(images)[0], axis=1) == np.asarray(labels)))


def _probs_and_features(net: ResNet, variables, images: Array):
    logits, features = net.apply(variables, _scale(images), train=False)
    return jax.nn.softmax(logits, axis=-1), features


def train_feature_net(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                      config: FeatureNetConfig = FeatureNetConfig(), progress: bool = True,
                      log: Callable[[str], None] = print) -> TrainedFeatureNet:
    """Train on uint8 ``x_train: (n, H, W, 1)`` with int labels; the record holds the test accuracy."""
    x_train, y_train = np.asarray(x_train), np.asarray(y_train)
    if x_train.ndim != 4 or x_train.dtype != np.uint8 or y_train.shape != (len(x_train),):
        raise ValueError(f"train_feature_net: expected uint8 images (n, H, W, 1) and (n,) labels, got "
                         f"{x_train.dtype} {x_train.shape} and {y_train.shape}")
    if len(x_train) < config.batch_size:
        raise ValueError(f"train_feature_net: batch_size {config.batch_size} is larger than the training set "
                         f"({len(x_train)} images)")
    net = build(config)
    key = jax.random.PRNGKey(config.seed)
    k_init, k_data, k_shift = jax.random.split(key, 3)
    variables = net.init(k_init, jnp.zeros((1, *x_train.shape[1:]), jnp.float32), train=False)
    steps_per_epoch = len(x_train) // config.batch_size
    total = steps_per_epoch * config.epochs
    schedule = optax.cosine_onecycle_schedule(total, config.learning_rate, pct_start=0.2)
    optimizer = optax.adamw(schedule, weight_decay=config.weight_decay)
    params, batch_stats = variables["params"], variables["batch_stats"]
    opt_state = optimizer.init(params)
    train_device, labels_device = jnp.asarray(x_train), jnp.asarray(y_train, jnp.int32)

    @jax.jit
    def step(params, batch_stats, opt_state, idx, key):
        k_shift, k_flip = jax.random.split(key)
        x = _shift(k_shift, _scale(train_device[idx]), config.max_shift)
        if config.horizontal_flip:
            x = _flip(k_flip, x)
        y = labels_device[idx]

        def loss_fn(p):
            (logits, _), updates = net.apply({"params": p, "batch_stats": batch_stats}, x, train=True,
                                             mutable=["batch_stats"])
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), updates["batch_stats"]

        (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_stats, opt_state, loss

    t0 = time.time()
    for epoch in range(config.epochs):
        perm = np.asarray(jax.random.permutation(jax.random.fold_in(k_data, epoch), len(x_train)))
        bar = tqdm(range(steps_per_epoch), desc=f"feature net epoch {epoch + 1}/{config.epochs}",
                   disable=not progress, leave=False, dynamic_ncols=True)
        for i in bar:
            idx = jnp.asarray(perm[i * config.batch_size:(i + 1) * config.batch_size])
            params, batch_stats, opt_state, loss = step(params, batch_stats, opt_state, idx,
                                                        jax.random.fold_in(k_shift, epoch * steps_per_epoch + i))
            if i % 50 == 0:
                bar.set_postfix(loss=f"{float(loss):.3f}")
        log(f"feature net epoch {epoch + 1}/{config.epochs}: last loss {float(loss):.4f}, {time.time() - t0:.0f} s")
    trained = TrainedFeatureNet(config, {"params": params, "batch_stats": batch_stats}, {})
    accuracy = trained.accuracy(x_test, y_test)
    trained.record = {"test_accuracy": accuracy, "num_train": int(len(x_train)), "num_test": int(len(x_test)),
                      "seconds": round(time.time() - t0, 1),
                      "config": json.loads(json.dumps(dataclasses.asdict(config))),  # as it reads back
                      "seed": config.seed, "backend": jax.default_backend(), "jax": jax.__version__}
    return trained


def cache_dir(dataset: str, root: str | os.PathLike | None = None) -> pathlib.Path:
    """``<root or $EMFLOW_CACHE_DIR or ~/.cache/emflow>/feature_nets/<dataset>``."""
    if not isinstance(dataset, str) or not dataset:
        raise TypeError(f"cache_dir: dataset must be a dataset name (str), got {dataset!r}")
    if root is not None:
        checks.path("cache_dir", root, "root")
    root = root or os.environ.get("EMFLOW_CACHE_DIR") or pathlib.Path(
        os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "emflow"
    return pathlib.Path(root) / "feature_nets" / dataset


def save(trained: TrainedFeatureNet, directory: str | os.PathLike) -> pathlib.Path:
    """Write the variables (orbax) and ``record.json`` (seed, settings, test accuracy) to ``directory``."""
    checks.instance("feature_net.save", "trained", trained, TrainedFeatureNet, "a TrainedFeatureNet")
    checks.path("save", directory, "directory")
    directory = pathlib.Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(directory / "variables", jax.device_get(trained.variables), force=True)
    (directory / "record.json").write_text(json.dumps(trained.record, indent=2))
    return directory


def load(dataset: str, root: str | os.PathLike | None = None) -> TrainedFeatureNet:
    """The cached network of ``dataset``.

    Raises:
      MissingFeatureNetError: none in the cache; the message gives the command that trains one.
    """
    directory = cache_dir(dataset, root).resolve()
    if not (directory / "record.json").exists() or not (directory / "variables").exists():
        raise MissingFeatureNetError(
            f"no trained feature network for {dataset!r} in {directory}. Train it with "
            f"`python -m experiments.train_feature_net --dataset {dataset}` (a few minutes on a CPU; "
            f"set EMFLOW_CACHE_DIR to choose the cache folder).")
    record = json.loads((directory / "record.json").read_text())
    raw = dict(record["config"])
    raw["widths"] = tuple(raw["widths"])
    config = FeatureNetConfig(**raw)
    net = build(config)
    abstract = jax.eval_shape(lambda: net.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)), train=False))
    with ocp.StandardCheckpointer() as checkpointer:
        variables = checkpointer.restore(directory / "variables", abstract)
    return TrainedFeatureNet(config, variables, record)


def load_or_train(dataset: str, data_dir=None, root=None, config: FeatureNetConfig | None = None,
                  log: Callable[[str], None] = print) -> TrainedFeatureNet:
    """The cached network, or (when missing) train one on the dataset (``DATASET_CONFIGS``), save it, and return it."""
    config = config or DATASET_CONFIGS.get(dataset, FeatureNetConfig())
    try:
        return load(dataset, root)
    except MissingFeatureNetError:
        from emflow import data as data_lib

        log(f"no cached feature network for {dataset}: training one ({config.epochs} epochs)")
        ds = data_lib.load_dataset(dataset, data_dir)
        trained = train_feature_net(ds.x_train, ds.y_train, ds.x_test, ds.y_test, config, log=log)
        trained.record["dataset"] = dataset
        save(trained, cache_dir(dataset, root))
        return trained


def num_parameters(trained: TrainedFeatureNet) -> int:
    """The number of trained parameters (the batch statistics aside)."""
    checks.instance("feature_net.num_parameters", "trained", trained, TrainedFeatureNet, "a TrainedFeatureNet")
    return int(sum(math.prod(a.shape) for a in jax.tree.leaves(trained.variables["params"])))
