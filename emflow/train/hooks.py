"""What a run does after each epoch, once its metrics record is complete: hooks.

A hook is an object with ``after_epoch(end: EpochEnd) -> bool``; True asks the loop to stop
after this epoch. ``fit`` runs the hooks in order, then checkpoints the epoch: a hook that
raises stops the run before that checkpoint (``HookError`` names the hook), so no checkpoint
is ever written for an epoch whose outputs failed. ``finish(state) -> state`` runs once when
the loop ends (``EarlyStopping`` hands back its best parameters there). The hooks of this module::

    MetricsFile(workdir)                   metrics.jsonl (every record so far) and nll.png
    SampleGrids(workdir, model, ...)       samples/epoch_*.png and samples/components_epoch_*.png after EM rounds
    ComponentPlot(workdir)                 components.png from the record's per-component report
    EarlyStopping(x_val, ...)              the validation NLL each epoch; stops after ``patience`` epochs
                                           without a new best and hands back the best parameters

Only the primary process writes files; every process samples (one SPMD program).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from emflow import checks
from emflow.flows import latent as latent_lib
from emflow.parallel import distributed
from emflow.evaluation import plots
from emflow.train.checkpoint import WorkdirWriteError
from emflow.interfaces import ComponentSampler
from emflow.train.evaluation import mean_log_prob, to_host
from emflow.train.start import identity_preprocess
from emflow.train.state import EMState


class EpochEnd(NamedTuple):
    """What a hook reads at the end of an epoch.

    Attributes:
      epoch: 0-based.
      state: the trainer state after the epoch (Phi, pi and Phi_old updated if an EM round ended).
      record: this epoch's metrics (``history[-1]``).
      history: every record so far.
      em_round: whether an EM round ended with this epoch.
    """

    epoch: int
    state: EMState
    record: dict
    history: list[dict]
    em_round: bool


class Hook(Protocol):
    """After each epoch, ``after_epoch``; at the end of the loop, ``finish``."""

    def after_epoch(self, end: EpochEnd) -> bool:
        """Do this epoch's work; True stops the run after it."""

    def finish(self, state: EMState) -> EMState:
        """The state the run returns (and checkpoints last)."""


class HookError(RuntimeError):
    """A hook raised: the run stopped before checkpointing that epoch."""


class BaseHook:
    """A hook that does nothing: subclass it and override what you need."""

    def after_epoch(self, end: EpochEnd) -> bool:
        del end
        return False

    def finish(self, state: EMState) -> EMState:
        return state


def run_hooks(hooks, end: EpochEnd) -> bool:
    """Every hook's ``after_epoch``, in order; True if one asks to stop. Raises ``HookError`` naming a failing hook."""
    stop = False
    for hook in hooks:
        try:
            stop = bool(hook.after_epoch(end)) or stop
        except WorkdirWriteError:
            raise
        except Exception as err:
            raise HookError(f"hook {type(hook).__name__} failed after epoch {end.epoch + 1} ({type(err).__name__}: "
                            f"{err}); the run stopped before checkpointing that epoch") from err
    return stop


@contextlib.contextmanager
def written(workdir: pathlib.Path, epoch: int):
    """Turn an OS error while writing an epoch's files into ``WorkdirWriteError``."""
    try:
        yield
    except OSError as err:
        raise WorkdirWriteError(
            f"could not write the outputs of epoch {epoch + 1} in {workdir} ({err}); the run stopped before "
            "checkpointing that epoch") from err


def write_atomically(path: pathlib.Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: a kill leaves the old or the new file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


@dataclasses.dataclass
class MetricsFile(BaseHook):
    """``metrics.jsonl`` (one JSON record per epoch, rewritten whole) and ``nll.png`` (train and test NLL)."""

    workdir: pathlib.Path

    def __post_init__(self):
        checks.path("MetricsFile", self.workdir, "workdir")

    def after_epoch(self, end: EpochEnd) -> bool:
        if distributed.is_primary():
            with written(self.workdir, end.epoch):
                write_atomically(self.workdir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in end.history))
                epochs = [r["epoch"] for r in end.history]
                curves = {"train": (epochs, [r["train_nll_nats_per_dim"] for r in end.history])}
                if "test_nll_nats_per_dim" in end.record:
                    curves["test"] = (epochs, [r["test_nll_nats_per_dim"] for r in end.history])
                plots.nll_curves(curves, self.workdir / "nll.png")
        return False


@dataclasses.dataclass
class SampleGrids(BaseHook):
    """After each EM round, ``samples/epoch_*.png`` (``num_samples`` mixture samples) and, for a model with
    ``component_samples``, ``samples/components_epoch_*.png`` (8 per component, one row each).

    ``preprocess`` must map samples back to images (``quantize``); ``key`` seeds every epoch's draw
    (``fold_in(key, epoch)``).
    """

    workdir: pathlib.Path
    model: Any
    preprocess: Any
    num_samples: int
    temperature: float
    key: jax.Array

    def __post_init__(self):
        checks.path("SampleGrids", self.workdir, "workdir")
        checks.integer("SampleGrids", "num_samples", self.num_samples, 1)
        latent_lib.check_temperature(self.temperature, "SampleGrids")
        checks.key("SampleGrids", self.key)
        n, t, model = self.num_samples, self.temperature, self.model
        self._sample = jax.jit(lambda p, k: model.sample(p, k, n, t))
        self._components = (jax.jit(lambda p, k: model.component_samples(p, k, 8, t))
                            if isinstance(model, ComponentSampler) else None)

    def after_epoch(self, end: EpochEnd) -> bool:
        if not end.em_round:
            return False
        # Every process samples and gathers (collectives: one SPMD program); the primary writes.
        key = jax.random.fold_in(self.key, end.epoch)
        samples = to_host(self.preprocess.quantize(self._sample(end.state.params, key)))
        rows, columns = None, None
        if self._components is not None:
            drawn = self._components(end.state.params, jax.random.fold_in(key, 1))  # (K, 8, *event_shape)
            columns = drawn.shape[1]
            rows = to_host(self.preprocess.quantize(drawn.reshape(-1, *drawn.shape[2:])))
        if distributed.is_primary():
            folder = self.workdir / "samples"
            with written(self.workdir, end.epoch):
                folder.mkdir(exist_ok=True)
                plots.image_grid(samples, folder / f"epoch_{end.epoch + 1:04d}.png")
                if rows is not None:
                    plots.image_grid(rows, folder / f"components_epoch_{end.epoch + 1:04d}.png", columns=columns)
        return False


@dataclasses.dataclass
class ComponentPlot(BaseHook):
    """``components.png``: each component's share of every class among the test examples it wins."""

    workdir: pathlib.Path

    def __post_init__(self):
        checks.path("ComponentPlot", self.workdir, "workdir")

    def after_epoch(self, end: EpochEnd) -> bool:
        report = end.record.get("components")
        if report is not None and distributed.is_primary():
            with written(self.workdir, end.epoch):
                plots.component_classes(report["class_share"], [sum(w) for w in report["wins"]],
                                        self.workdir / "components.png", title=f"test examples won, epoch {end.epoch + 1}")
        return False


class EarlyStopping(BaseHook):
    """Stop when the validation NLL has not improved for ``patience`` epochs; return the best parameters.

    ``x_val: (M, *data_shape)`` raw examples held out of training (``validation_split``), scored
    each epoch under ``model`` after ``preprocess`` (None: as they are) with the fixed noise of
    ``seed``; each epoch's record gets ``validation_nll`` (mean ``-log p(x)``, nats per example).
    The best parameters are kept in memory (so not across a resume): ``finish`` hands them back,
    and ``best_epoch`` (0-based) says whose they are. ``params_of(state)`` picks the parameters of
    an epoch's ``EMState`` that are scored and kept (None: ``state.params``; ``fit_to_data`` passes
    ``averaging.averaged_params``).
    """

    def __init__(self, model, preprocess, x_val, patience: int = 5, batch_size: int = 500, seed: int = 0,
                 params_of: Callable[[EMState], Any] | None = None):
        if int(patience) != patience or patience < 1:
            raise ValueError(f"EarlyStopping: patience must be an integer >= 1, got {patience!r}")
        if len(x_val) == 0:
            raise ValueError("EarlyStopping: x_val is empty; expected at least one validation example")
        checks.integer("EarlyStopping", "batch_size", batch_size, 1)
        checks.integer("EarlyStopping", "seed", seed, 0)
        preprocess = preprocess or identity_preprocess
        self.log_prob_fn = jax.jit(lambda p, raw, k: model.log_prob(p, preprocess(k, raw)))
        self.x_val, self.key = jnp.asarray(x_val), jax.random.PRNGKey(seed)
        self.batch_size, self.patience = min(batch_size, len(x_val)), patience
        self.best_nll, self.best_epoch, self.best_params = float("inf"), None, None
        self.params_of = params_of or (lambda state: state.params)

    def after_epoch(self, end: EpochEnd) -> bool:
        params = self.params_of(end.state)
        nll = -mean_log_prob(params, self.x_val, self.key, self.batch_size, self.log_prob_fn)
        end.record["validation_nll"] = nll
        if nll < self.best_nll:
            self.best_nll, self.best_epoch = nll, end.epoch
            self.best_params = jax.tree.map(jnp.copy, params)
        return end.epoch - self.best_epoch >= self.patience

    def finish(self, state: EMState) -> EMState:
        if self.best_params is None:
            return state
        return state.replace(params=self.best_params, old_params=jax.tree.map(jnp.copy, self.best_params))


def validation_split(x, fraction: float, seed: int = 0, y=None):
    """``(x_train, x_val)`` (and ``(y_train, y_val)`` after them when ``y`` is given): a random ``fraction``
    of the examples held out, at least one on each side."""
    n = len(x)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation_split: fraction must lie in (0, 1), got {fraction!r}")
    if y is not None and len(y) != n:
        raise ValueError(f"validation_split: y must hold one label per example, {n}, got {len(y)}")
    m = int(round(n * fraction))
    if m < 1 or m > n - 1:
        raise ValueError(f"validation_split: {n} examples are too few to hold out a fraction {fraction} "
                         f"({m} validation examples); expected at least one on each side")
    order = np.random.default_rng(seed).permutation(n)
    train, val = np.sort(order[m:]), np.sort(order[:m])
    x = np.asarray(x)
    out = (x[train], x[val])
    return out if y is None else out + (np.asarray(y)[train], np.asarray(y)[val])
